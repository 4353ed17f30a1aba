"""Gauges that describe a whole service, reported by one replica at a time (SPEC §6.1).

The outbox backlog and age, open tasks by colour, cases near their limit: every replica could
read them from the shared database, but each would export them and dashboards and alerts that
sum over replicas would read double. One replica reports them: the one holding the service's
reporter lock (a PostgreSQL session advisory lock on a connection it keeps). Another replica
takes over when that connection goes (the replica died, or the database failed over, or it
stopped answering: the holding session carries `idle_session_timeout`, so PostgreSQL ends it when
a paused replica misses its pings); the others export none of these series, so a sum, a max or a
single series all read true."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from prometheus_client import Gauge

from .db import GAUGE_REPORTER_LOCK

log = logging.getLogger(__name__)
# Pings a holder may miss before PostgreSQL ends its session: 1.6 × the 5 s interval = 8 s, within
# the 10 s a paused replica may hold anything up (issue #26), and past one slow refresh.
HOLDER_MISSED_PINGS = 1.6
Refresh = Callable[[asyncpg.Pool], Awaitable[None]]


class GroupGauges:
    def __init__(self, pool_of: Callable[[], asyncpg.Pool], interval: float) -> None:
        self.pool_of = pool_of
        self.interval = interval
        self._refreshers: list[Refresh] = []
        self._gauges: list[Gauge] = []
        self._holder: asyncpg.Connection | None = None  # the connection holding the lock

    @property
    def reporting(self) -> bool:
        return self._holder is not None

    def add(self, refresh: Refresh, *gauges: Gauge) -> None:
        """`refresh` sets `gauges` from the database while this replica reports."""
        unlabelled = [g for g in gauges if not g._labelnames]
        if unlabelled:  # a gauge without labels cannot be withdrawn, only set to 0
            raise ValueError(f"group gauges need labels: {[g._name for g in unlabelled]}")
        self._refreshers.append(refresh)
        self._gauges.extend(gauges)

    async def run(self) -> None:
        try:
            while True:
                await self.report_once()
                await asyncio.sleep(self.interval)
        finally:
            await self._let_go()

    async def report_once(self) -> None:
        if not self._refreshers:
            return
        try:
            if await self._hold_lock():
                for refresh in self._refreshers:
                    await refresh(self.pool_of())
                return
        except Exception as exc:  # the database may be away: stop reporting until it is back
            log.warning("group gauges not refreshed: %s", exc)
            await self._let_go()
        self._withdraw()

    async def _hold_lock(self) -> bool:
        """Whether this replica holds the reporter lock, taking it if it is free."""
        if self._holder is not None:
            await self._holder.fetchval("SELECT 1")  # still connected, so still holding it
            return True
        conn = await self.pool_of().acquire()
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", GAUGE_REPORTER_LOCK):
            # The holder pings every interval; missing this many of them ends its session and so
            # frees the lock for another replica (a paused holder's kernel still answers TCP).
            await conn.execute("SELECT set_config('idle_session_timeout', $1, false)",
                               str(int(self.interval * HOLDER_MISSED_PINGS * 1000)))
            self._holder = conn
            return True
        await self.pool_of().release(conn)
        return False

    def _withdraw(self) -> None:
        for gauge in self._gauges:
            gauge.clear()

    async def _let_go(self) -> None:
        conn, self._holder = self._holder, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", GAUGE_REPORTER_LOCK)
            await conn.execute("RESET idle_session_timeout")  # the pool keeps session settings
        with contextlib.suppress(Exception):
            await self.pool_of().release(conn)
