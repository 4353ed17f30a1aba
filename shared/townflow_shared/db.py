"""PostgreSQL access: the pool, migrations applied at start-up, and the transaction helper."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import asyncpg

from .checks import present
from .metrics import STUCK_SESSIONS_ENDED

log = logging.getLogger(__name__)

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
    # Waited longer than the session's limits (SessionLimits): a lock held by a stalled replica
    # until PostgreSQL ended it, or a statement cut short; the retry finds the way clear.
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.QueryCanceledError,
    OSError,
    TimeoutError,
)
# A transaction PostgreSQL undid to let another through: a deadlock's victim (a rolling upgrade's
# migration against a rating, seen once as a 500) or a serialization conflict. Nothing of it was
# kept and sending it again is safe: an HTTP request is answered 503 `service.busy`; a consumer's
# batch is tried again, as any batch that is not poison.
ROLLED_BACK: tuple[type[Exception], ...] = (asyncpg.exceptions.TransactionRollbackError,)
# PostgreSQL advisory lock ids, all in one place so no two uses ever take the same one (each
# service has its own database; 72_410 keeps clear of other applications' small ids).
# Two replicas must not migrate the same database at once:
MIGRATION_LOCK = 72_410_001
# One relay of a service publishes at a time, so a key's rows leave the outbox in the order they
# were written, with replicas (rows of different keys may pass each other: ids are taken before commit):
RELAY_LOCK = 72_410_002
# One replica of a service reports the group-wide gauges (group_gauges.py):
GAUGE_REPORTER_LOCK = 72_410_003
# Appraisal's figures of one town-month are read and published by one transaction at a time (the
# month's hash is the second key; the two-key form's space is apart from the one-key form's):
FIGURES_LOCK = 72_410_004


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """asyncpg still rolls back an open transaction and drops listeners on release. Its reset
    query (a round trip per acquire) is not needed: we keep no session state (no SET, session
    advisory locks are released where taken, LISTEN only on the relay's own connection)."""


# How soon PostgreSQL notices a client host that went away without closing (a partition, a
# frozen VM): TCP keepalives after this many idle seconds, then KEEPALIVE_PROBES probes this far
# apart, and tcp_user_timeout for data that is never acknowledged. A paused process is not
# caught this way (its kernel still answers): the idle-in-transaction timeout is what catches it.
KEEPALIVE_IDLE_SECONDS = 4
KEEPALIVE_INTERVAL_SECONDS = 2
KEEPALIVE_PROBES = 2


@dataclass(frozen=True)
class SessionLimits:
    """How long PostgreSQL lets a service's session hold or wait for anything (issue #26).

    `idle_in_transaction`: a session that sits in an open transaction this long without a
    statement is ended, with its locks — a replica paused while it holds the relay lock, claimed
    due rows (FOR UPDATE) or any row lock lets go of them within that time instead of for as long
    as the pause lasts. Nothing of ours waits that long inside a transaction when healthy (the
    relay's longest wait is the broker's acknowledgement). `lock`: no statement waits longer for a
    lock (it fails as an outage: 503, or a consumer's retry). `statement`: no statement runs
    longer, which also ends one whose paused client stopped reading its rows. None: no limit."""

    idle_in_transaction_seconds: float | None = None
    lock_seconds: float | None = None
    statement_seconds: float | None = None


def session_settings(service: str, limits: SessionLimits) -> dict[str, str]:
    """The server-side settings of every connection a service opens: `application_name` names the
    process (`pg_stat_activity` shows which replica holds what), keepalives and `limits`."""
    settings = {
        "application_name": f"{service} pid {os.getpid()}"[:63],
        "tcp_keepalives_idle": str(KEEPALIVE_IDLE_SECONDS),
        "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL_SECONDS),
        "tcp_keepalives_count": str(KEEPALIVE_PROBES),
        "tcp_user_timeout": str((KEEPALIVE_IDLE_SECONDS + KEEPALIVE_INTERVAL_SECONDS * KEEPALIVE_PROBES) * 1000),
    }
    for name, seconds in (("idle_in_transaction_session_timeout", limits.idle_in_transaction_seconds),
                          ("lock_timeout", limits.lock_seconds), ("statement_timeout", limits.statement_seconds)):
        if seconds is not None:
            settings[name] = str(int(seconds * 1000))
    return settings


# A session mid-protocol: it has sent part of an extended-query exchange (asyncpg's Parse/Describe
# and Flush of a statement it has not prepared on that connection yet, or a pipeline's first
# Bind/Execute) and its backend waits for the rest (`active`, waiting on ClientRead). Neither
# idle_in_transaction_session_timeout (it is not idle) nor statement_timeout (nothing runs) ends
# it, and it keeps every lock its transaction took. A healthy client sends the rest within a
# round trip; one that has not for `$1` seconds is stopped (SIGSTOP, a frozen VM, a stalled loop)
# and is ended with its transaction. `state_change` moves with every message the backend reads,
# so it says how long the client has sent nothing. Only the sessions of our own role in our own
# database: PostgreSQL 15 lets a role end its own sessions without superuser.
END_STUCK_SESSIONS = (
    "SELECT pid, application_name, left(query, 200) AS query,"
    " extract(epoch FROM clock_timestamp() - state_change)::float8 AS stuck_seconds,"
    " pg_terminate_backend(pid) AS ended"
    " FROM pg_stat_activity"
    " WHERE usename = current_user AND datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
    " AND state = 'active' AND wait_event_type = 'Client' AND wait_event = 'ClientRead'"
    " AND state_change < clock_timestamp() - make_interval(secs => $1)")


async def end_stuck_sessions(conn: asyncpg.Connection, stuck_seconds: float) -> list[asyncpg.Record]:
    """End the sessions of this service stuck mid-protocol longer than `stuck_seconds`; which."""
    ended: list[asyncpg.Record] = await conn.fetch(END_STUCK_SESSIONS, stuck_seconds)
    for r in ended:
        log.warning("ended session %s (%s): it had waited %.1fs mid-statement for its client, holding its"
                    " transaction's locks; query: %s", r["pid"], r["application_name"], r["stuck_seconds"],
                    r["query"])
    return ended


def reaper_interval(stuck_seconds: float) -> float:
    """How often a replica looks for stuck sessions: a fifth of the limit, so one is ended within
    1.2 × the limit, and no more often than 5 times a second."""
    return max(0.2, stuck_seconds / 5)


async def end_stuck_sessions_forever(dsn: str, service: str, limits: SessionLimits, stuck_seconds: float) -> None:
    """Every replica's reaper of stuck sessions (END_STUCK_SESSIONS), on a connection of its own:
    the pool's may all be waiting for the very lock a stuck session holds."""
    conn = await asyncpg.connect(dsn, server_settings=session_settings(service, limits))
    try:
        while True:
            ended = await end_stuck_sessions(conn, stuck_seconds)
            if ended:
                STUCK_SESSIONS_ENDED.labels(service).inc(len(ended))
            await asyncio.sleep(reaper_interval(stuck_seconds))
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=1)


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10, *,
                      service: str = "townflow", limits: SessionLimits | None = None) -> asyncpg.Pool:
    """A pool whose connections carry `session_settings`; without `limits` (tools that hold long
    transactions on purpose, like appraisal's rebuild) none is set."""
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     reset=_no_session_reset,
                                     server_settings=session_settings(service, limits or SessionLimits()))
    return present(pool, "the connection pool")


