"""The unit of work: one transaction, giving a flow the store's operations and the outbox.

`UnitOfWork` is its shape; `PostgresUnitOfWork` the real one (asyncpg + `store.PgStore` +
`outbox.enqueue`); the unit tests run the flows on a fake one (`tests/fakes.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import asyncpg

from townflow_shared.db import Database
from townflow_shared.events import Envelope
from townflow_shared.outbox import enqueue

from .store import PgStore, Store


class UnitOfWork(Protocol):
    """What a flow works with inside its one transaction."""

    @property
    def store(self) -> Store: ...

    async def publish(self, *events: Envelope) -> None:
        """Events that leave when (and only if) the transaction commits: the outbox."""
        ...


class Transactions(Protocol):
    """Opens units of work: `writing()` for a command, `reading()` for a read of one snapshot."""

    def writing(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def reading(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[UnitOfWork]: ...


class PostgresUnitOfWork:
    """The real unit of work on a connection whose transaction the caller holds (a route's, or
    the consumer's, which commits its inbox row with what the handler did)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.store: Store = PgStore(conn)

    async def publish(self, *events: Envelope) -> None:
        await enqueue(self.conn, *events)


class PostgresTransactions:
    """Units of work on the service's database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        # A command's unit of work: one transaction on a pooled connection, as every service's.
        self.writing: Callable[[], AbstractAsyncContextManager[UnitOfWork]] = database.units_of_work(
            PostgresUnitOfWork)

    @asynccontextmanager
    async def reading(self, *, snapshot: bool = False) -> AsyncIterator[UnitOfWork]:
        """A read; with `snapshot`, several statements as of one moment (an inspection and its
        needs: a need that joins meanwhile, its units added to the inspection in the same
        transaction, is read with its units or not at all). Without, no transaction: one
        statement needs none, and BEGIN/COMMIT would be two more round trips."""
        async with self.database.pool.acquire() as conn:
            if not snapshot:
                yield PostgresUnitOfWork(conn)
                return
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                yield PostgresUnitOfWork(conn)
