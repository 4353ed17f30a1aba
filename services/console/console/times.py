"""Times as a person reads them: every instant a service answers (ISO 8601 with its offset, often
UTC) on the clock of the town it belongs to, `2026-12-06 08:12`. The one place a page or a
refusal turns a service's time into words."""

from __future__ import annotations

import re
from datetime import date, datetime, tzinfo
from typing import Any

SHOWN = "%Y-%m-%d %H:%M"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def shown(value: Any, zone: tzinfo | None) -> str:
    """`value` on the town's clock: an instant with an offset in `zone` (None: at its own offset);
    a date stays that date; nothing is empty; anything else (a time without an offset, which names
    no instant, or what is no time at all) is shown as given, so a page never fails on it."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, date):
        return value.isoformat()
    else:
        text = str(value)
        if _DAY.match(text):
            return text
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            return text
    if instant.tzinfo is None:
        return str(value)
    return (instant.astimezone(zone) if zone is not None else instant).strftime(SHOWN)
