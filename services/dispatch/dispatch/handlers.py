"""Dispatch's event handlers: decode → rules → store + outbox, one transaction each."""

from __future__ import annotations

import uuid

import asyncpg

from townflow_shared.checks import present
from townflow_shared.dlq import Rejected
from townflow_shared.events import InspectionDone, RequestFiled, RequestMerged
from townflow_shared.runtime import ServiceRuntime

from . import flows, store


class UnknownItem(Rejected):
    """The filed item is not in this town's catalog: the event goes to the DLQ."""


async def request_filed(conn: asyncpg.Connection, event: RequestFiled, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)  # a town this deployment does not serve: poison
    d = event.data
    if d.item_code not in town.catalog:
        raise UnknownItem(f"item {d.item_code!r} is not in the catalog of town {town.code}")
    now = runtime.clock.now()
    await store.record_matter(conn, town.code, d, event.id, now)
    matter = flows.Matter(uuid.UUID(d.request_id), d.ticket_no, d.item_code, d.colour, d.village,
                          d.location, d.target)
    task_id = await flows.dispatch_matter(conn, town, matter, now=now, causation_id=event.id)
    merge = await store.merge_state(conn, matter.request_id)
    if merge is not None and merge["merged"]:  # the merge reached us before the filing did
        task = present(await store.task_for_update(conn, task_id), "the task just dispatched")
        await flows.follow_merge(conn, town, task, merged=True, into_request_id=merge["into_request_id"],
                                 now=now, causation_id=merge["event_id"])


async def request_merged(conn: asyncpg.Connection, event: RequestMerged, runtime: ServiceRuntime) -> None:
    """重复件: the merged matter's task closes as `merged`, or reopens when the merge is undone.
    The state is kept per matter, so a task dispatched later (its filing still on the way) follows it."""
    town = runtime.town_of(event.town_code)
    d = event.data
    request_id, into = uuid.UUID(d.request_id), uuid.UUID(d.into_request_id)
    await store.save_merge_state(conn, town.code, request_id, into, not d.reversed, d.at, event.id)
    task = await store.current_task_for_update(conn, town.code, request_id)
    if task is not None:
        await flows.follow_merge(conn, town, task, merged=not d.reversed, into_request_id=into,
                                 now=runtime.clock.now(), causation_id=event.id)


async def inspection_done(conn: asyncpg.Connection, event: InspectionDone, runtime: ServiceRuntime) -> None:
    """The tasks of the town an inspection covered are completed with its outcome (and verified by it)."""
    town = runtime.town_of(event.town_code)
    d = event.data
    outcomes = {f.task_id: f for f in d.findings}
    ids = [uuid.UUID(t) for t in d.task_ids]
    now = runtime.clock.now()
    for task in await store.tasks_for_update(conn, town.code, ids):
        if task["status"] not in ("dispatched", "accepted", "rework"):
            continue  # already completed or handed back: the inspection does not reopen it
        finding = outcomes.get(str(task["task_id"]))
        outcome = finding.outcome if finding else "inspected"
        note = f" — {finding.note}" if finding and finding.note else ""
        await flows.complete_task(conn, town, task, by=",".join(d.officers),
                                  resolution=f"inspection {d.inspection_id}: {outcome}{note}",
                                  now=now, inspection_id=d.inspection_id, causation_id=event.id)
