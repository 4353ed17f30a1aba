"""The one source of "now" for every service (SPEC §5.1).

In production it is the system clock. With TOWNFLOW_TEST_CLOCK=1 a test can set or advance it
through POST /v1/admin/clock; it then stays frozen at that moment until moved again, so tests
assert exact deadlines without sleeping, and `{"release": true}` gives it back to the system clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else datetime.now(UTC)

    @property
    def is_test_clock(self) -> bool:
        return self._frozen is not None

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("the test clock needs a time with its offset")
        self._frozen = moment.astimezone(UTC)
        self._notify()
        return self._frozen

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self.now() + delta)

    def release(self) -> datetime:
        """Back to the system clock, as at start-up (a test leaves no clock moved for the next)."""
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
