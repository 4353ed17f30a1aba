"""Dispatch's business gauges for the command centre's dashboards."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from prometheus_client import Gauge

from townflow_shared.metrics import REGISTRY

from . import store

OPEN_TASKS = Gauge("townflow_dispatch_open_tasks", "Open tasks by colour", ["colour"], registry=REGISTRY)
OVERDUE_TASKS = Gauge("townflow_dispatch_overdue_tasks", "Open tasks past resolve_by, by colour",
                      ["colour"], registry=REGISTRY)
SUPERVISIONS = Gauge("townflow_dispatch_supervision_events", "Supervision events so far, by level",
                     ["level"], registry=REGISTRY)


GAUGES = (OPEN_TASKS, OVERDUE_TASKS, SUPERVISIONS)


async def refresh_gauges(pool: asyncpg.Pool, now: datetime) -> None:
    """Group-wide: set by the replica that reports for the service (see townflow_shared.group_gauges)."""
    counts = {r["colour"]: r for r in await store.open_counts_by_colour(pool, now)}
    for colour in ("yellow", "orange", "red"):
        row = counts.get(colour)
        OPEN_TASKS.labels(colour).set(row["open"] if row else 0)
        OVERDUE_TASKS.labels(colour).set(row["overdue"] if row else 0)
    levels = {r["level"]: r["n"] for r in await pool.fetch(
        "SELECT level, count(*) AS n FROM supervisions GROUP BY level")}
    for level in ("reminder", "overdue", "escalated"):
        SUPERVISIONS.labels(level).set(levels.get(level, 0))