async def migrate(pool: asyncpg.Pool, folders: Sequence[Path], default_town: str | None = None) -> list[str]:
    """Apply every not-yet-applied `NNN_*.sql` of each folder, in order; return what ran.

    A migration that gives existing rows their town reads it from the session setting
    `townflow.default_town` (empty when there is none to give: a county without a legacy town)."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        # A migration may wait for another replica's and take long on a big table: no limits.
        await conn.execute(NO_LIMITS)
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
                    await _apply(conn, path.read_text(encoding="utf-8"), name)
                    applied.append(name)
        finally:
            await conn.execute("SELECT set_config('townflow.default_town', '', false)")
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
            await conn.execute(LIMITS_BACK)
    return applied


# A migration runs while the previous release's replicas work on the same database (a rolling
# upgrade), and PostgreSQL may end it as a deadlock's victim: seen once in the upgrade test, a new
# replica's CREATE TRIGGER against an old replica's reads. Its transaction rolled back whole, so it
# is applied again after a pause, a few times, before start-up fails.
MIGRATION_TRIES = 5


async def _apply(conn: asyncpg.Connection, sql: str, name: str) -> None:
    for attempt in range(1, MIGRATION_TRIES + 1):
        try:
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", name)
            return
        except asyncpg.exceptions.DeadlockDetectedError:
            if attempt == MIGRATION_TRIES:
                raise
            log.warning("migration %s lost a deadlock (try %d of %d); applying it again", name, attempt,
                        MIGRATION_TRIES)
            await asyncio.sleep(0.2 * 2 ** attempt)


NO_LIMITS = "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0"
LIMITS_BACK = "RESET statement_timeout; RESET lock_timeout; RESET idle_in_transaction_session_timeout"


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
        """A service's real units of work: each one is `over(conn)` on a transaction of its own,
        which commits the request's audit record with its change (audit_trail.record_pending)."""
        from .audit_trail import committed, record_pending

        @asynccontextmanager
        async def unit_of_work() -> AsyncIterator[U]:
            async with self.transaction() as conn:
                yield over(conn)
                written = await record_pending(conn)
            committed(written)

        return unit_of_work
