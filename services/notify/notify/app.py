"""Notify's bootstrap: settings, county, each town's contacts (notify.yaml), clock and database,
built once into `Deps` and handed by name to the event handlers, the sender loop and the routes.
The runtime is only the process's life cycle (start/stop, consumer, loops)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

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
    for event_type, handler in handlers.HANDLERS:
        runtime.on(event_type)(handler)
    runtime.every(scheduled.sender_loop(deps))
    runtime.every(scheduled.digest_loop(deps))
    towns = list(deps.county.towns)
    runtime.reports(lambda pool: metrics.refresh_gauges(pool, towns), *metrics.GAUGES)
    return runtime


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow notify", [api.router])
