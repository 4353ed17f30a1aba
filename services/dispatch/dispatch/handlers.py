"""Dispatch's event handlers (policies): each runs its flow in the consumer's transaction, which
already holds the event's inbox row, so the task's change and its events commit with it."""

from __future__ import annotations

import asyncpg

from townflow_shared.events import InspectionDone, RequestFiled, RequestMerged

from . import flows
from .flows import Deps, UnknownItem
from .store import PgUnitOfWork

__all__ = ["UnknownItem", "inspection_done", "request_filed", "request_merged"]


async def request_filed(conn: asyncpg.Connection, event: RequestFiled, deps: Deps) -> None:
    await flows.dispatch_filed(deps, PgUnitOfWork(conn), event)


async def request_merged(conn: asyncpg.Connection, event: RequestMerged, deps: Deps) -> None:
    await flows.follow_request_merged(deps, PgUnitOfWork(conn), event)


async def inspection_done(conn: asyncpg.Connection, event: InspectionDone, deps: Deps) -> None:
    await flows.complete_inspected(deps, PgUnitOfWork(conn), event)
