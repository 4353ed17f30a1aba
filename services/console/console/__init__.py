"""Townflow's staff console (SPEC §9): server-rendered pages over the four services' HTTP APIs."""
