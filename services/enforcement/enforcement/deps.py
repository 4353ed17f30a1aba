"""What enforcement's flows, event handlers and routes are handed: built once by the bootstrap
(app.py), named, frozen. Its own module so app.py can import the routes that name it."""

from __future__ import annotations

from dataclasses import dataclass

from townflow_shared.clock import Clock
from townflow_shared.county import County
from townflow_shared.db import Database
from townflow_shared.objects import ObjectStore

from .settings import EnforcementSettings
from .unit_of_work import Transactions


@dataclass(frozen=True)
class Deps:
    settings: EnforcementSettings
    county: County  # the towns served, each with its staff, catalogue, rules and calendar
    clock: Clock  # the one "now" (a test moves it)
    database: Database  # the pool (the deadline loop drains in batches of its own transactions)
    transactions: Transactions  # units of work on the database
    # Where evidence is kept (evidence.evidence_store): the deployment's bucket, or one of its own
    # under Object Lock; None: evidence is refused (503).
    objects: ObjectStore | None = None
