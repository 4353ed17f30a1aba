"""Appraisal's county migration (004_towns.sql) on a database of the test's own: rows written
before the county change get the one town they can belong to, or the migration names the setting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from appraisal.app import MIGRATIONS
from devstack.postgres import Postgres
from townflow_shared.db import SHARED_MIGRATIONS, migrate

from ..conftest import BAILU, QINGHE
from .db_tools import database_before, old_rows_take_the_town

TABLES = ("task_facts", "matter_facts", "inspection_facts", "seconded_scores", "alerts", "score_cache",
          "inspection_points", "subject_totals")


@pytest.fixture
async def pre_county(postgres: Postgres, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    """A new database with appraisal's migrations from before the county change applied."""
    pool = await database_before(postgres, MIGRATIONS, "004", tmp_path)
    yield pool
    await pool.close()


async def old_rows(pool: asyncpg.Pool) -> None:
    await pool.execute("""
        INSERT INTO task_facts (task_id, request_id, dispatched_event, period, assignee, module, village,
                                colour, c_dispatched, c_responded, c_points)
        VALUES ('t1', 'r1', gen_random_uuid(), '2026-11', 's001', 'econ', 'V01', 'yellow', 1, 1, 12);
        INSERT INTO matter_facts (request_id, village, rating) VALUES ('r1', 'V01', 'satisfied');
        INSERT INTO inspection_facts (inspection_id, period, officers, task_count, finished_at, event_id)
        VALUES ('i1', '2026-11', '{s040}', 1, now(), gen_random_uuid());
        INSERT INTO inspection_points (inspection_id, staff_id, module, period, points)
        VALUES ('i1', 's040', 'enforcement', '2026-11', 5);
        INSERT INTO seconded_scores (unit, period, score, posted_by, posted_at)
        VALUES ('land', '2026-11', 88, 's032', now());
        INSERT INTO alerts (staff_id, period, level, reasons, raised_at, cause_event_id)
        VALUES ('s001', '2026-11', 'reminder', '{x}', now(), gen_random_uuid());
        INSERT INTO score_cache (subject_type, subject_id, period, composite, points, module)
        VALUES ('staff', 's001', '2026-11', 80, 12, 'econ');""")


async def test_old_rows_get_the_default_town_and_totals_stay_per_town(
        pre_county: asyncpg.Pool) -> None:
    pool = pre_county
    await old_rows(pool)
    await old_rows_take_the_town(pool, MIGRATIONS, "004_towns.sql", QINGHE, TABLES)
    # The same staff id in another town is another subject: its own running totals. (Its task is
    # another: task ids are UUIDs, unique in the county, and the upgrade keeps them unique for the
    # previous version's ON CONFLICT (task_id) until the contract, README "Upgrading".)
    await pool.execute("""
        INSERT INTO task_facts (town_code, task_id, request_id, dispatched_event, period, assignee, module,
                                village, colour, c_dispatched, c_points)
        VALUES ($1, 't2', 'r2', gen_random_uuid(), '2026-11', 's001', 'econ', 'V01', 'yellow', 1, 10)""", BAILU)
    totals = {(r["town_code"], r["dispatched"], r["responded"], float(r["points"])) for r in await pool.fetch(
        "SELECT * FROM subject_totals WHERE subject_type = 'staff' AND subject_id = 's001'")}
    assert totals == {(QINGHE, 1, 1, 12.0), (BAILU, 1, 0, 10.0)}


async def test_old_rows_without_a_town_to_give_fail_naming_the_setting(
        pre_county: asyncpg.Pool) -> None:
    pool = pre_county
    await old_rows(pool)
    with pytest.raises(asyncpg.RaiseError, match="TOWNFLOW_LEGACY_TOWN_CODE"):
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
    assert await pool.fetchval("SELECT count(*) FROM task_facts") == 1  # nothing changed


async def test_an_empty_database_needs_no_town(pre_county: asyncpg.Pool) -> None:
    pool = pre_county
    assert "appraisal/004_towns.sql" in await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
