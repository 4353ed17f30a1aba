"""Issue #26: what a replica that stops answering holds is given back by PostgreSQL within the
session's limits (db.SessionLimits), against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator

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
        started = time.monotonic()
        await peer.execute("UPDATE held SET id = 1 WHERE id = 1")  # waits for the holder's row
        waited = time.monotonic() - started
        await asyncio.to_thread(holder.join, 10)
        # Held until the holder went on, far past the idle limit that ends a holder between statements.
        assert waited > stop_seconds - 1 > idle_limit * 2, waited
    finally:
        await setup.close()
        await peer.close()
