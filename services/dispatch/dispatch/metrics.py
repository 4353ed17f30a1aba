"""Dispatch's business gauges for the command centre's dashboards."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import asyncpg

from townflow_shared.metrics import gauge

from . import store

OPEN_TASKS = gauge("townflow_dispatch_open_tasks", "Open tasks by town and colour", "town", "colour")
OVERDUE_TASKS = gauge("townflow_dispatch_overdue_tasks", "Open tasks past resolve_by, by town and colour",
                      "town", "colour")
SUPERVISIONS = gauge("townflow_dispatch_supervision_events", "Supervision events so far, by town and level",
                     "town", "level")


GAUGES = (OPEN_TASKS, OVERDUE_TASKS, SUPERVISIONS)


async def refresh_gauges(pool: asyncpg.Pool, towns: Collection[str], now: datetime) -> None:
    """Group-wide, per town (every town served shows, zeros included): set by the replica that
    reports for the service (see townflow_shared.group_gauges)."""
    counts = {(r["town_code"], r["colour"]): r for r in await store.open_counts_by_colour(pool, now)}
    levels = {(r["town_code"], r["level"]): r["n"] for r in await store.supervision_counts(pool)}
    for town in towns:
        for colour in ("yellow", "orange", "red"):
            row = counts.get((town, colour))
            OPEN_TASKS.labels(town, colour).set(row["open"] if row else 0)
            OVERDUE_TASKS.labels(town, colour).set(row["overdue"] if row else 0)
        for level in ("reminder", "overdue", "escalated"):
            SUPERVISIONS.labels(town, level).set(levels.get((town, level), 0))
