"""Intake's event handlers (policies): the citizen's status timeline, built from what dispatch and
enforcement publish. Each runs its flow (`flows.follow_*`) on a unit of work over the consumer's
transaction, which already holds the event's inbox row, so the steps commit with it."""

from __future__ import annotations

from townflow_shared import events
from townflow_shared.consumer import Handler, policy

from . import flows
from .store import PgUnitOfWork

# Each under the name the inbox knows its handled events by (`intake.<name>`); app.py registers them.
HANDLERS: tuple[tuple[type[events.Envelope], Handler], ...] = tuple(
    (event_type, policy(name, flow, PgUnitOfWork)) for event_type, name, flow in (
        (events.TaskDispatched, "task_dispatched", flows.follow_task_dispatched),
        (events.TaskAccepted, "task_accepted", flows.follow_task_accepted),
        (events.TaskReturned, "task_returned", flows.follow_task_returned),
        (events.TaskSupervised, "task_supervised", flows.follow_task_supervised),
        (events.TaskExtended, "task_extended", flows.follow_task_extended),
        (events.TaskCompleted, "task_completed", flows.follow_task_completed),
        (events.TaskVerified, "task_verified", flows.follow_task_verified),
        (events.InspectionDone, "inspection_done", flows.follow_inspection_done),
        (events.TaskCallback, "task_callback", flows.follow_task_callback),
        (events.TaskMerged, "task_merged", flows.follow_task_merged),
        (events.TaskSuspended, "task_suspended", flows.follow_task_suspended),
        (events.TaskResumed, "task_resumed", flows.follow_task_resumed),
    ))
