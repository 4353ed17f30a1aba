"""Invariants the code relies on, checked in a way `python -O` cannot strip (no `assert`)."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None, what: str) -> T:
    """`value`, which the caller has just written, read or checked: None here is a bug of ours,
    never a caller's mistake, so it is a 500 with a clear message, not a 4xx."""
    if value is None:
        raise RuntimeError(f"{what} is missing, though it was just written or checked")
    return value
