"""Notify's gauges: what waits to be sent, and for how long (a receiver down shows here first)."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from townflow_shared.metrics import counter, gauge

from .store import PgStore

WAITING = gauge("townflow_notify_deliveries_waiting", "Messages not yet sent (due, or waiting after a failure)",
                "town")
FAILING = gauge("townflow_notify_deliveries_failing", "Messages waiting after at least one failed attempt", "town")
OLDEST_WAITING = gauge("townflow_notify_oldest_waiting_seconds", "Age of the oldest message not yet sent",
                       "town")
GAUGES = (WAITING, FAILING, OLDEST_WAITING)
# Counted by the replica that sent (or tried): messages by kind of channel and outcome.
# Each pass of this replica's digest loop: a test waits for passes, not for a time, to see no second digest.
DIGEST_PASSES = counter("townflow_notify_digest_passes_total", "Passes of the daily digest's loop")
MESSAGES = counter("townflow_notify_messages_total", "Messages sent or failed, by channel kind and outcome",
                   "kind", "outcome")


async def refresh_gauges(pool: asyncpg.Pool, towns: Iterable[str]) -> None:
    """Group-wide (one replica at a time, townflow_shared.group_gauges): 0 for a town with none."""
    async with pool.acquire() as conn:
        by_town = await PgStore(conn).waiting()
    for town in towns:
        waiting, failing, oldest = by_town.get(town, (0, 0, 0.0))
        WAITING.labels(town).set(waiting)
        FAILING.labels(town).set(failing)
        OLDEST_WAITING.labels(town).set(oldest)
