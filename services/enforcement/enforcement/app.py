"""Enforcement's bootstrap: settings, county, clock, database, the units of work and the object
store (evidence), built once into `Deps` and handed by name to the event handlers, the loops and
the routes. The runtime is only the process's life cycle (start/stop, consumer, outbox relay, loops)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared import attachments as shared_attachments
from townflow_shared.events import (
    CaseFlagged,
    CaseUpdated,
    EvidenceRecorded,
    InspectionDone,
    PlanPublished,
    TaskDispatched,
)
from townflow_shared.runtime import ServiceRuntime

from . import api, evidence, handlers, metrics, scheduled
from .deps import Deps
from .settings import EnforcementSettings
from .unit_of_work import PostgresTransactions

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: EnforcementSettings | None = None) -> ServiceRuntime:
    settings = settings or EnforcementSettings()
    runtime = ServiceRuntime(settings, MIGRATIONS)
    deps = Deps(settings=settings, county=runtime.county, clock=runtime.clock, database=runtime.database,
                transactions=PostgresTransactions(runtime.database), objects=evidence.evidence_store(settings))
    runtime.deps = deps
    runtime.on(TaskDispatched)(handlers.task_dispatched)
    runtime.every(scheduled.case_deadline_loop(deps))
    runtime.every(shared_attachments.sweep_loop(evidence.OWNER, deps.objects, evidence.known_evidence(deps), settings))
    towns = list(deps.county.towns.values())
    runtime.reports(lambda pool: metrics.refresh_gauges(pool, towns, deps.clock.now()), *metrics.GAUGES)
    runtime.publishes(InspectionDone, CaseUpdated, PlanPublished, EvidenceRecorded, CaseFlagged)
    return runtime


def create_app(settings: EnforcementSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow enforcement", [api.router])
