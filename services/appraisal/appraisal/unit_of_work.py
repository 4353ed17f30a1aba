"""A unit of work: one transaction giving a command handler the store's operations and `publish`
(the outbox), committed together or not at all. The real one is asyncpg + store.py + the outbox;
the unit tests' fake (tests/fakes.py) keeps the same shape in dicts."""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType
from typing import Protocol

from townflow_shared.audit_trail import committed, record_pending
from townflow_shared.db import Database
from townflow_shared.events import Envelope
from townflow_shared.outbox import enqueue

from .store import AppraisalStore, Store


class UnitOfWork(Protocol):
    store: AppraisalStore

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None: ...

    def publish(self, *events: Envelope) -> None:
        """Events to put in the outbox when the unit of work commits."""


class UnitsOfWork(Protocol):
    """Makes a unit of work: `readonly` for a read, which sees one snapshot of every statement."""

    def __call__(self, *, readonly: bool = False) -> UnitOfWork: ...


class PostgresUnitOfWork:
    """One transaction on a pooled connection; what was published goes to the outbox in it."""

    store: AppraisalStore

    def __init__(self, database: Database, *, readonly: bool = False) -> None:
        self.database = database
        self.readonly = readonly
        self._events: list[Envelope] = []
        self._exits = AsyncExitStack()

    async def __aenter__(self) -> PostgresUnitOfWork:
        self._events = []
        conn = await self._exits.enter_async_context(self.database.pool.acquire())
        # A read sees one snapshot across its statements (a month's totals and its parent scores).
        isolation = "repeatable_read" if self.readonly else None
        self._transaction = conn.transaction(readonly=self.readonly, isolation=isolation)
        await self._transaction.start()
        self._conn = conn
        self.store = Store(conn)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if kind is None:
                if self._events:
                    await enqueue(self._conn, *self._events)
                # the request's audit record, with its change (a read-only one, a what-if: the middleware's)
                written = [] if self.readonly else await record_pending(self._conn)
                await self._transaction.commit()
                committed(written)
            else:
                await self._transaction.rollback()
        finally:
            await self._exits.aclose()

    def publish(self, *events: Envelope) -> None:
        self._events.extend(events)


def postgres(database: Database) -> UnitsOfWork:
    """The real units of work over the service's database."""

    def unit_of_work(*, readonly: bool = False) -> UnitOfWork:
        return PostgresUnitOfWork(database, readonly=readonly)

    return unit_of_work
