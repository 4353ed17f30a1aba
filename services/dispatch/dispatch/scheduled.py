"""Dispatch's loop on the clock: supervision (督办) of open tasks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import asyncpg

from townflow_shared.clock import Clock
from townflow_shared.deadlines import drain_due
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.town import Town

from . import flows
from .settings import DispatchSettings


async def supervise_all_due(pool: asyncpg.Pool, towns: Mapping[str, Town], clock: Clock,
                            batch_size: int) -> int:
    """Publish every supervision level due now in every town (see townflow_shared.deadlines); how many."""
    return await drain_due(pool, clock, lambda conn, now, limit: flows.supervise_due(conn, towns, now, limit),
                           batch_size)


def supervision_loop(settings: DispatchSettings) -> Callable[[ServiceRuntime], Awaitable[None]]:
    async def supervision_loop(runtime: ServiceRuntime) -> None:
        """Wakes every `supervision_seconds`, or at once when a test moves the clock."""
        while True:
            await supervise_all_due(runtime.pool, runtime.county.towns, runtime.clock, settings.supervision_batch_size)
            await runtime.clock.wait_moved(settings.supervision_seconds)

    return supervision_loop
