"""Intake's bootstrap: settings, county, clock, database, the keyring of the citizen's personal
data, the unit of work and the filing writer built once into `Deps`, handed to the event handlers,
the routes and the erasure loop; subscribers, HTTP routes. No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared import attachments as shared_attachments
from townflow_shared import events
from townflow_shared.db import OUTAGES
from townflow_shared.objects import ObjectStore
from townflow_shared.runtime import ServiceRuntime

from . import api, attachments, flows, handlers, metrics, scheduled, store
from .personal_data import Keyring
from .settings import IntakeSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: IntakeSettings | None = None) -> ServiceRuntime:
    settings = settings or IntakeSettings()
    # First: without its keys intake does not start (KeysMissing names the setting), rather than
    # write a citizen's data in the clear or serve matters it cannot open.
    keyring = Keyring.from_settings(settings)
    runtime = ServiceRuntime(settings, MIGRATIONS)
    unit_of_work = store.unit_of_work(runtime.database)
    key = settings.citizen_ref_key
    runtime.deps = deps = flows.Deps(
        settings=settings, county=runtime.county, clock=runtime.clock, unit_of_work=unit_of_work,
        filing_writer=flows.filing_writer(unit_of_work, runtime.clock, keyring, shared_failures=OUTAGES,
                                          code_length=settings.intake_access_code_length),
        citizen_ref_key=key.get_secret_value().encode() if key is not None else None, keyring=keyring,
        objects=ObjectStore.from_settings(settings))
    for event_type, handler in handlers.HANDLERS:
        runtime.on(event_type)(handler)
    runtime.every(scheduled.erasure_loop(deps))
    if settings.sms_enabled:  # a deployment without the gateway's settings sends no SMS (docs/notify.md)
        runtime.every(scheduled.sms_loop(deps, runtime.database))
        towns = list(deps.county.towns)
        runtime.reports(lambda pool: metrics.refresh_gauges(pool, towns, deps.clock.now()), *metrics.GAUGES)
    runtime.every(shared_attachments.sweep_loop(attachments.OWNER, deps.objects,
                                                shared_attachments.known_in(deps.unit_of_work), settings))
    runtime.publishes(events.RequestFiled, events.RequestRated, events.RequestMerged)
    return runtime


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow intake", [api.router])
