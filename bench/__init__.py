"""Townflow's benchmark and fault-injection suite (`make bench`, `make chaos`)."""
