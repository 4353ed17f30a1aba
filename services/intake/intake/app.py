"""Intake's bootstrap: settings, county, clock, database, the unit of work and the filing writer
built once into `Deps`, handed to the event handlers and the routes; subscribers, HTTP routes.
No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared import events
from townflow_shared.runtime import ServiceRuntime

from . import api, flows, handlers, store
from .settings import IntakeSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: IntakeSettings | None = None) -> ServiceRuntime:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings, MIGRATIONS)
    unit_of_work = store.unit_of_work(runtime.database)
    key = settings.citizen_ref_key
    runtime.deps = flows.Deps(
        settings=settings, county=runtime.county, clock=runtime.clock, unit_of_work=unit_of_work,
        filing_writer=flows.filing_writer(unit_of_work, runtime.clock),
        citizen_ref_key=key.get_secret_value().encode() if key is not None else None)
    runtime.on(events.TaskDispatched)(handlers.task_dispatched)
    runtime.on(events.TaskAccepted)(handlers.task_accepted)
    runtime.on(events.TaskReturned)(handlers.task_returned)
    runtime.on(events.TaskSupervised)(handlers.task_supervised)
    runtime.on(events.TaskExtended)(handlers.task_extended)
    runtime.on(events.TaskCompleted)(handlers.task_completed)
    runtime.on(events.TaskVerified)(handlers.task_verified)
    runtime.on(events.InspectionDone)(handlers.inspection_done)
    runtime.on(events.TaskCallback)(handlers.task_callback)
    runtime.publishes(events.RequestFiled, events.RequestRated, events.RequestMerged)
    return runtime


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow intake", [api.router])
