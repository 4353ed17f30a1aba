"""Appraisal's wiring (the bootstrap): settings, subscribers, HTTP routes. No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared.events import AlertRaised, ScoreUpdated
from townflow_shared.runtime import ServiceRuntime

from . import api, handlers
from .bulletin import Workbooks
from .flows import Batches
from .settings import AppraisalSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: AppraisalSettings | None = None, publishing: bool = True) -> ServiceRuntime:
    """The service, or (publishing=False) the rebuild's replay of it: the same handlers and the
    same batch apply, without publishing what subscribers have had already."""
    runtime = ServiceRuntime(settings or AppraisalSettings(), MIGRATIONS)
    batches = Batches(runtime.county, publishing)
    handlers.register(runtime, handlers.Handlers(runtime.county, batches))
    runtime.around_handlers(batches.scope)
    runtime.publishes(ScoreUpdated, AlertRaised)
    return runtime


def create_app(settings: AppraisalSettings | None = None) -> FastAPI:
    runtime = create_runtime(settings)
    # A one-town deployment has no county to rank its towns in.
    routers = [api.router, api.county_router] if runtime.county.info is not None else [api.router]
    app = runtime.http_app("Townflow appraisal", routers)
    app.state.workbooks = Workbooks()
    runtime.on_stop(app.state.workbooks.close)
    return app
