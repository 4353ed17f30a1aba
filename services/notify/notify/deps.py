"""What notify's flows, event handlers, sender loop and routes are handed: built once by the
bootstrap (app.py), named, frozen."""

from __future__ import annotations

from dataclasses import dataclass, field

from townflow_shared.clock import Clock
from townflow_shared.county import County
from townflow_shared.db import Database

from .contacts import TownContacts
from .settings import NotifySettings


@dataclass(frozen=True)
class Deps:
    settings: NotifySettings
    county: County  # the towns served, each with its staff (who holds which post, who leads)
    clock: Clock
    database: Database
    contacts: dict[str, TownContacts] = field(default_factory=dict)  # by town code: who is reached where
