"""Notify's bootstrap: settings, county, each town's contacts (notify.yaml), clock and database,
built once into `Deps` and handed by name to the event handlers, the sender loop and the routes.
The runtime is only the process's life cycle (start/stop, consumer, loops)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared.events import (
    CaseFlagged,
    CaseUpdated,
    ExtensionRequested,
    PlanPublished,
    SuspensionRequested,
    TaskAccepted,
    TaskCallback,
    TaskCompleted,
    TaskDispatched,
    TaskExtended,
    TaskMerged,
    TaskResumed,
    TaskReturned,
    TaskSupervised,
    TaskSuspended,
    TaskVerified,
)
from townflow_shared.runtime import ServiceRuntime

from . import api, handlers, metrics, scheduled
from .contacts import load_all_contacts
from .deps import Deps
from .settings import NotifySettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: NotifySettings | None = None) -> ServiceRuntime:
    settings = settings or NotifySettings()
    runtime = ServiceRuntime(settings, MIGRATIONS)
    deps = Deps(settings=settings, county=runtime.county, clock=runtime.clock, database=runtime.database,
                contacts=load_all_contacts(settings.town_dir, runtime.county))  # a wrong notify.yaml fails here
    runtime.deps = deps
    runtime.on(TaskDispatched)(handlers.task_dispatched)
    runtime.on(TaskSupervised)(handlers.task_supervised)
    runtime.on(TaskReturned)(handlers.task_returned)
    runtime.on(TaskCallback)(handlers.task_called_back)
    runtime.on(PlanPublished)(handlers.plan_published)
    runtime.on(ExtensionRequested)(handlers.extension_requested)
    runtime.on(SuspensionRequested)(handlers.suspension_requested)
    runtime.on(CaseFlagged)(handlers.case_flagged)
    # The daily digest's knowledge of what is open and due: the tasks' and cases' later events.
    runtime.on(TaskAccepted)(handlers.task_accepted)
    runtime.on(TaskCompleted)(handlers.task_completed)
    runtime.on(TaskExtended)(handlers.task_extended)
    runtime.on(TaskVerified)(handlers.task_verified)
    runtime.on(TaskMerged)(handlers.task_merged)
    runtime.on(TaskSuspended)(handlers.task_suspended)
    runtime.on(TaskResumed)(handlers.task_resumed)
    runtime.on(CaseUpdated)(handlers.case_updated)
    runtime.every(scheduled.sender_loop(deps))
    runtime.every(scheduled.digest_loop(deps))
    towns = list(deps.county.towns)
    runtime.reports(lambda pool: metrics.refresh_gauges(pool, towns), *metrics.GAUGES)
    return runtime


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow notify", [api.router])
