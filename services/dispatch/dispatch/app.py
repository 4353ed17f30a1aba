"""Dispatch's wiring: settings, subscribers, background loops, HTTP routes. No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared.events import (
    InspectionDone,
    RequestFiled,
    RequestMerged,
    TaskAccepted,
    TaskCallback,
    TaskCompleted,
    TaskDispatched,
    TaskExtended,
    TaskMerged,
    TaskReturned,
    TaskSupervised,
    TaskVerified,
)
from townflow_shared.runtime import ServiceRuntime

from . import api, handlers, metrics, scheduled
from .settings import DispatchSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: DispatchSettings | None = None) -> ServiceRuntime:
    settings = settings or DispatchSettings()
    runtime = ServiceRuntime(settings, MIGRATIONS)
    runtime.on(RequestFiled)(handlers.request_filed)
    runtime.on(InspectionDone)(handlers.inspection_done)
    runtime.on(RequestMerged)(handlers.request_merged)
    runtime.every(scheduled.supervision_loop(settings))
    runtime.reports(lambda pool: metrics.refresh_gauges(pool, list(runtime.county.towns), runtime.clock.now()),
                    *metrics.GAUGES)
    runtime.publishes(TaskDispatched, TaskAccepted, TaskReturned, TaskSupervised, TaskCompleted, TaskExtended, TaskVerified,
                       TaskMerged, TaskCallback)
    return runtime


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow dispatch", [api.router])
