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
extension_requested = policy("extension_requested", flows.extension_requested, PgStore)
suspension_requested = policy("suspension_requested", flows.suspension_requested, PgStore)
case_flagged = policy("case_flagged", flows.case_flagged, PgStore)
task_accepted = policy("task_accepted", flows.task_accepted, PgStore)
task_completed = policy("task_completed", flows.task_completed, PgStore)
task_extended = policy("task_extended", flows.task_extended, PgStore)
task_verified = policy("task_verified", flows.task_verified, PgStore)
task_merged = policy("task_merged", flows.task_merged, PgStore)
task_suspended = policy("task_suspended", flows.task_suspended, PgStore)
task_resumed = policy("task_resumed", flows.task_resumed, PgStore)
case_updated = policy("case_updated", flows.case_updated, PgStore)
