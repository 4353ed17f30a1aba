"""Enforcement's business gauges."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

from townflow_shared.metrics import gauge
from townflow_shared.town import Town

from . import queries
from .store import PgStore

INSPECTIONS_PLANNED = gauge("townflow_enforcement_inspections_planned", "Inspections planned, not started",
                            "town")
CASES_NEAR_LIMIT = gauge("townflow_enforcement_cases_near_limit", "Undecided cases past the day-60 warning",
                         "town")
CASES_OVERDUE = gauge("townflow_enforcement_cases_overdue", "Undecided cases past the decision limit", "town")
REPEATED_INSPECTIONS = gauge("townflow_enforcement_repeated_inspection_targets",
                             "Targets inspected separately by several units within the window (多头检查)", "town")
GAUGES = (INSPECTIONS_PLANNED, CASES_NEAR_LIMIT, CASES_OVERDUE, REPEATED_INSPECTIONS)


async def refresh_gauges(pool: asyncpg.Pool, towns: Iterable[Town], now: datetime) -> None:
    """Group-wide, one series per town served (0 for a town with none): set by the replica that
    reports for the service (see townflow_shared.group_gauges)."""
    async with pool.acquire() as conn:
        store = PgStore(conn)
        counts = {row["town_code"]: row for row in await store.counts()}
        for town in towns:
            town_code = town.code
            row = counts.get(town_code)
            REPEATED_INSPECTIONS.labels(town_code).set(len(await queries.repeated_targets(store, town, now)))
            INSPECTIONS_PLANNED.labels(town_code).set(row["planned"] if row else 0)
            CASES_NEAR_LIMIT.labels(town_code).set(row["near_limit"] if row else 0)
            CASES_OVERDUE.labels(town_code).set(row["overdue"] if row else 0)
