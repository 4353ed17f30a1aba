"""006_towns.sql on a database of the test's own: rows written before the county change take the
deployment's default town; without one (a county without TOWNFLOW_LEGACY_TOWN_CODE) the migration
refuses instead of leaving them townless. And the case-deadline loop over every town's cases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from devstack.postgres import Postgres
from enforcement import scheduled
from enforcement.app import MIGRATIONS
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import BAILU, QINGHE
from .db_tools import database_before, old_rows_take_the_town

TABLES = ("inspections", "needs", "cases", "case_steps", "plans")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TOWNS = load_county(DEMO_COUNTY_DIR).towns


@pytest.fixture
async def before_towns(postgres: Postgres, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    """A database at the last migration before 006, holding one row in every table."""
    pool = await database_before(postgres, MIGRATIONS, "006", tmp_path)
    try:
        inspection_id, case_id = uuid.uuid4(), uuid.uuid4()
        await pool.execute("INSERT INTO inspections (inspection_id, target, status, created_at)"
                           " VALUES ($1, 'T1', 'planned', $2)", inspection_id, NOW)
        await pool.execute("INSERT INTO needs (need_id, inspection_id, source, task_id, item_code, target, units,"
                           " created_at) VALUES ($1, $2, 'task', 'task-1', 'E003', 'T1', '{}', $3)",
                           uuid.uuid4(), inspection_id, NOW)
        await pool.execute("INSERT INTO cases (case_id, task_id, request_id, inspection_id, item_code, target, step,"
                           " filed_at, decision_due) VALUES ($1, 'task-1', 'r-1', $2, 'E003', 'T1', 'filed', $3, $3)",
                           case_id, inspection_id, NOW)
        await pool.execute("INSERT INTO case_steps (case_id, step, at, by) VALUES ($1, 'filed', $2, 's026')",
                           case_id, NOW)
        await pool.execute("INSERT INTO plans (plan_id, seed, sample_size, population, targets, published_at,"
                           " published_by) VALUES ($1, 1, 1, '{T1}', '[]', $2, 's026')", uuid.uuid4(), NOW)
        yield pool
    finally:
        await pool.close()


async def test_old_rows_take_the_default_town(before_towns: asyncpg.Pool) -> None:
    await old_rows_take_the_town(before_towns, MIGRATIONS, "006_towns.sql", QINGHE, TABLES)


async def test_old_rows_without_a_default_town_stop_the_migration(before_towns: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.RaiseError, match="TOWNFLOW_LEGACY_TOWN_CODE"):
        await migrate(before_towns, [SHARED_MIGRATIONS, MIGRATIONS])
    # Nothing of 006 stays: the database is as it was, ready for a migration with the town.
    assert await before_towns.fetchval(
        "SELECT count(*) FROM information_schema.columns WHERE column_name = 'town_code'"
        " AND table_name = ANY($1::text[])", list(TABLES)) == 0


async def test_the_case_deadline_loop_flags_each_towns_cases_by_its_own_limits(before_towns: asyncpg.Pool) -> None:
    await migrate(before_towns, [SHARED_MIGRATIONS, MIGRATIONS], default_town=QINGHE)
    qinghe = TOWNS[QINGHE].rules.enforcement
    later = qinghe.model_copy(update={"decision_warning_day": qinghe.decision_warning_day + 10})
    filed = NOW - timedelta(days=qinghe.decision_warning_day + 5)  # past 青禾镇's warning, not the later one
    inspection_id = await before_towns.fetchval("SELECT inspection_id FROM inspections")
    cases = {town: uuid.uuid4() for town in (QINGHE, BAILU)}
    for town, case_id in cases.items():
        await before_towns.execute(
            "INSERT INTO cases (case_id, town_code, task_id, request_id, inspection_id, item_code, target, step,"
            " filed_at, decision_due, next_flag_at) VALUES ($1, $2, $3, 'r', $4, 'E001', 'T2', 'filed', $5, $6, $5)",
            case_id, town, str(case_id), inspection_id, filed, filed + timedelta(days=qinghe.decision_limit_days))
    clock = Clock()
    clock.set(NOW)
    await scheduled.flag_all_due(before_towns, {QINGHE: qinghe, BAILU: later}, clock, 50)
    warned = {r["case_id"]: r["warned_at"] for r in await before_towns.fetch("SELECT case_id, warned_at FROM cases")}
    assert warned[cases[QINGHE]] == NOW and warned[cases[BAILU]] is None
