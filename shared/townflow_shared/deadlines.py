"""Work that falls due on the clock (supervision levels, case deadlines), drained in batches.

Each service stores when a row is next due (an indexed column) and gives a batch function that
claims the due rows earliest first with `FOR UPDATE SKIP LOCKED`, handles them and moves each
one's next moment on. `drain_due` runs batch after batch, one transaction each, until a batch
comes back short: a backlog of thousands is cleared in one wake-up, replicas share the batches
instead of waiting for each other, and the newest due row is reached too (SPEC §6.1).

What is due is decided by the database's clock (`now()` of the claiming transaction), never by
the replica's own: a replica whose clock runs ahead would otherwise claim rows before their
moment and publish them early (the test clock, when a test sets it, decides instead)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .clock import Clock
from .db import transaction


@dataclass(frozen=True)
class DueBatch:
    claimed: int  # rows taken from the due index
    done: int     # what they produced (events published, flags set)
    failed: int   # rows skipped because they could not be worked out (logged; tried next wake-up)


# (conn, now, limit) -> what the batch did; the rows it handled are not due again before `now`.
HandleDue = Callable[[asyncpg.Connection, datetime, int], Awaitable[DueBatch]]


async def drain_due(pool: asyncpg.Pool, clock: Clock, handle: HandleDue, batch_size: int) -> int:
    """Handle everything due now; the total `done`."""
    done = 0
    while True:
        async with transaction(pool) as conn:
            batch = await handle(conn, await clock.database_now(conn), batch_size)
        done += batch.done
        # A short batch means nothing more is due; a batch that failed whole would fail again.
        if batch.claimed < batch_size or batch.failed == batch.claimed:
            return done
