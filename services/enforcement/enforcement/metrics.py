"""Enforcement's business gauges."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from prometheus_client import Gauge

from townflow_shared.metrics import REGISTRY

from . import store

INSPECTIONS_PLANNED = Gauge("townflow_enforcement_inspections_planned", "Inspections planned, not started",
                            ["town"], registry=REGISTRY)
CASES_NEAR_LIMIT = Gauge("townflow_enforcement_cases_near_limit",
                         "Undecided cases past the day-60 warning", ["town"], registry=REGISTRY)
CASES_OVERDUE = Gauge("townflow_enforcement_cases_overdue", "Undecided cases past the decision limit",
                      ["town"], registry=REGISTRY)
GAUGES = (INSPECTIONS_PLANNED, CASES_NEAR_LIMIT, CASES_OVERDUE)


async def refresh_gauges(pool: asyncpg.Pool, town_codes: Iterable[str]) -> None:
    """Group-wide, one series per town served (0 for a town with none): set by the replica that
    reports for the service (see townflow_shared.group_gauges)."""
    counts = {row["town_code"]: row for row in await store.counts(pool)}
    for town_code in town_codes:
        row = counts.get(town_code)
        INSPECTIONS_PLANNED.labels(town_code).set(row["planned"] if row else 0)
        CASES_NEAR_LIMIT.labels(town_code).set(row["near_limit"] if row else 0)
        CASES_OVERDUE.labels(town_code).set(row["overdue"] if row else 0)
