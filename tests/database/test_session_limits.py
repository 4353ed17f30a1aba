"""Issue #26: what a replica that stops answering holds is given back by PostgreSQL within the
session's limits (db.SessionLimits), against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from townflow_shared import db
from townflow_shared.db import OUTAGES, RELAY_LOCK, SessionLimits


async def _until(check: object, timeout: float = 10.0) -> float:
    """Seconds until the awaitable-returning `check()` is true (polled, no fixed sleep)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


async def test_a_holder_idle_in_its_transaction_loses_the_lock_to_a_peer(fresh_database: str) -> None:
    holder = await db.create_pool(fresh_database, 1, 1, service="holder",
                                  limits=SessionLimits(idle_in_transaction_seconds=1))
    peer = await db.create_pool(fresh_database, 1, 1, service="peer", limits=SessionLimits(1))
    try:
        conn = await holder.acquire()
        transaction = conn.transaction()
        await transaction.start()
        assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK)
        # The holder now stops sending anything, as a paused process would.
        assert not await peer.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK)

        async def peer_takes_it() -> bool:
            return bool(await peer.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK))

        waited = await _until(peer_takes_it)
        assert waited < 5
        with pytest.raises(OUTAGES):  # the holder resumes: its session is gone
            await conn.fetchval("SELECT 1")
        with contextlib.suppress(Exception):  # its transaction died with the session
            await transaction.rollback()
        await holder.release(conn)
    finally:
        await holder.close()
        await peer.close()


