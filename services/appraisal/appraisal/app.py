"""Appraisal's bootstrap: settings, county, clock, database, the consumer's batches and the
workbook worker made once, handed by name (flows.Deps) to the event handlers and the routes.
ServiceRuntime is only the process's life cycle (start/stop, consumer, relay). No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared.events import AlertRaised, ScoreUpdated
from townflow_shared.runtime import ServiceRuntime

from . import api, handlers, unit_of_work
from .bulletin import Workbooks
from .flows import Batches, Deps
from .settings import AppraisalSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: AppraisalSettings | None = None, publishing: bool = True) -> ServiceRuntime:
    """The service, or (publishing=False) the rebuild's replay of it: the same handlers and the
    same batch apply, without publishing what subscribers have had already."""
    settings = settings or AppraisalSettings()
    runtime = ServiceRuntime(settings, MIGRATIONS)
    batches = Batches(runtime.county, publishing)
    runtime.deps = Deps(settings=settings, county=runtime.county, clock=runtime.clock, database=runtime.database,
                        unit_of_work=unit_of_work.postgres(runtime.database), batches=batches,
                        workbooks=Workbooks())  # its worker process starts with the first workbook
    for event_type, handler in handlers.HANDLERS:
        runtime.on(event_type)(handler)
    runtime.around_handlers(batches.scope)
    runtime.publishes(ScoreUpdated, AlertRaised)
    return runtime


def create_app(settings: AppraisalSettings | None = None) -> FastAPI:
    runtime = create_runtime(settings)
    deps: Deps = runtime.deps
    # A one-town deployment has no county to rank its towns in.
    routers = [api.router, api.county_router] if runtime.county.info is not None else [api.router]
    app = runtime.http_app("Townflow appraisal", routers)
    runtime.on_stop(deps.workbooks.close)  # the workbook worker ends with the service
    return app
