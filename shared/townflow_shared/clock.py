"""The one source of "now" for every service (SPEC §5.1).

In production it is PostgreSQL's clock: one clock for every replica of every service, whatever
each machine's own clock says. Two ways, by what is at stake:

- What decides shared work — which supervision levels and case flags are due, claimed by any
  replica — reads the database's `now()` inside the claiming transaction (`Clock.database_now`).
- Every other "now" (a deadline computed at dispatch, an event's timestamp, a command judged in
  time or late) is the machine's clock corrected by its offset from the database's, measured at
  start-up and every `follow_seconds` after (`follow_database_clock`). A replica whose own clock
  runs minutes ahead computes the same deadlines as its peers.

With TOWNFLOW_TEST_CLOCK=1 a test can set or advance it through POST /v1/admin/clock; it then
stays frozen at that moment until moved again (the database's clock is not asked), so tests
assert exact deadlines without sleeping, and `{"release": true}` gives it back to the real clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)


class _Fetches(Protocol):
    async def fetchval(self, query: str, *args: Any) -> Any: ...


def _system_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    def __init__(self, system: Callable[[], datetime] = _system_now) -> None:
        self._frozen: datetime | None = None
        self._moved = asyncio.Event()
        self._system = system  # the machine's own clock (a test hands a skewed one)
        self._offset = timedelta(0)  # the database's clock minus the machine's, last measured

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else self._system() + self._offset

    @property
    def is_test_clock(self) -> bool:
        return self._frozen is not None

    @property
    def offset(self) -> timedelta:
        """How far the machine's clock is behind the database's (negative: ahead)."""
        return self._offset

    async def database_now(self, conn: _Fetches) -> datetime:
        """The moment that decides shared work: the database's `now()` (the start of `conn`'s
        transaction), or the test clock when a test has set it."""
        if self._frozen is not None:
            return self._frozen
        moment: datetime = await conn.fetchval("SELECT now()")
        return moment

    async def follow(self, conn: _Fetches) -> timedelta:
        """Measure the machine's offset from the database's clock (its `clock_timestamp()`
        against the middle of the round trip) and correct `now()` by it; the offset."""
        sent, started = self._system(), time.monotonic()
        moment: datetime = await conn.fetchval("SELECT clock_timestamp()")
        half_trip = timedelta(seconds=(time.monotonic() - started) / 2)
        offset = moment - (sent + half_trip)
        if abs(offset - self._offset) > timedelta(seconds=1):
            log.warning("this machine's clock is %.3f s %s the database's: following the database's",
                        abs(offset.total_seconds()), "behind" if offset > timedelta(0) else "ahead of")
        self._offset = offset
        return offset

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("the test clock needs a time with its offset")
        self._frozen = moment.astimezone(UTC)
        self._notify()
        return self._frozen

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self.now() + delta)

    def release(self) -> datetime:
        """Back to the real clock, as at start-up (a test leaves no clock moved for the next)."""
        self._frozen = None
        self._notify()
        return self.now()

    def _notify(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    async def wait_moved(self, timeout: float) -> None:
        """Sleep until `timeout` passes or a test moves the clock, whichever comes first."""
        try:
            await asyncio.wait_for(self._moved.wait(), timeout)
        except TimeoutError:
            pass


class _Runtime(Protocol):
    clock: Clock

    @property
    def pool(self) -> Any: ...


def follow_database_clock(follow_seconds: float = 10.0) -> Callable[[Any], Any]:
    """A service's background loop (`runtime.every(...)`): its clock follows the database's."""

    async def follow_database_clock(runtime: _Runtime) -> None:
        while True:
            async with runtime.pool.acquire() as conn:
                await runtime.clock.follow(conn)
            await asyncio.sleep(follow_seconds)

    return follow_database_clock
