"""Intake's event handlers: the citizen's status timeline, built from what dispatch and
enforcement publish. Each runs in one transaction with its inbox row.

Every event names its town (SPEC §8): it steps only that town's requests, and an event for a
town this deployment does not serve is poison (`scope.town_of_event` rejects it). Each handler is
handed the service's `Deps` by the consumer and works through the store on the consumer's
transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from townflow_shared.events import (
    InspectionDone,
    TaskAccepted,
    TaskCallback,
    TaskCompleted,
    TaskDispatched,
    TaskExtended,
    TaskReturned,
    TaskSupervised,
    TaskVerified,
)
from townflow_shared.scope import town_of_event
from townflow_shared.town import Town

from . import rules
from .flows import Deps
from .store import PgStore


async def _step(conn: asyncpg.Connection, town: Town, request_id: str, at: datetime, step: str,
                detail: dict[str, Any], event_id: uuid.UUID, status: str | None = None,
                completed_at: datetime | None = None) -> None:
    rid, store = uuid.UUID(request_id), PgStore(conn)
    current = await store.step_and_status(town.code, rid, at, step, detail, event_id)
    if current is None:
        return  # not a matter of the event's town filed here: nothing of ours to update
    if status is not None and rules.newer_status(current["status"], current["status_at"], status, at):
        await store.set_status(rid, status, at, completed_at)


async def task_dispatched(conn: asyncpg.Connection, event: TaskDispatched, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    early_steps = await PgStore(conn).link_task(d.task_id, uuid.UUID(d.request_id))
    await _step(conn, town, d.request_id, d.dispatched_at, "dispatched",
                {"task_id": d.task_id, "module": d.lead_module, "colour": d.colour,
                 "resolve_by": d.resolve_by.isoformat()}, event.id, status="dispatched")
    for early in early_steps:
        await _step(conn, town, d.request_id, early["at"], "inspected", early["detail"], early["event_id"])


async def task_accepted(conn: asyncpg.Connection, event: TaskAccepted, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await _step(conn, town, d.request_id, d.accepted_at, "accepted", {"task_id": d.task_id},
                event.id, status="in_progress")


async def task_returned(conn: asyncpg.Connection, event: TaskReturned, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await _step(conn, town, d.request_id, d.returned_at, "returned", {"task_id": d.task_id},
                event.id, status="returned")


async def task_supervised(conn: asyncpg.Connection, event: TaskSupervised, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await _step(conn, town, d.request_id, d.at, "supervised", {"level": d.level}, event.id)


async def task_extended(conn: asyncpg.Connection, event: TaskExtended, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await _step(conn, town, d.request_id, event.time, "extended",
                {"days": d.days, "resolve_by": d.resolve_by.isoformat()}, event.id)


async def task_completed(conn: asyncpg.Connection, event: TaskCompleted, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await _step(conn, town, d.request_id, d.completed_at, "completed",
                {"task_id": d.task_id, "on_time": d.on_time}, event.id,
                status="completed", completed_at=d.completed_at)


async def task_verified(conn: asyncpg.Connection, event: TaskVerified, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await _step(conn, town, d.request_id, d.at, "verified", {"passed": d.passed}, event.id,
                status="closed" if d.passed else "rework")


async def inspection_done(conn: asyncpg.Connection, event: InspectionDone, deps: Deps) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    known = await PgStore(conn).requests_of_tasks(d.task_ids)
    outcomes = {f.task_id: f.outcome for f in d.findings}
    for task_id in d.task_ids:
        detail = {"inspection_id": d.inspection_id, "outcome": outcomes.get(task_id)}
        if task_id in known:
            await _step(conn, town, known[task_id], d.finished_at, "inspected", detail, event.id)
        else:  # its dispatch has not reached us yet: the step waits for it (see task_dispatched)
            await PgStore(conn).keep_early_inspection_step(task_id, d.finished_at, detail, event.id)


async def task_callback(conn: asyncpg.Connection, event: TaskCallback, deps: Deps) -> None:
    """回访: a step on the citizen's timeline; an unsatisfied callback reopens the matter (重办)."""
    town, d = town_of_event(deps.county, event.town_code), event.data
    await _step(conn, town, d.request_id, d.at, "callback",
                {"task_id": d.task_id, "reached": d.reached, "rating": d.rating, "reopened": d.reopened},
                event.id, status="reopened" if d.reopened else None)
