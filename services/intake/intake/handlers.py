"""Intake's event handlers (policies): the citizen's status timeline, built from what dispatch and
enforcement publish. Each runs its flow (`flows.follow_*`) on a unit of work over the consumer's
transaction, which already holds the event's inbox row, so the steps commit with it."""

from __future__ import annotations

import asyncpg

from townflow_shared import events

from . import flows
from .flows import Deps
from .store import PgUnitOfWork


async def task_dispatched(conn: asyncpg.Connection, event: events.TaskDispatched, deps: Deps) -> None:
    await flows.follow_task_dispatched(deps, PgUnitOfWork(conn), event)


async def task_accepted(conn: asyncpg.Connection, event: events.TaskAccepted, deps: Deps) -> None:
    await flows.follow_task_accepted(deps, PgUnitOfWork(conn), event)


async def task_returned(conn: asyncpg.Connection, event: events.TaskReturned, deps: Deps) -> None:
    await flows.follow_task_returned(deps, PgUnitOfWork(conn), event)


async def task_supervised(conn: asyncpg.Connection, event: events.TaskSupervised, deps: Deps) -> None:
    await flows.follow_task_supervised(deps, PgUnitOfWork(conn), event)


async def task_extended(conn: asyncpg.Connection, event: events.TaskExtended, deps: Deps) -> None:
    await flows.follow_task_extended(deps, PgUnitOfWork(conn), event)


async def task_completed(conn: asyncpg.Connection, event: events.TaskCompleted, deps: Deps) -> None:
    await flows.follow_task_completed(deps, PgUnitOfWork(conn), event)


async def task_verified(conn: asyncpg.Connection, event: events.TaskVerified, deps: Deps) -> None:
    await flows.follow_task_verified(deps, PgUnitOfWork(conn), event)


async def inspection_done(conn: asyncpg.Connection, event: events.InspectionDone, deps: Deps) -> None:
    await flows.follow_inspection_done(deps, PgUnitOfWork(conn), event)


async def task_callback(conn: asyncpg.Connection, event: events.TaskCallback, deps: Deps) -> None:
    await flows.follow_task_callback(deps, PgUnitOfWork(conn), event)
