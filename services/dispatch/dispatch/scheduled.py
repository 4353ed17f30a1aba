"""Dispatch's loops: supervision (督办) of open tasks on the clock; the orphan sweep of its photos'
objects (issue #29)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from townflow_shared.clock import Clock
from townflow_shared.deadlines import drain_due
from townflow_shared.objects import StoreUnavailable
from townflow_shared.town import Town

from . import attachments, flows
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


def photo_sweep_loop(deps: Deps) -> Callable[[Any], Awaitable[None]]:
    """The orphan sweep of dispatch's photo objects (attachments.sweep_orphans), for the service's life."""

    async def photo_sweep_loop(_: Any) -> None:
        """Wakes every `dispatch_photo_sweep_seconds` on the wall clock, not the service's (a test
        moves that one): an object's age is the object store's own clock. Replicas may sweep at
        once; removing an orphan twice is no harm. It lists dispatch's prefix alone."""
        while deps.objects is not None:
            older_than = datetime.now(UTC) - timedelta(seconds=deps.settings.dispatch_photo_orphan_grace_seconds)
            try:
                removed = await attachments.sweep_orphans(deps.objects, deps.unit_of_work, older_than)
                if removed:
                    logging.getLogger(__name__).info("removed %d photo objects no task recorded", removed)
            except StoreUnavailable as error:
                logging.getLogger(__name__).warning("photo sweep: the object store did not answer: %s", error)
            await asyncio.sleep(deps.settings.dispatch_photo_sweep_seconds)

    return photo_sweep_loop
