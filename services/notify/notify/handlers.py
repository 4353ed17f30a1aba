"""Notify's event handlers (policies): decode → flows, in the consumer's one transaction. The
names are the inbox's (`notify.<name>`): renaming one would record every event's deliveries again
(harmless: a delivery is unique by event, person and channel)."""

from __future__ import annotations

from townflow_shared.consumer import policy

from . import flows
from .store import PgStore

task_dispatched = policy("task_dispatched", flows.task_dispatched, PgStore)
task_supervised = policy("task_supervised", flows.task_supervised, PgStore)
task_returned = policy("task_returned", flows.task_returned, PgStore)
task_called_back = policy("task_called_back", flows.task_called_back, PgStore)
plan_published = policy("plan_published", flows.plan_published, PgStore)
