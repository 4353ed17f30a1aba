"""Enforcement's wiring: settings, subscribers, HTTP routes. No rules here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from townflow_shared.runtime import ServiceRuntime

from .settings import EnforcementSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def create_runtime(settings: EnforcementSettings | None = None) -> ServiceRuntime:
    return ServiceRuntime(settings or EnforcementSettings(), MIGRATIONS)


def create_app(settings: EnforcementSettings | None = None) -> FastAPI:
    return create_runtime(settings).http_app("Townflow enforcement", [])
