"""Enforcement's event handlers (policies): decode → flows, in the consumer's one transaction."""

from __future__ import annotations

import asyncpg

from townflow_shared.events import TaskDispatched

from . import flows
from .deps import Deps
from .unit_of_work import PostgresUnitOfWork


async def task_dispatched(conn: asyncpg.Connection, event: TaskDispatched, deps: Deps) -> None:
    """An enforcement or joint-visit task becomes an inspection need for its target."""
    await flows.task_dispatched(deps, PostgresUnitOfWork(conn), event.town_code, event.data)
