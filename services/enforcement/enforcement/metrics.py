"""Enforcement's business gauges."""

from __future__ import annotations

import asyncpg
from prometheus_client import Gauge

from townflow_shared.metrics import REGISTRY

INSPECTIONS_PLANNED = Gauge("townflow_enforcement_inspections_planned", "Inspections planned, not started",
                            registry=REGISTRY)
CASES_NEAR_LIMIT = Gauge("townflow_enforcement_cases_near_limit",
                         "Undecided cases past the day-60 warning", registry=REGISTRY)
CASES_OVERDUE = Gauge("townflow_enforcement_cases_overdue", "Undecided cases past the decision limit",
                      registry=REGISTRY)


def refresh_gauges(counts: asyncpg.Record) -> None:
    INSPECTIONS_PLANNED.set(counts["planned"])
    CASES_NEAR_LIMIT.set(counts["near_limit"])
    CASES_OVERDUE.set(counts["overdue"])
