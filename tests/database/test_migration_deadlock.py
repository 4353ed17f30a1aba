"""A migration that PostgreSQL ends as a deadlock's victim is applied again (db.migrate): during a
rolling upgrade the previous release's replicas read the tables a new replica's migration locks,
and one such deadlock failed a new replica's start-up in the upgrade test. Against a real server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
import pytest

from townflow_shared import db


async def _waiting_for_a_lock(conn: asyncpg.Connection, pid: int) -> bool:
    return bool(await conn.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))


async def test_a_migration_that_loses_a_deadlock_is_applied_again(
        fresh_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "probe" / "migrations"
    folder.mkdir(parents=True)
    # Locks `y`, then `x`: against a reader holding `x` and asking for `y`, a deadlock.
    (folder / "001_locks_two_tables.sql").write_text(
        "LOCK TABLE y IN ACCESS EXCLUSIVE MODE; LOCK TABLE x IN ACCESS EXCLUSIVE MODE; CREATE TABLE done (one int);")
    reader = await asyncpg.connect(fresh_database)
    watcher = await asyncpg.connect(fresh_database)
    pool = await db.create_pool(fresh_database, 1, 1, service="migrator")
    try:
        await reader.execute("CREATE TABLE x (one int); CREATE TABLE y (one int); SET deadlock_timeout = '10s'")
        migrator_pid = await pool.fetchval("SELECT pg_backend_pid()")
        reading = reader.transaction()
        await reading.start()
        await reader.execute("SELECT * FROM x")  # the old replica's read: holds x
        with caplog.at_level(logging.WARNING, logger="townflow_shared.db"):
            migrating = asyncio.create_task(db.migrate(pool, [folder]))
            while not await _waiting_for_a_lock(watcher, migrator_pid):  # holds y, waits for x
                await asyncio.sleep(0.02)
            # The migration waited first and checks for a deadlock first (after the server's 1 s):
            # it is the victim, and the reader gets `y` once its transaction is rolled back.
            await reader.execute("SELECT * FROM y")
            await reading.rollback()
            assert await asyncio.wait_for(migrating, 30) == ["probe/001_locks_two_tables.sql"]
        assert await reader.fetchval("SELECT to_regclass('done') IS NOT NULL")
        assert [r.getMessage() for r in caplog.records if r.name == "townflow_shared.db"] == [
            "migration probe/001_locks_two_tables.sql lost a deadlock (try 1 of 5); applying it again"]
    finally:
        await reader.close()
        await watcher.close()
        await pool.close()
