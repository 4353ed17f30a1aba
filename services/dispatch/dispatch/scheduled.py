"""Dispatch's loops: supervision (督办) of open tasks on the clock; the orphan sweep of its photos'
objects (issue #29)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from townflow_shared.clock import Clock
from townflow_shared.deadlines import drain_due
from townflow_shared.town import Town

from . import flows
from .flows import Deps
from .store import PgUnitOfWork


async def supervise_all_due(pool: asyncpg.Pool, towns: Mapping[str, Town], clock: Clock,
                            batch_size: int) -> int:
    """Publish every supervision level due now in every town (see townflow_shared.deadlines); how many."""
    return await drain_due(pool, clock, lambda conn, now, limit: flows.supervise_due(
        PgUnitOfWork(conn), towns, now, limit), batch_size)


def supervision_loop(deps: Deps) -> Callable[[Any], Awaitable[None]]:
    """The loop the service runs for its life (its argument, the process runtime, is not used)."""

    async def supervision_loop(_: Any) -> None:
        """Wakes every `supervision_seconds`, or at once when a test moves the clock."""
        while True:
            await supervise_all_due(deps.database.pool, deps.county.towns, deps.clock,
                                    deps.settings.supervision_batch_size)
            await deps.clock.wait_moved(deps.settings.supervision_seconds)

    return supervision_loop
