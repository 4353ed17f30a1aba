"""Dispatch's event handlers: decode → rules → store + outbox, one transaction each."""

from __future__ import annotations

import uuid

import asyncpg

from townflow_shared.dlq import Rejected
from townflow_shared.events import InspectionDone, RequestFiled
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
    await flows.dispatch_matter(conn, town, matter, now=now, causation_id=event.id)


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
