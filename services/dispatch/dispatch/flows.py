"""Dispatch's operations, shared by the event handlers and the HTTP API. Each runs inside the
caller's transaction: rules decide, store writes, the outbox carries the events."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from townflow_shared.deadlines import DueBatch
from townflow_shared.events import Envelope as _Envelope
from townflow_shared.events import (
    EventData,
    TaskCompleted,
    TaskCompletedData,
    TaskDispatched,
    TaskDispatchedData,
    TaskMerged,
    TaskMergedData,
    TaskSupervised,
    TaskSupervisedData,
    TaskVerified,
    TaskVerifiedData,
    new_event,
)
from townflow_shared.outbox import enqueue
from townflow_shared.telemetry import current_trace_headers
from townflow_shared.town import Town

from . import rules, store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Matter:
    request_id: uuid.UUID
    ticket_no: str
    item_code: str
    colour: str
    village: str
    location: str
    target: str | None


def task_event(town: Town, event_type: type[_Envelope], data: EventData, task_id: Any,
               request_id: Any, now: datetime, causation_id: Any = None) -> _Envelope:
    return new_event(event_type, data, source="dispatch", town_code=town.code,
                     subject=str(task_id), correlation_id=str(request_id), time=now,
                     causation_id=causation_id)


async def dispatch_matter(conn: asyncpg.Connection, town: Town, matter: Matter, *,
                          now: datetime, post_code: str | None = None, assignee: str | None = None,
                          redispatch_of: uuid.UUID | None = None, invalid_return: bool | None = None,
                          causation_id: Any = None) -> uuid.UUID:
    """Create one task of the town for the matter and announce it: the town's post, staff, load
    cap, calendar and rules."""
    item = town.catalog[matter.item_code]
    post = town.posts[post_code or item.post]
    if assignee is not None:
        assignment = rules.Assignment(assignee, "command_centre")
    else:
        caps = {post.a_holder: town.load_cap(post), post.b_holder: town.load_cap(post)}
        assignment = rules.assign(post, town, await store.unavailable_staff(conn, town.code, caps, now))
    due = rules.deadlines(matter.colour, item, now, town.calendar, town.rules.dispatch)  # type: ignore[arg-type]
    task_id = uuid.uuid4()
    row = {
        "task_id": task_id, "town_code": town.code, "request_id": matter.request_id, "ticket_no": matter.ticket_no,
        "item_code": item.code, "kind": item.task_kind, "colour": matter.colour,
        "village": matter.village, "location": matter.location, "target": matter.target,
        "lead_module": item.lead_module, "cooperating_modules": item.cooperating_modules,
        "post": post.code, "assignee": assignment.assignee, "assigned_via": assignment.via,
        "status": "dispatched", "dispatched_at": now, "window_start": now,
        "respond_by": due.respond_by, "resolve_by": due.resolve_by, "redispatch_of": redispatch_of,
        "next_supervision_at": rules.next_supervision_at(now, due.resolve_by, (), town.rules.dispatch),
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
    await enqueue(conn, task_event(town, TaskDispatched, data, task_id, matter.request_id, now,
                                   causation_id))
    return task_id


async def complete_task(conn: asyncpg.Connection, town: Town, task: asyncpg.Record, *,
                        by: str, resolution: str, now: datetime, inspection_id: str | None = None,
                        causation_id: Any = None) -> bool:
    on_time = rules.is_on_time(now, task["resolve_by"])
    # An inspection's result is its own closure check (核查): such tasks close at once.
    status = "closed" if inspection_id else "completed"
    await store.update_task(conn, task["task_id"], status=status, completed_at=now, completed_by=by,
                            resolution=resolution, on_time=on_time, inspection_id=inspection_id,
                            next_supervision_at=None)
    events = [task_event(town, TaskCompleted, TaskCompletedData(
        task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=by,
        resolution=resolution, completed_at=now, on_time=on_time, inspection_id=inspection_id),
        task["task_id"], task["request_id"], now, causation_id)]
    if inspection_id:
        events.append(task_event(town, TaskVerified, TaskVerifiedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), passed=True,
            note=f"verified by inspection {inspection_id}", by=by, at=now),
            task["task_id"], task["request_id"], now, causation_id))
    await enqueue(conn, *events)
    return on_time


async def supervise_due(conn: asyncpg.Connection, towns: Mapping[str, Town], now: datetime,
                        limit: int) -> DueBatch:
    """Publish the supervision levels due by `now` of up to `limit` tasks of every town, earliest
    due first, each by its own town's rules and staff, and move each task's next due moment on.
    Each level once per task: the claim locks the rows (another replica skips them) and the
    (task, level) key refuses a second insert."""
    claimed = await store.claim_due_supervisions(conn, list(towns), now, limit)
    levels: list[tuple[uuid.UUID, str, str, list[str]]] = []
    nexts: list[tuple[uuid.UUID, datetime | None]] = []
    failed = 0
    for task in claimed:
        try:
            town = towns[task["town_code"]]  # a town gone from the county's files: that row fails
            due = rules.supervision_due(task["window_start"], task["resolve_by"], set(task["sent"]), now,
                                        town.rules.dispatch)
            post = town.posts.get(task["post"])
            mine = [(task["task_id"], town.code, level, rules.notified_for(level, task["assignee"], post, town))
                    for level in due]
            next_at = rules.next_supervision_at(task["window_start"], task["resolve_by"], {*task["sent"], *due},
                                                town.rules.dispatch)
        except Exception:  # one bad row (e.g. a post gone from the town's files) never stops the rest
            log.exception("supervision of task %s failed; it is tried again next pass", task["task_id"])
            failed += 1
            continue
        levels += mine
        nexts.append((task["task_id"], next_at))
    new = await store.add_supervisions(conn, levels, now) if levels else set()
    by_task = {task["task_id"]: task for task in claimed}
    await enqueue(conn, *(
        task_event(towns[town_code], TaskSupervised, TaskSupervisedData(
            task_id=str(task_id), request_id=str(by_task[task_id]["request_id"]), level=level,  # type: ignore[arg-type]
            notified=notified, at=now), task_id, by_task[task_id]["request_id"], now)
        for task_id, town_code, level, notified in levels if (task_id, level) in new))
    if nexts:
        await store.set_next_supervisions(conn, nexts)
    return DueBatch(len(claimed), len(new), failed)


async def next_supervision_after_change(conn: asyncpg.Connection, town: Town, task_id: uuid.UUID,
                                        window_start: datetime, resolve_by: datetime) -> datetime | None:
    """The task's next supervision moment once its window changed (an extension, a rework)."""
    sent = await store.supervisions_sent(conn, task_id)
    return rules.next_supervision_at(window_start, resolve_by, sent, town.rules.dispatch)


