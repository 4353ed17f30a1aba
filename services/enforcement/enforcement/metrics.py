"""Enforcement's business gauges."""

from __future__ import annotations

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


async def refresh_gauges(pool: asyncpg.Pool, town_code: str) -> None:
    """Group-wide: set by the replica that reports for the service (see townflow_shared.group_gauges)."""
    counts = await store.counts(pool)
    INSPECTIONS_PLANNED.labels(town_code).set(counts["planned"])
    CASES_NEAR_LIMIT.labels(town_code).set(counts["near_limit"])
    CASES_OVERDUE.labels(town_code).set(counts["overdue"])
