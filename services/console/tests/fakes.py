"""In-memory stand-ins for the console's database (store.py), for unit tests: sessions with the
same lifetimes, and failed sign-ins, on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from console.session import Session, id_hash, new_token


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 7, 9, 0, tzinfo=UTC))

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class _Row:
    session: Session
    started_at: datetime
    seen_at: datetime
    ended: bool = False


class FakeSessions:
    def __init__(self, clock: FakeClock, idle: timedelta = timedelta(minutes=30),
                 lifetime: timedelta = timedelta(hours=8)) -> None:
        self.clock, self.idle, self.lifetime = clock, idle, lifetime
        self.rows: dict[bytes, _Row] = {}

    async def begin(self, session: Session) -> str:
        session_id = new_token()
        self.rows[id_hash(session_id)] = _Row(session, self.clock.now, self.clock.now)
        return session_id

    async def resume(self, session_id: str, *, activity: bool) -> Session | None:
        row = self.rows.get(id_hash(session_id))
        now = self.clock.now
        if row is None or row.ended or row.seen_at <= now - self.idle or row.started_at <= now - self.lifetime:
            return None
        if activity:
            row.seen_at = now
        return row.session

    async def end(self, session_id: str) -> None:
        if (row := self.rows.get(id_hash(session_id))) is not None:
            row.ended = True

    async def update(self, session_id: str, session: Session) -> None:
        if (row := self.rows.get(id_hash(session_id))) is not None and not row.ended:
            row.session = session


class FakeFailures:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.failures: dict[str, list[datetime]] = {}

    async def for_update(self, subjects: Sequence[str]) -> tuple[datetime, dict[str, list[datetime]]]:
        return self.clock.now, {s: list(self.failures.get(s, [])) for s in subjects}

    async def save(self, failures: dict[str, list[datetime]]) -> None:
        self.failures.update(failures)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[FakeFailures]:
        yield self
