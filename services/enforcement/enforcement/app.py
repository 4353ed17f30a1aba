"""Enforcement's wiring: settings, subscribers, background loops, HTTP routes. No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared.events import CaseUpdated, InspectionDone, PlanPublished, TaskDispatched
from townflow_shared.runtime import ServiceRuntime

from . import api, handlers, metrics, scheduled
from .settings import EnforcementSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: EnforcementSettings | None = None) -> ServiceRuntime:
    settings = settings or EnforcementSettings()
    runtime = ServiceRuntime(settings, MIGRATIONS)
    runtime.on(TaskDispatched)(handlers.task_dispatched)
    runtime.every(scheduled.case_deadline_loop(settings))
    towns = list(runtime.county.towns.values())
    runtime.reports(lambda pool: metrics.refresh_gauges(pool, towns, runtime.clock.now()), *metrics.GAUGES)
    runtime.publishes(InspectionDone, CaseUpdated, PlanPublished)
    return runtime


def create_app(settings: EnforcementSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow enforcement", [api.router])
