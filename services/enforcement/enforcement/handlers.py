"""Enforcement's event handlers and its clock-driven loop."""

from __future__ import annotations

import asyncpg

from townflow_shared.db import transaction
from townflow_shared.dlq import Rejected
from townflow_shared.events import TaskDispatched
from townflow_shared.runtime import ServiceRuntime

from . import flows, store
from .metrics import refresh_gauges


async def task_dispatched(conn: asyncpg.Connection, event: TaskDispatched, runtime: ServiceRuntime) -> None:
    """An enforcement or joint-visit task becomes an inspection need for its target."""
    d = event.data
    if d.kind not in ("enforcement", "joint_visit"):
        return
    if d.item_code not in runtime.town.catalog:
        raise Rejected(f"item {d.item_code!r} is not in this town's catalog")
    await flows.add_need(conn, runtime, target=d.target or d.location, item_code=d.item_code,
                         source="task", task_id=d.task_id, request_id=d.request_id,
                         now=runtime.clock.now())


async def case_deadline_loop(runtime: ServiceRuntime) -> None:
    """Flags cases at day 60 and past the decision limit; a moved test clock wakes it at once."""
    while True:
        now = runtime.clock.now()
        async with transaction(runtime.pool) as conn:
            await flows.flag_cases(conn, runtime, now)
        counts = await store.counts(runtime.pool)
        refresh_gauges(counts)
        await runtime.clock.wait_moved(30.0)
