"""Notify's event handlers (policies): decode → flows, in the consumer's one transaction. The
names are the inbox's (`notify.<name>`): renaming one would record every event's deliveries again
(harmless: a delivery is unique by event, person and channel)."""

from __future__ import annotations

from townflow_shared import events
from townflow_shared.consumer import Handler, policy

from . import flows
from .store import PgStore

# (event type, the inbox's name, the flow): app.py registers each. The first eight tell people;
# the rest keep what notify knows of a task's or case's state and deadlines (the daily digest).
HANDLERS: tuple[tuple[type[events.Envelope], Handler], ...] = tuple(
    (event_type, policy(name, flow, PgStore)) for event_type, name, flow in (
        (events.TaskDispatched, "task_dispatched", flows.task_dispatched),
        (events.TaskSupervised, "task_supervised", flows.task_supervised),
        (events.TaskReturned, "task_returned", flows.task_returned),
        (events.TaskCallback, "task_called_back", flows.task_called_back),
        (events.PlanPublished, "plan_published", flows.plan_published),
        (events.ExtensionRequested, "extension_requested", flows.extension_requested),
        (events.SuspensionRequested, "suspension_requested", flows.suspension_requested),
        (events.CaseFlagged, "case_flagged", flows.case_flagged),
        (events.TaskAccepted, "task_accepted", flows.task_accepted),
        (events.TaskCompleted, "task_completed", flows.task_completed),
        (events.TaskExtended, "task_extended", flows.task_extended),
        (events.TaskVerified, "task_verified", flows.task_verified),
        (events.TaskMerged, "task_merged", flows.task_merged),
        (events.TaskSuspended, "task_suspended", flows.task_suspended),
        (events.TaskResumed, "task_resumed", flows.task_resumed),
        (events.CaseUpdated, "case_updated", flows.case_updated),
    ))
