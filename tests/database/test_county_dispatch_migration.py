"""Dispatch's county migration (006_towns.sql) on a database of the test's own: rows written
before the county change get the town the database served, or the migration refuses to guess."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from devstack.postgres import Postgres
from dispatch.app import MIGRATIONS
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate

from ..conftest import SHIQIAO
from .db_tools import database_before, old_rows_take_the_town

NOW = datetime.fromisoformat("2026-09-22T10:00:00+08:00")
TABLES = ("matters", "tasks", "supervisions", "extensions", "off_post")


@pytest.fixture
async def before_county(postgres: Postgres, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    """A new database migrated as dispatch was before the county change, with a row in every table."""
    pool = await database_before(postgres, MIGRATIONS, "006", tmp_path)
    request_id, task_id = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO matters (request_id, ticket_no, item_code, colour, village, location, filed_at,"
        " received_at, event_id) VALUES ($1, 'T-1', 'S001', 'yellow', 'V01', '石桥村', $2, $2, $3)",
        request_id, NOW, uuid.uuid4())
    await pool.execute(
        "INSERT INTO tasks (task_id, request_id, ticket_no, item_code, kind, colour, village, location,"
        " lead_module, post, assignee, assigned_via, status, dispatched_at, window_start, respond_by,"
        " resolve_by) VALUES ($1, $2, 'T-1', 'S001', 'service', 'yellow', 'V01', '石桥村', 'police',"
        " 'household-window', 's038', 'A', 'dispatched', $3, $3, $4, $5)",
        task_id, request_id, NOW, NOW + timedelta(hours=8), NOW + timedelta(days=7))
    await pool.execute("INSERT INTO supervisions (task_id, level, at, notified) VALUES ($1, 'reminder', $2, '{s038}')",
                       task_id, NOW)
    await pool.execute("INSERT INTO extensions (extension_id, task_id, days, reason, requested_by, requested_at)"
                       " VALUES ($1, $2, 2, '等材料', 's038', $3)", uuid.uuid4(), task_id, NOW)
    await pool.execute("INSERT INTO off_post (staff_id, from_at, to_at, reason, registered_by)"
                       " VALUES ('s038', $1, $2, '培训', 's025')", NOW, NOW + timedelta(days=1))
    try:
        yield pool
    finally:
        await pool.close()


async def test_rows_written_before_the_county_change_get_the_default_town(before_county: asyncpg.Pool) -> None:
    await old_rows_take_the_town(before_county, MIGRATIONS, "006_towns.sql", SHIQIAO, TABLES)
    for table in TABLES:
        nullable = await before_county.fetchval(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = $1 AND column_name = 'town_code'",
            table)
        assert nullable == "NO", table


async def test_without_a_default_town_old_rows_stop_the_migration(before_county: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.RaiseError, match="TOWNFLOW_LEGACY_TOWN_CODE"):
        await migrate(before_county, [SHARED_MIGRATIONS, MIGRATIONS])
    # Nothing of it stayed: the migration runs again once the town is given.
    assert "dispatch/006_towns.sql" not in {
        r["name"] for r in await before_county.fetch("SELECT name FROM schema_migrations")}
    assert "dispatch/006_towns.sql" in await migrate(before_county, [SHARED_MIGRATIONS, MIGRATIONS],
                                                     default_town=SHIQIAO)


async def test_an_empty_database_needs_no_default_town(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=2)
    try:
        assert "dispatch/006_towns.sql" in await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
    finally:
        await pool.close()