async def test_a_statement_waiting_for_a_lock_gives_up_as_an_outage(fresh_database: str) -> None:
    holder = await db.create_pool(fresh_database, 1, 1)  # no limits: it holds the row as long as it likes
    waiter = await db.create_pool(fresh_database, 1, 1, limits=SessionLimits(lock_seconds=0.5))
    try:
        await holder.execute("CREATE TABLE held (id int PRIMARY KEY)")
        await holder.execute("INSERT INTO held VALUES (1)")
        async with holder.acquire() as conn, conn.transaction():
            await conn.execute("SELECT * FROM held WHERE id = 1 FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(OUTAGES):
                await waiter.execute("UPDATE held SET id = 2 WHERE id = 1")
            assert time.monotonic() - started < 3
    finally:
        await holder.close()
        await waiter.close()


async def test_sessions_are_named_after_their_process_and_migrations_run_without_limits(fresh_database: str) -> None:
    pool = await db.create_pool(fresh_database, 1, 1, service="intake",
                                limits=SessionLimits(0.5, 0.5, 0.5))
    try:
        assert await pool.fetchval("SELECT current_setting('application_name')") == f"intake pid {os.getpid()}"
        assert await pool.fetchval("SELECT current_setting('statement_timeout')") == "500ms"
        applied = await db.migrate(pool, [db.SHARED_MIGRATIONS])
        assert "townflow_shared/004_outbox_relay_lease.sql" in applied
        # The migration's session got its limits back after.
        assert await pool.fetchval("SELECT current_setting('lock_timeout')") == "500ms"
        with pytest.raises(OUTAGES):
            await pool.execute("SELECT pg_sleep(2)")
    finally:
        await pool.close()


async def test_a_holder_stopped_mid_pipeline_keeps_its_lock_past_every_limit(fresh_database: str) -> None:
    """Why no product code pipelines statements (shared/tests/test_no_statement_pipelines.py): a
    backend waiting for the rest of an `executemany` is not idle in transaction, so PostgreSQL does
    not end it. The holder runs in a thread of its own whose loop stops (time.sleep), as a paused
    process's would; between two statements the same stop loses the lock (the test above)."""
    stop_seconds, idle_limit = 3.0, 0.5
    mid_pipeline = threading.Event()

    def rows() -> Iterator[tuple[int]]:
        for i in range(40_000):
            if i == 10_000:  # the first rows are on their way and executed: stop sending
                mid_pipeline.set()
                time.sleep(stop_seconds)
            yield (i,)

    async def hold() -> None:
        pool = await db.create_pool(fresh_database, 1, 1, service="holder",
                                    limits=SessionLimits(idle_in_transaction_seconds=idle_limit))
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT * FROM held WHERE id = 1 FOR UPDATE")
                await conn.executemany("SELECT $1::int", rows())
        finally:
            await pool.close()

    setup = await db.create_pool(fresh_database, 1, 1)
    peer = await db.create_pool(fresh_database, 1, 1, service="peer", limits=SessionLimits(lock_seconds=10))
    try:
        await setup.execute("CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held VALUES (1)")
        holder = threading.Thread(target=asyncio.run, args=(hold(),))
        holder.start()
        assert await asyncio.to_thread(mid_pipeline.wait, 10)
        # Its backend waits for the rest, `active` on ClientRead, as one stopped mid-prepare (below):
        # what the stuck-session reaper ends.
        assert await _until(lambda: _mid_statement(setup, f"holder pid {os.getpid()}")) < 2
        started = time.monotonic()
        await peer.execute("UPDATE held SET id = 1 WHERE id = 1")  # waits for the holder's row
        waited = time.monotonic() - started
        await asyncio.to_thread(holder.join, 10)
        # Held until the holder went on, far past the idle limit that ends a holder between statements.
        assert waited > stop_seconds - 1 > idle_limit * 2, waited
    finally:
        await setup.close()
        await peer.close()


# A client that stops mid-prepare, as intake-0 did in the reduced chaos run (its backend held the
# town's ticket_sequences row, `active`, waiting on ClientRead): in a transaction under the
# service's limits it locks the row, then prepares a statement new to its connection (asyncpg
# sends Parse/Describe and a Flush, no Sync, and waits for the description) and the process
# stops itself right after sending it, before reading the answer.
_STOPS_MID_PREPARE = """
import asyncio, os, signal, sys
import asyncpg

async def main(dsn):
    conn = await asyncpg.connect(dsn, server_settings={
        "application_name": f"stuck pid {os.getpid()}",
        "idle_in_transaction_session_timeout": "500", "statement_timeout": "500"})
    await conn.execute("BEGIN")
    await conn.execute("SELECT * FROM held WHERE id = 1 FOR UPDATE")
    # Runs once the fetch below has written its Parse/Describe/Flush and waits for the reply.
    asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGSTOP)
    await conn.fetch("SELECT count(*) FROM held WHERE id = $1", 1)

asyncio.run(main(sys.argv[1]))
"""


@contextlib.contextmanager
def _stopped_mid_prepare(dsn: str) -> Iterator[int]:
    """A process stopped mid-prepare holding `held` row 1 through `dsn`; its pid, killed after."""
    process = subprocess.Popen([sys.executable, "-c", _STOPS_MID_PREPARE, dsn])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(10)


async def _mid_statement(watcher: asyncpg.Pool, application_name: str) -> asyncpg.Record | None:
    """The backend of `application_name` while it waits mid-statement for its client."""
    row: asyncpg.Record | None = await watcher.fetchrow(
        "SELECT pid, state, wait_event, query FROM pg_stat_activity WHERE application_name = $1"
        " AND state = 'active' AND wait_event = 'ClientRead'", application_name)
    return row


async def _stuck(watcher: asyncpg.Pool, pid: int) -> asyncpg.Record | None:
    """The stopped process's backend once it is waiting mid-statement for its client."""
    return await _mid_statement(watcher, f"stuck pid {pid}")


def _as_role(dsn: str, role: str) -> str:
    return dsn.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


async def _service_role(setup: asyncpg.Pool) -> str:
    """A role like a service's own in production: it logs in and may use `held`, no superuser, no
    pg_signal_backend."""
    role = f"svc_{uuid.uuid4().hex[:8]}"
    await setup.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
    await setup.execute(f"GRANT SELECT, UPDATE ON held TO {role}")
    assert not await setup.fetchval("SELECT rolsuper OR pg_has_role(oid, 'pg_signal_backend', 'member')"
                                    " FROM pg_roles WHERE rolname = $1", role)
    return role


async def test_a_holder_stopped_mid_prepare_is_ended_by_a_replica_of_its_service(fresh_database: str) -> None:
    """The blind spot of the session's timeouts, and what closes it: a replica of the same service
    (same role, no superuser) ends the stuck session within TOWNFLOW_DB_STUCK_SESSION_SECONDS."""
    stuck_seconds = 1.0
    setup = await db.create_pool(fresh_database, 1, 1)
    try:
        await setup.execute("CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held VALUES (1)")
        service = _as_role(fresh_database, await _service_role(setup))
        peer = await db.create_pool(service, 1, 1, service="peer", limits=SessionLimits(lock_seconds=8))
        try:
            with _stopped_mid_prepare(service) as pid:
                assert await _until(lambda: _stuck(setup, pid)) < 5
                await asyncio.sleep(1)  # twice its idle and statement limits: neither ended it
                assert await _stuck(setup, pid) is not None
                reaper = asyncio.create_task(db.end_stuck_sessions_forever(
                    service, "reaper", SessionLimits(), stuck_seconds))
                try:
                    started = time.monotonic()
                    await peer.execute("UPDATE held SET id = 1 WHERE id = 1")  # waited for the stuck row
                    waited = time.monotonic() - started
                finally:
                    reaper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reaper
                assert waited < stuck_seconds + db.reaper_interval(stuck_seconds) + 1, waited
                assert await _stuck(setup, pid) is None
        finally:
            await peer.close()
    finally:
        await setup.close()


async def test_only_stuck_sessions_of_the_service_are_ended(fresh_database: str) -> None:
    """Healthy sessions — idle, idle in a transaction, running a long statement — and another
    role's stuck session are left alone; the rule's limit is measured from the last message."""
    setup = await db.create_pool(fresh_database, 1, 1)
    try:
        await setup.execute("CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held VALUES (1)")
        role = await _service_role(setup)
        service = _as_role(fresh_database, role)
        healthy = await db.create_pool(service, 3, 3, service="healthy")
        reaper = await asyncpg.connect(service)
        try:
            idle_in_transaction = await healthy.acquire()
            await idle_in_transaction.execute("BEGIN")
            await idle_in_transaction.execute("SELECT * FROM held")
            sleeping = asyncio.create_task(healthy.execute("SELECT pg_sleep(2)"))
            with _stopped_mid_prepare(fresh_database) as pid:  # the superuser's, not the service's
                await _until(lambda: _stuck(setup, pid))
                await asyncio.sleep(1)
                assert await db.end_stuck_sessions(reaper, 0.5) == []
                assert await _stuck(setup, pid) is not None
            await sleeping
            assert await idle_in_transaction.fetchval("SELECT count(*) FROM held") == 1
            await idle_in_transaction.execute("COMMIT")
            await healthy.release(idle_in_transaction)
            with _stopped_mid_prepare(service) as pid:  # the service's own: ended, not before its time
                await _until(lambda: _stuck(setup, pid))
                assert await db.end_stuck_sessions(reaper, 5) == []
                await asyncio.sleep(0.6)
                ended = await db.end_stuck_sessions(reaper, 0.5)
                assert [(r["application_name"], r["ended"]) for r in ended] == [(f"stuck pid {pid}", True)]
                assert await healthy.fetchval("SELECT 1") == 1  # the healthy pool's sessions live on
        finally:
            await reaper.close()
            await healthy.close()
    finally:
        await setup.close()
