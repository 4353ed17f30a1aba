"""Enforcement's case-deadline loop (SPEC §5.4 and §6.1) with a backlog and with replicas: one
wake-up flags every due case, two passes at once share the work and set each flag once, and the
migration fills the next flag moment of existing cases. Run on a database of the test's own with
the loop's functions called directly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from devstack.postgres import Postgres
from enforcement import flows, rules, scheduled
from enforcement.app import MIGRATIONS
from enforcement.unit_of_work import PostgresUnitOfWork
from townflow_shared.clock import Clock
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

from .db_tools import database_before

TOWN = load_town(DEMO_TOWN_DIR)
LIMITS = TOWN.rules.enforcement
LIMITS_OF = {TOWN.code: LIMITS}  # the loop reads each case's limits by its town
NOW = datetime.fromisoformat("2027-06-01T10:00:00+08:00")
COLUMNS = ("town_code", "case_id", "task_id", "request_id", "inspection_id", "item_code", "target", "step", "filed_at",
           "decision_due")


def case_row(inspection_id: uuid.UUID, filed_at: datetime, step: str = "filed") -> tuple[object, ...]:
    return (TOWN.code, uuid.uuid4(), str(uuid.uuid4()), str(uuid.uuid4()), inspection_id, "E003", "91321003MA0000TEST",
            step, filed_at, rules.decision_due(filed_at, False, LIMITS))


async def insert_cases(conn: asyncpg.Connection, filed: Sequence[datetime], with_next: bool = True,
                       step: str = "filed", with_town: bool = True) -> list[tuple[object, ...]]:
    """Cases as this version writes them, or (with_next / with_town False) as an older one did;
    each row as COLUMNS, so row[0] is the town, row[1] the case, row[8] filed_at, row[9] decision_due."""
    inspection_id = uuid.uuid4()
    if with_town:
        await conn.execute("INSERT INTO inspections (inspection_id, town_code, target, status, created_at)"
                           " VALUES ($1, $2, '91321003MA0000TEST', 'done', $3)", inspection_id, TOWN.code,
                           NOW - timedelta(days=400))
    else:
        await conn.execute("INSERT INTO inspections (inspection_id, target, status, created_at)"
                           " VALUES ($1, '91321003MA0000TEST', 'done', $2)", inspection_id, NOW - timedelta(days=400))
    rows = [case_row(inspection_id, f, step) for f in filed]
    columns = COLUMNS if with_town else COLUMNS[1:]
    records = [r if with_town else r[1:] for r in rows]
    if with_next:
        await conn.copy_records_to_table(
            "cases", columns=(*columns, "next_flag_at"),
            records=[(*r, rules.next_case_flag_at(row[8], False, (), LIMITS)) for r, row in zip(records, rows, strict=True)])
    else:
        await conn.copy_records_to_table("cases", columns=columns, records=records)
    return [r[1:] for r in rows]  # as before the county change: row[0] the case, row[7] filed_at


def expected_flags(filed_at: datetime) -> tuple[bool, bool]:
    due = rules.case_flags_due(filed_at, False, (), NOW, LIMITS)
    return "warning" in due, "overdue" in due


async def flags_of(pool: asyncpg.Pool) -> dict[uuid.UUID, tuple[datetime | None, datetime | None]]:
    return {r["case_id"]: (r["warned_at"], r["overdue_at"])
            for r in await pool.fetch("SELECT case_id, warned_at, overdue_at FROM cases")}


async def test_two_passes_at_once_share_the_cases_and_set_each_flag_once(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=3, max_size=6)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        # 2,000 undecided cases filed 0 to 100 days ago: some not due, some warned, some overdue.
        filed = [NOW - timedelta(days=100) * (i / 2000) for i in range(2000)]
        async with pool.acquire() as conn:
            rows = await insert_cases(conn, filed)
        async with pool.acquire() as a, pool.acquire() as b:
            async with a.transaction():
                first = await flows.flag_due_cases(PostgresUnitOfWork(a), LIMITS_OF, NOW, 200)
                async with b.transaction():  # skips a's rows instead of waiting for them
                    second = await asyncio.wait_for(flows.flag_due_cases(PostgresUnitOfWork(b), LIMITS_OF, NOW, 200), timeout=10)
            assert first.claimed == second.claimed == 200
        clock = Clock()
        clock.set(NOW)
        split = await asyncio.wait_for(asyncio.gather(scheduled.flag_all_due(pool, LIMITS_OF, clock, 50),
                                                      scheduled.flag_all_due(pool, LIMITS_OF, clock, 50)), timeout=120)
        assert all(n > 0 for n in split), split
        flagged = first.done + second.done + sum(split)
        state = await flags_of(pool)
        wanted = {row[0]: expected_flags(row[7]) for row in rows}
        assert {c: (w is not None, o is not None) for c, (w, o) in state.items()} == wanted
        assert flagged == sum(w + o for w, o in wanted.values())  # each flag set once in all
        assert await pool.fetchval("SELECT count(*) FROM cases WHERE next_flag_at <= $1", NOW) == 0
        assert await scheduled.flag_all_due(pool, LIMITS_OF, clock, 50) == 0
    finally:
        await pool.close()


async def test_the_migration_fills_the_next_flag_of_existing_cases(postgres: Postgres, tmp_path: Path) -> None:
    pool = await database_before(postgres, MIGRATIONS, "003", tmp_path)
    try:
        filed = [NOW - timedelta(days=10), NOW - timedelta(days=70), NOW - timedelta(days=95)]
        async with pool.acquire() as conn:
            fresh, warn, overdue = await insert_cases(conn, filed, with_next=False, with_town=False)
            (decided,) = await insert_cases(conn, [NOW - timedelta(days=95)], with_next=False, step="decided",
                                            with_town=False)
        applied = await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS], default_town=TOWN.code)
        assert applied[:2] == [  # and whatever later migrations there are
            "enforcement/003_next_flag.sql", "enforcement/004_next_flag_from_older_versions.sql"]
        stored = {r["case_id"]: r["next_flag_at"] for r in await pool.fetch("SELECT case_id, next_flag_at FROM cases")}
        assert stored[fresh[0]] == fresh[7] and stored[decided[0]] is None

        clock = Clock()
        clock.set(NOW)
        assert await scheduled.flag_all_due(pool, LIMITS_OF, clock, 500) == 3  # warn; warn + overdue
        state = await flags_of(pool)
        assert state[fresh[0]] == (None, None) and state[decided[0]] == (None, None)
        assert state[warn[0]] == (NOW, None) and state[overdue[0]] == (NOW, NOW)
        stored = {r["case_id"]: r["next_flag_at"] for r in await pool.fetch("SELECT case_id, next_flag_at FROM cases")}
        assert stored[fresh[0]] == fresh[7] + timedelta(days=LIMITS.decision_warning_day)
        assert stored[warn[0]] == warn[8] + timedelta(microseconds=1)
        assert stored[overdue[0]] is None

        # A replica of the previous version, still running during a rolling upgrade, files a case
        # without the column: it is due at once.
        async with pool.acquire() as conn:
            (older,) = await insert_cases(conn, [NOW - timedelta(days=65)], with_next=False)
        assert await pool.fetchval("SELECT next_flag_at FROM cases WHERE case_id = $1", older[0]) == older[7]
        assert await scheduled.flag_all_due(pool, LIMITS_OF, clock, 500) == 1
        assert (await flags_of(pool))[older[0]] == (NOW, None)
    finally:
        await pool.close()