async def reopen_window(conn: asyncpg.Connection, town: Town, task: asyncpg.Record,
                        now: datetime) -> tuple[datetime, datetime | None]:
    """A new window of the original length from now, its supervision ladder started again:
    (resolve_by, next supervision moment)."""
    window_start, resolve_by = rules.reopened_window(now, task["window_start"], task["resolve_by"])
    await store.forget_supervisions(conn, task["task_id"])
    return resolve_by, rules.next_supervision_at(window_start, resolve_by, (), town.rules.dispatch)


async def follow_merge(conn: asyncpg.Connection, town: Town, task: asyncpg.Record, *, merged: bool,
                       into_request_id: uuid.UUID, now: datetime, causation_id: Any = None) -> bool:
    """重复件: close the matter's task as `merged` (no points, out of rates), or, when the merge
    is undone, give it back the status it had with a new window of the original length (the
    time it spent merged is not the assignee's). False when there is nothing to change: a task
    already done when the merge came stays done."""
    if merged:
        if task["status"] not in rules.MERGEABLE_STATUSES:
            return False
        await store.update_task(conn, task["task_id"], status="merged", merged_from_status=task["status"],
                                merged_into=into_request_id, merged_at=now, next_supervision_at=None)
        status, resolve_by = "merged", task["resolve_by"]
    else:
        if task["status"] != "merged":
            return False
        status, resolve_by = task["merged_from_status"], task["resolve_by"]
        fields: dict[str, Any] = {"status": status, "merged_from_status": None, "merged_into": None,
                                  "merged_at": None}
        if status in rules.OPEN_STATUSES:  # a returned task waits for its redispatch instead
            resolve_by, next_at = await reopen_window(conn, town, task, now)
            fields |= {"window_start": now, "resolve_by": resolve_by, "next_supervision_at": next_at}
        await store.update_task(conn, task["task_id"], **fields)
    await enqueue(conn, task_event(town, TaskMerged, TaskMergedData(
        task_id=str(task["task_id"]), request_id=str(task["request_id"]), into_request_id=str(into_request_id),
        reversed=not merged, status=status, respond_by=task["respond_by"], resolve_by=resolve_by, at=now),
        task["task_id"], task["request_id"], now, causation_id))
    return True
