"""In-memory stand-ins for the console's database (store.py), for unit tests: sessions with the
same lifetimes, failed sign-ins and the audit records each writes (`records`), on a clock the
test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from console import session_audit
from console.session import Session, id_hash, new_token
from console.session_audit import Account, Where
from townflow_shared.audit import Entry


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
        self.records: list[Entry] = []

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

    async def end(self, session_id: str, action: str, where: Where) -> None:
        if (row := self.rows.get(id_hash(session_id))) is not None and not row.ended:
            row.ended = True
            if row.session.person is not None:
                self.records.append(session_audit.record(action, self.clock.now,
                                                         Account.of(row.session.person, signed_in=True), where))

    async def end_expired(self) -> int:
        now, ended = self.clock.now, 0
        for row in self.rows.values():
            idle_at, lifetime_at = row.seen_at + self.idle, row.started_at + self.lifetime
            if not row.ended and min(idle_at, lifetime_at) <= now and row.session.person is not None:
                row.ended, ended = True, ended + 1
                self.records.append(session_audit.record(
                    session_audit.IDLE_TIMEOUT if idle_at < lifetime_at else session_audit.LIFETIME_END,
                    min(idle_at, lifetime_at), Account.of(row.session.person, signed_in=True), session_audit.NOWHERE))
        return ended

    async def update(self, session_id: str, session: Session) -> None:
        if (row := self.rows.get(id_hash(session_id))) is not None and not row.ended:
            row.session = session


class FakeFailures:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.failures: dict[str, list[datetime]] = {}
        self.records: list[Entry] = []

    async def for_update(self, subjects: Sequence[str]) -> tuple[datetime, dict[str, list[datetime]]]:
        return self.clock.now, {s: list(self.failures.get(s, [])) for s in subjects}

    async def save(self, failures: dict[str, list[datetime]]) -> None:
        self.failures.update(failures)

    async def record(self, entries: Sequence[Entry]) -> None:
        self.records.extend(entries)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[FakeFailures]:
        yield self


class FakeRecords:
    """store.AuditRecords: the records of what has no other transaction (a provider's sign-in)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.records: list[Entry] = []

    async def write(self, build: Callable[[datetime], Sequence[Entry]]) -> None:
        self.records.extend(build(self.clock.now))
