"""PostgreSQL access: the pool, migrations applied at start-up, and the transaction helper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TypeVar

import asyncpg

from .checks import present

SHARED_MIGRATIONS = Path(str(resources.files("townflow_shared") / "migrations"))
# A database that is away, restarting or read-only (a managed PostgreSQL's failover): what the
# consumers wait out and the HTTP routes answer with 503 instead of 500.
OUTAGES: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # asyncpg's own state checks, seen when the server ends a pooled connection in mid-use
    # (pg_terminate_backend during a failover): the next connection is a new one.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # disk full, too many connections
    OSError,
    TimeoutError,
)
# PostgreSQL advisory lock ids, all in one place so no two uses ever take the same one (each
# service has its own database; 72_410 keeps clear of other applications' small ids).
# Two replicas must not migrate the same database at once:
MIGRATION_LOCK = 72_410_001
# One relay of a service publishes at a time, so rows leave the outbox in id order with replicas:
RELAY_LOCK = 72_410_002
# One replica of a service reports the group-wide gauges (group_gauges.py):
GAUGE_REPORTER_LOCK = 72_410_003


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """asyncpg still rolls back an open transaction and drops listeners on release. Its reset
    query (a round trip per acquire) is not needed: we keep no session state (no SET, session
    advisory locks are released where taken, LISTEN only on the relay's own connection)."""


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     reset=_no_session_reset)
    return present(pool, "the connection pool")


async def migrate(pool: asyncpg.Pool, folders: Sequence[Path], default_town: str | None = None) -> list[str]:
    """Apply every not-yet-applied `NNN_*.sql` of each folder, in order; return what ran.

    A migration that gives existing rows their town reads it from the session setting
    `townflow.default_town` (empty when there is none to give: a county without a legacy town)."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await conn.execute("SELECT set_config('townflow.default_town', $1, false)", default_town or "")
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for folder in folders:
                for path in sorted(folder.glob("*.sql")):
                    name = f"{folder.parent.name}/{path.name}"
                    if name in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(path.read_text(encoding="utf-8"))
                        await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", name)
                    applied.append(name)
        finally:
            await conn.execute("SELECT set_config('townflow.default_town', '', false)")
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


U = TypeVar("U")


class Database:
    """A service's PostgreSQL pool, opened at start-up and handed by name to whatever needs it
    (the bootstrap's deps, the relay, the consumer); a rebuild points it at another database."""

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the service has not started")
        return self._pool

    @property
    def opened(self) -> bool:
        return self._pool is not None

    def use(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def transaction(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """One transaction on a pooled connection."""
        return transaction(self.pool)

    def units_of_work(self, over: Callable[[asyncpg.Connection], U]) -> Callable[[], AbstractAsyncContextManager[U]]:
        """A service's real units of work: each one is `over(conn)` on a transaction of its own."""

        @asynccontextmanager
        async def unit_of_work() -> AsyncIterator[U]:
            async with self.transaction() as conn:
                yield over(conn)

        return unit_of_work
