"""Enforcement's event handlers: decode → flows, one transaction each."""

from __future__ import annotations

import asyncpg

from townflow_shared.dlq import Rejected
from townflow_shared.events import TaskDispatched
from townflow_shared.runtime import ServiceRuntime

from . import flows


async def task_dispatched(conn: asyncpg.Connection, event: TaskDispatched, runtime: ServiceRuntime) -> None:
    """An enforcement or joint-visit task becomes an inspection need for its target in the
    event's town (a town this deployment does not serve: dead-lettered)."""
    d = event.data
    if d.kind not in ("enforcement", "joint_visit"):
        return
    town = runtime.town_of(event.town_code)
    if d.item_code not in town.catalog:
        raise Rejected(f"item {d.item_code!r} is not in the catalog of town {town.code}")
    await flows.add_need(conn, town, target=d.target or d.location, item_code=d.item_code,
                         source="task", task_id=d.task_id, request_id=d.request_id,
                         now=runtime.clock.now())
