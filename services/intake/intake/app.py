"""Intake's wiring: settings, subscribers, HTTP routes. No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared.events import (
    InspectionDone,
    RequestFiled,
    RequestMerged,
    RequestRated,
    TaskAccepted,
    TaskCallback,
    TaskCompleted,
    TaskDispatched,
    TaskExtended,
    TaskReturned,
    TaskSupervised,
    TaskVerified,
)
from townflow_shared.runtime import ServiceRuntime

from . import api, handlers
from .settings import IntakeSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: IntakeSettings | None = None) -> ServiceRuntime:
    runtime = ServiceRuntime(settings or IntakeSettings(), MIGRATIONS)
    runtime.on(TaskDispatched)(handlers.task_dispatched)
    runtime.on(TaskAccepted)(handlers.task_accepted)
    runtime.on(TaskReturned)(handlers.task_returned)
    runtime.on(TaskSupervised)(handlers.task_supervised)
    runtime.on(TaskExtended)(handlers.task_extended)
    runtime.on(TaskCompleted)(handlers.task_completed)
    runtime.on(TaskVerified)(handlers.task_verified)
    runtime.on(InspectionDone)(handlers.inspection_done)
    runtime.on(TaskCallback)(handlers.task_callback)
    runtime.publishes(RequestFiled, RequestRated, RequestMerged)
    return runtime


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow intake", [api.router])
