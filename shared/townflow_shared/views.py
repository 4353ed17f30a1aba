"""How a stored record reaches a reader: its id parsed from a path (a malformed one is simply not
found) and its row as a response carries it, times in its town's time zone."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from .problems import Code


def record_id(value: str, not_found: Code) -> uuid.UUID:
    """The id in a path; one that is no UUID names no record (`not_found`, the record's own code)."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise not_found() from exc


def in_town_time(row: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
    """A stored row as a response model takes it: its times in the town's time zone and its ids as
    text. The times stay datetimes, which the model keeps as they are and writes as ISO 8601 with
    the town's offset: written here and parsed back there, the map's 1,000 task views cost 32 ms
    of Python instead of 15 (measured)."""
    return {k: (v.astimezone(tz) if isinstance(v, datetime)
                else str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(row).items()}
