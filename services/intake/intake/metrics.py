"""Intake's gauges of the citizens' SMS (docs/notify.md "Citizens' SMS"): what is due to be sent and
not yet, and for how long, per town; a gateway down or refusing shows here first."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

from townflow_shared.metrics import gauge

from .store import PgStore

SMS_WAITING = gauge("townflow_intake_sms_waiting",
                    "Citizens' SMS due and not yet sent (held for quiet hours or the callback's day: not yet due)",
                    "town")
SMS_FAILING = gauge("townflow_intake_sms_failing", "Citizens' SMS due after at least one failed attempt", "town")
SMS_OLDEST_WAITING = gauge("townflow_intake_sms_oldest_waiting_seconds",
                           "How long the oldest citizens' SMS due has waited to be sent", "town")
GAUGES = (SMS_WAITING, SMS_FAILING, SMS_OLDEST_WAITING)


async def refresh_gauges(pool: asyncpg.Pool, towns: Iterable[str], now: datetime) -> None:
    """Group-wide (one replica at a time, townflow_shared.group_gauges): 0 for a town with none.
    `now` is the towns' clock, the one a message's hold runs on."""
    async with pool.acquire() as conn:
        by_town = await PgStore(conn).sms_waiting(now)
    for town in towns:
        waiting, failing, oldest = by_town.get(town, (0, 0, 0.0))
        SMS_WAITING.labels(town).set(waiting)
        SMS_FAILING.labels(town).set(failing)
        SMS_OLDEST_WAITING.labels(town).set(oldest)
