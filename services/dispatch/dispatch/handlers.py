"""Dispatch's event handlers (policies): each runs its flow in the consumer's transaction, which
already holds the event's inbox row, so the task's change and its events commit with it."""

from __future__ import annotations

from townflow_shared import events
from townflow_shared.consumer import Handler, policy

from . import flows
from .store import PgUnitOfWork

# Each under the name the inbox knows its handled events by (`dispatch.<name>`); app.py registers them.
HANDLERS: tuple[tuple[type[events.Envelope], Handler], ...] = (
    (events.RequestFiled, policy("request_filed", flows.dispatch_filed, PgUnitOfWork)),
    (events.InspectionDone, policy("inspection_done", flows.complete_inspected, PgUnitOfWork)),
    (events.RequestMerged, policy("request_merged", flows.follow_request_merged, PgUnitOfWork)),
)
