"""Dispatch's operations, shared by the event handlers and the HTTP API. Each runs inside the
caller's transaction: rules decide, store writes, the outbox carries the events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from townflow_shared.events import Envelope as _Envelope
from townflow_shared.events import (
    EventData,
    TaskCompleted,
    TaskCompletedData,
    TaskDispatched,
    TaskDispatchedData,
    TaskSupervised,
    TaskSupervisedData,
    TaskVerified,
    TaskVerifiedData,
    new_event,
)
from townflow_shared.outbox import enqueue
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.telemetry import current_trace_headers

from . import rules, store


@dataclass(frozen=True)
class Matter:
    request_id: uuid.UUID
    ticket_no: str
    item_code: str
    colour: str
    village: str
    location: str
    target: str | None


def task_event(runtime: ServiceRuntime, event_type: type[_Envelope], data: EventData, task_id: Any,
               request_id: Any, now: datetime, causation_id: Any = None) -> _Envelope:
    return new_event(event_type, data, source="dispatch", town_code=runtime.town.code,
                     subject=str(task_id), correlation_id=str(request_id), time=now,
                     causation_id=causation_id)


async def dispatch_matter(conn: asyncpg.Connection, runtime: ServiceRuntime, matter: Matter, *,
                          now: datetime, post_code: str | None = None, assignee: str | None = None,
                          redispatch_of: uuid.UUID | None = None, invalid_return: bool | None = None,
                          causation_id: Any = None) -> uuid.UUID:
    """Create one task for the matter and announce it."""
    town = runtime.town
    item = town.catalog[matter.item_code]
    post = town.posts[post_code or item.post]
    if assignee is not None:
        assignment = rules.Assignment(assignee, "command_centre")
    else:
        caps = {post.a_holder: town.load_cap(post), post.b_holder: town.load_cap(post)}
        assignment = rules.assign(post, town, await store.unavailable_staff(conn, caps, now))
    due = rules.deadlines(matter.colour, item, now, town.calendar, town.rules.dispatch)  # type: ignore[arg-type]
    task_id = uuid.uuid4()
    row = {
        "task_id": task_id, "request_id": matter.request_id, "ticket_no": matter.ticket_no,
        "item_code": item.code, "kind": item.task_kind, "colour": matter.colour,
        "village": matter.village, "location": matter.location, "target": matter.target,
        "lead_module": item.lead_module, "cooperating_modules": item.cooperating_modules,
        "post": post.code, "assignee": assignment.assignee, "assigned_via": assignment.via,
        "status": "dispatched", "dispatched_at": now, "window_start": now,
        "respond_by": due.respond_by, "resolve_by": due.resolve_by, "redispatch_of": redispatch_of,
        "trace_headers": current_trace_headers(),
    }
    await store.insert_task(conn, row)
    data = TaskDispatchedData(
        task_id=str(task_id), request_id=str(matter.request_id), item_code=item.code,
        kind=item.task_kind, colour=matter.colour, village=matter.village,  # type: ignore[arg-type]
        location=matter.location, target=matter.target, lead_module=item.lead_module,
        cooperating_modules=item.cooperating_modules, post=post.code,
        assignee=assignment.assignee, assigned_via=assignment.via, respond_by=due.respond_by,
        resolve_by=due.resolve_by, dispatched_at=now,
        redispatch_of=str(redispatch_of) if redispatch_of else None, invalid_return=invalid_return)
    await enqueue(conn, task_event(runtime, TaskDispatched, data, task_id, matter.request_id, now,
                                   causation_id))
    return task_id


async def complete_task(conn: asyncpg.Connection, runtime: ServiceRuntime, task: asyncpg.Record, *,
                        by: str, resolution: str, now: datetime, inspection_id: str | None = None,
                        causation_id: Any = None) -> bool:
    on_time = rules.is_on_time(now, task["resolve_by"])
    # An inspection's result is its own closure check (核查): such tasks close at once.
    status = "closed" if inspection_id else "completed"
    await store.update_task(conn, task["task_id"], status=status, completed_at=now, completed_by=by,
                            resolution=resolution, on_time=on_time, inspection_id=inspection_id)
    events = [task_event(runtime, TaskCompleted, TaskCompletedData(
        task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=by,
        resolution=resolution, completed_at=now, on_time=on_time, inspection_id=inspection_id),
        task["task_id"], task["request_id"], now, causation_id)]
    if inspection_id:
        events.append(task_event(runtime, TaskVerified, TaskVerifiedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), passed=True,
            note=f"verified by inspection {inspection_id}", by=by, at=now),
            task["task_id"], task["request_id"], now, causation_id))
    await enqueue(conn, *events)
    return on_time


async def supervise(conn: asyncpg.Connection, runtime: ServiceRuntime, now: datetime) -> int:
    """Publish every supervision level that has fallen due; each at most once per task."""
    town = runtime.town
    published = 0
    for task in await store.supervision_candidates(conn, now, town.rules.dispatch.reminder_at):
        post = town.posts.get(task["post"])
        for level in rules.supervision_due(task["window_start"], task["resolve_by"], set(task["sent"]),
                                           now, town.rules.dispatch):
            notified = rules.notified_for(level, task["assignee"], post, town)
            if not await store.add_supervision(conn, task["task_id"], level, now, notified):
                continue
            await enqueue(conn, task_event(runtime, TaskSupervised, TaskSupervisedData(
                task_id=str(task["task_id"]), request_id=str(task["request_id"]), level=level,
                notified=notified, at=now), task["task_id"], task["request_id"], now))
            published += 1
    return published
