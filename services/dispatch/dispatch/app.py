"""Dispatch's bootstrap: settings, county, clock, database, unit of work and object store built
once into its `Deps`, handed by name to the event handlers, the loops and the routes. No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared import attachments as shared_attachments
from townflow_shared import events
from townflow_shared.objects import ObjectStore
from townflow_shared.runtime import ServiceRuntime

from . import api, attachments, handlers, metrics, scheduled
from .flows import Deps
from .settings import DispatchSettings
from .store import units_of_work

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: DispatchSettings | None = None) -> ServiceRuntime:
    settings = settings or DispatchSettings()
    runtime = ServiceRuntime(settings, MIGRATIONS)  # the process: start/stop, consumer, relay, loops
    deps = Deps(settings=settings, county=runtime.county, clock=runtime.clock, database=runtime.database,
                unit_of_work=units_of_work(runtime.database), objects=ObjectStore.from_settings(settings))
    runtime.deps = deps
    for event_type, handler in handlers.HANDLERS:
        runtime.on(event_type)(handler)
    runtime.every(scheduled.supervision_loop(deps))
    runtime.every(shared_attachments.sweep_loop(attachments.OWNER, deps.objects,
                                                shared_attachments.known_in(deps.unit_of_work), settings))
    runtime.reports(lambda pool: metrics.refresh_gauges(pool, list(deps.county.towns), deps.clock.now()),
                    *metrics.GAUGES)
    runtime.publishes(events.TaskDispatched, events.TaskAccepted, events.TaskReturned, events.TaskSupervised,
                      events.TaskCompleted, events.TaskExtended, events.TaskVerified, events.TaskMerged,
                      events.TaskCallback, events.TaskSuspended, events.TaskResumed,
                      events.ExtensionRequested, events.SuspensionRequested)
    return runtime


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow dispatch", [api.router])
