"""The inbox (SPEC §6): an event's effect and the record that it was handled commit together,
so a redelivered event (after a crash, a rebalance or a replay) changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from .events import Envelope
from .metrics import DUPLICATES_SKIPPED

Effect = Callable[[asyncpg.Connection], Awaitable[None]]


async def handle_once(pool: asyncpg.Pool, service: str, handler: str, event: Envelope,
                      effect: Effect) -> bool:
    """Run `effect` in one transaction with the inbox row; False if the event was handled before."""
    async with pool.acquire() as conn, conn.transaction():
        fresh = await conn.fetchval(
            "INSERT INTO inbox (handler, event_id, topic) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            handler, event.id, event.topic,
        )
        if not fresh:
            DUPLICATES_SKIPPED.labels(service, event.topic).inc()
            return False
        await effect(conn)
        return True
