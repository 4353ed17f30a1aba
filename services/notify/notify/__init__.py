"""Townflow Notify: staff told, where they already are, of what the events ask of them."""
