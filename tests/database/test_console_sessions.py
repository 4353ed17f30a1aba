"""The console's database (issue #28) on a real PostgreSQL: its migrations, sessions that end on
sign-out, idle time and lifetime on the database's clock (rows moved back in time, no waiting),
only the id's hash kept, and failed sign-ins counted under a row lock across connections."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from console import session_audit
from console.accounts import Person
from console.app import ALL_MIGRATIONS
from console.session import Session, id_hash
from console.store import PgSessions, SignInFailures
from townflow_shared import db

CLERK = Person("qh-s010", "s010", "刘明", frozenset({"staff", "clerk"}), "321003104", "青禾镇")


async def _pool(dsn: str) -> asyncpg.Pool:
    pool = await db.create_pool(dsn, 1, 4, service="console")
    applied = await db.migrate(pool, ALL_MIGRATIONS)
    assert "console/001_sessions.sql" in applied and "townflow_shared/005_audit.sql" in applied
    return pool


async def test_a_session_ends_on_sign_out_and_after_its_idle_time_or_lifetime(fresh_database: str) -> None:
    pool = await _pool(fresh_database)
    try:
        sessions = PgSessions(pool, idle_seconds=30 * 60, lifetime_seconds=8 * 3600)
        session = Session(person=CLERK)
        sid = await sessions.begin(session)
        assert await sessions.resume(sid, activity=True) == session
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE id_hash = $1", id_hash(sid)) == 1
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE position($1::bytea in id_hash) > 0",
                                   sid.encode()) == 0
        assert await sessions.resume("x" * 43, activity=True) is None

        # Idle: 29 minutes is still the session's; a background read does not make it younger.
        await pool.execute("UPDATE sessions SET seen_at = now() - interval '29 minutes'")
        assert await sessions.resume(sid, activity=False) == session
        await pool.execute("UPDATE sessions SET seen_at = seen_at - interval '61 seconds'")
        assert await sessions.resume(sid, activity=True) is None

        # Lifetime: seen a second ago, but begun 8 hours ago.
        other = await sessions.begin(session)
        await pool.execute("UPDATE sessions SET started_at = now() - interval '8 hours 1 second'"
                           " WHERE id_hash = $1", id_hash(other))
        assert await sessions.resume(other, activity=True) is None

        third = await sessions.begin(session)
        await sessions.end(third, session_audit.SIGN_OUT, session_audit.NOWHERE)
        assert await sessions.resume(third, activity=True) is None
    finally:
        await pool.close()


async def test_concurrent_failures_are_counted_one_after_the_other(fresh_database: str) -> None:
    pool = await _pool(fresh_database)
    units = db.Database()
    units.use(pool)
    unit_of_work = units.units_of_work(SignInFailures)

    async def fail_once() -> None:
        async with unit_of_work() as store:
            now, seen = await store.for_update(["login:qh-s010", "address:10.0.0.1"])
            await asyncio.sleep(0.01)  # widen the window a lost update would need
            await store.save({s: [*f, now + timedelta(microseconds=len(f))] for s, f in seen.items()})

    try:
        await asyncio.gather(*(fail_once() for _ in range(4)))
        counts = await pool.fetch("SELECT subject, cardinality(failures) AS n FROM sign_in_failures ORDER BY 1")
        assert [(r["subject"], r["n"]) for r in counts] == [("address:10.0.0.1", 4), ("login:qh-s010", 4)]
    finally:
        await pool.close()
