"""A rolling upgrade of a one-town deployment across the county change (README "Upgrading"): while
replicas of the previous version still run beside the new one, their own statements — copied as
they were at commit fb1031b from each service's store.py, with the columns its flows passed — keep
working on the new schema and write into the deployment's one town. Without a legacy town (a new
county) no column gets a default, and a database already on the county schema is left alone.

Each test migrates a database of its own as the previous version left it (its migrations only),
then runs the new migrations the way a new replica's start-up does (one session)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from appraisal.app import MIGRATIONS as APPRAISAL
from devstack.postgres import Postgres
from dispatch.app import MIGRATIONS as DISPATCH
from enforcement.app import MIGRATIONS as ENFORCEMENT
from intake import store as intake_store
from intake.app import MIGRATIONS as INTAKE
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate

from ..conftest import QINGHE
from .db_tools import database_before

LEGACY = QINGHE  # the one town the deployment served before
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DAY = date(2026, 11, 24)
# service → (its migrations, the first one the previous version did not have, the expand migration)
SERVICES: dict[str, tuple[Path, str, str]] = {
    "intake": (INTAKE, "004", "006_rolling_from_one_town.sql"),
    "dispatch": (DISPATCH, "004", "007_rolling_from_one_town.sql"),
    "enforcement": (ENFORCEMENT, "003", "007_rolling_from_one_town.sql"),
    "appraisal": (APPRAISAL, "004", "005_rolling_from_one_town.sql"),
}
TOWN_TABLES = {
    "intake": ("requests", "ticket_sequences", "idempotency_keys"),
    "dispatch": ("matters", "tasks", "supervisions", "extensions", "off_post"),
    "enforcement": ("inspections", "needs", "cases", "case_steps", "plans"),
    "appraisal": ("task_facts", "matter_facts", "inspection_facts", "seconded_scores", "alerts", "score_cache",
                  "inspection_points", "subject_totals"),
}


# --- the previous version's statements (fb1031b), each run as it ran then ---------------------------
async def previous_intake(conn: asyncpg.Connection) -> list[Any]:
    """Two filings on one day, as claim_tickets, claim_idempotency_keys, save_idempotent_responses,
    insert_requests and add_timeline ran them."""
    lasts = []
    for _ in range(2):
        lasts.append(await conn.fetchval(
            "WITH seq AS (INSERT INTO ticket_sequences (day, last) VALUES ($1, $2)"
            "  ON CONFLICT (day) DO UPDATE SET last = ticket_sequences.last + $2 RETURNING last)"
            " SELECT (SELECT last FROM seq) AS last, ARRAY("
            "  SELECT (SELECT count(*) FROM requests r WHERE r.citizen_ref = f.ref AND r.item_code = f.item"
            "          AND r.filed_at >= $5)"
            "  FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS f(ref, item, n) ORDER BY f.n) AS earlier",
            DAY, 1, ["0" * 64], ["S001"], NOW - timedelta(days=30)))
        claimed = await conn.fetch(
            "INSERT INTO idempotency_keys (scope, key, fingerprint)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING RETURNING scope, key",
            ["s010"], ["key-1"], ["f"])
        request_id = uuid.uuid4()
        ticket_no = f"{LEGACY}-{DAY:%Y%m%d}-{lasts[-1]:05d}"
        if claimed:
            await conn.executemany(
                "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2",
                [("s010", "key-1", 201, {"ticket_no": ticket_no})])
        row = {"request_id": request_id, "ticket_no": ticket_no, "access_code": "ABCDEF", "item_code": "S001",
               "colour": "yellow", "channel": "window", "description": "为新生儿办理户口登记", "village": "V01",
               "location": "青禾村五组", "target": None, "proxy_agent_id": None, "village_record_id": None,
               "citizen_name": "测试群众", "citizen_phone": "13800000000", "citizen_id_number": None,
               "citizen_ref": "0" * 64, "filed_by": "s010", "filed_at": NOW, "status": "filed", "status_at": NOW,
               "trace_headers": {}}
        columns = list(row)
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        n = len(columns)
        await conn.executemany(
            f"WITH r AS (INSERT INTO requests ({', '.join(columns)}) VALUES ({placeholders})"
            "  RETURNING request_id, filed_at)"
            f" INSERT INTO timeline (request_id, at, step, detail) SELECT request_id, filed_at, ${n + 1}::text,"
            f" ${n + 2}::jsonb FROM r",
            [(*row.values(), "filed", {"channel": "window"})])
        await conn.execute(
            "INSERT INTO timeline (request_id, at, step, detail, event_id) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (event_id, request_id) DO NOTHING",
            request_id, NOW, "dispatched", {}, uuid.uuid4())
    return lasts


async def previous_dispatch(conn: asyncpg.Connection) -> list[Any]:
    """A filed matter and its task, as record_matter and insert_task wrote them; a supervision and
    an extension each asked twice (the second finds the first: ON CONFLICT DO NOTHING); off-post."""
    request_id, task_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO matters (request_id, ticket_no, item_code, colour, village, location, target,"
        " filed_at, received_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        request_id, f"{LEGACY}-20261124-00001", "S001", "yellow", "V01", "青禾村五组", None, NOW, NOW, uuid.uuid4())
    row = {"task_id": task_id, "request_id": request_id, "ticket_no": f"{LEGACY}-20261124-00001",
           "item_code": "S001", "kind": "service", "colour": "yellow", "village": "V01", "location": "青禾村五组",
           "target": None, "lead_module": "police", "cooperating_modules": [], "post": "household",
           "assignee": "s049", "assigned_via": "A", "status": "dispatched", "dispatched_at": NOW,
           "window_start": NOW, "respond_by": NOW + timedelta(hours=8), "resolve_by": NOW + timedelta(days=3),
           "redispatch_of": None, "trace_headers": {}}
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({placeholders})", *row.values())
    answers = []
    for _ in range(2):
        answers.append(await conn.fetchval(
            "INSERT INTO supervisions (task_id, level, at, notified) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true", task_id, "reminder", NOW, ["s049"]))
        answers.append(await conn.fetchval(
            "INSERT INTO extensions (extension_id, task_id, days, reason, requested_by, requested_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
            uuid.uuid4(), task_id, 2, "需补充材料", "s049", NOW))
    await conn.fetchval(
        "INSERT INTO off_post (staff_id, from_at, to_at, reason, registered_by)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id", "s049", NOW, NOW + timedelta(days=1), "培训", "s048")
    return answers


async def previous_enforcement(conn: asyncpg.Connection) -> list[Any]:
    """An inspection with its need (added twice: one per task), a case with its first step, a plan."""
    inspection_id, case_id, task_id = uuid.uuid4(), uuid.uuid4(), str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO inspections (inspection_id, target, status, units, created_at)"
        " VALUES ($1, $2, 'planned', $3, $4)", inspection_id, "91321003MA0000001X", ["县城市管理局"], NOW)
    added = [await conn.fetchval(
        "INSERT INTO needs (need_id, inspection_id, source, task_id, request_id, item_code, target,"
        " units, due, created_at, trace_headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT DO NOTHING RETURNING true",
        uuid.uuid4(), inspection_id, "task", task_id, str(uuid.uuid4()), "E001", "91321003MA0000001X",
        ["县城市管理局"], None, NOW, {}) for _ in range(2)]
    row = {"case_id": case_id, "task_id": task_id, "request_id": str(uuid.uuid4()), "inspection_id": inspection_id,
           "item_code": "E001", "target": "91321003MA0000001X", "step": "filed", "filed_at": NOW,
           "decision_due": NOW + timedelta(days=90), "transferred_to": None}
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO cases ({', '.join(columns)}) VALUES ({placeholders})", *row.values())
    await conn.execute("INSERT INTO case_steps (case_id, step, at, by, note) VALUES ($1, $2, $3, $4, $5)",
                       case_id, "filed", NOW, "s026", "inspection finding: violation")
    await conn.execute(
        "INSERT INTO plans (plan_id, seed, sample_size, population, targets, published_at, published_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)", uuid.uuid4(), 7, 1, ["T1", "T2"],
        [{"target": "T1", "officers": ["s026", "s027"]}], NOW, "s006")
    return added


async def previous_appraisal(conn: asyncpg.Connection) -> list[Any]:
    """A matter filed and rated, its task dispatched (each upsert on its own key, twice), an
    inspection's facts and points, a score cached twice, an alert, a seconded score posted twice."""
    request_id, task_id, inspection_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())

    async def upsert_matter(**fields: Any) -> None:
        columns = ["request_id", *fields]
        values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in fields)
        await conn.execute(f"INSERT INTO matter_facts ({', '.join(columns)}) VALUES ({values})"
                           f" ON CONFLICT (request_id) DO UPDATE SET {updates}", request_id, *fields.values())

    await upsert_matter(village="V01", filed_at=NOW)
    await upsert_matter(rating="satisfied", rated_at=NOW, rated_event=uuid.uuid4())
    await conn.execute("INSERT INTO task_facts (task_id, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       task_id, request_id)
    row = {"task_id": task_id, "request_id": request_id, "dispatched_event": uuid.uuid4(), "period": "2026-11",
           "assignee": "s049", "post": "household", "module": "police", "village": "V01", "seconded_unit": "police",
           "item_code": "S001", "colour": "yellow", "difficulty": 1.0, "dispatched_at": NOW,
           "respond_by": NOW + timedelta(hours=8), "resolve_by": NOW + timedelta(days=3), "redispatch_of": None}
    columns = list(row)
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "task_id")
    for _ in range(2):
        await conn.execute(f"INSERT INTO task_facts ({', '.join(columns)}) VALUES ({values})"
                           f" ON CONFLICT (task_id) DO UPDATE SET {updates}", *row.values())
    counts = ("dispatched", "responded", "resolved", "completed", "reworked", "extended", "rated",
              "satisfied", "overdue", "escalated", "escalated_red")  # set_contribution: the task's share
    sets = ", ".join(f"c_{c} = ${i}" for i, c in enumerate(counts, start=2))
    await conn.execute(f"UPDATE task_facts SET {sets}, c_points = ${len(counts) + 2} WHERE task_id = $1",
                       task_id, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 3.0)
    await conn.execute(
        "INSERT INTO inspection_facts (inspection_id, period, officers, task_count, finished_at, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        inspection_id, "2026-11", ["s026", "s027"], 1, NOW, uuid.uuid4())
    await conn.executemany(
        "INSERT INTO inspection_points (inspection_id, staff_id, module, seconded_unit, period, points)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [(inspection_id, "s026", "enforcement", None, "2026-11", 2.0)])
    ahead = []
    for composite in (80.0, 85.0):
        ahead.append(await conn.fetchval(
            "WITH s AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],"
            "  $6::text[]) WITH ORDINALITY AS s(subject_type, subject_id, period, composite, points, module, ord)),"
            " upsert AS (INSERT INTO score_cache (subject_type, subject_id, period, composite, points, module)"
            "  SELECT subject_type, subject_id, period, composite, points, module FROM s"
            "  ON CONFLICT (subject_type, subject_id, period)"
            "  DO UPDATE SET composite = EXCLUDED.composite, points = EXCLUDED.points)"
            " SELECT (SELECT count(*) FROM score_cache c WHERE c.subject_type = s.subject_type"
            "  AND c.period = s.period AND c.composite > s.composite AND c.subject_id <> s.subject_id) AS ahead"
            " FROM s ORDER BY s.ord",
            ["staff"], ["s049"], ["2026-11"], [composite], [12.0], ["police"]))
    await conn.fetchval(
        "INSERT INTO alerts (staff_id, period, level, reasons, raised_at, cause_event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
        "s049", "2026-11", "reminder", ["3 overdue"], NOW, uuid.uuid4())
    for score in (88.0, 90.0):
        await conn.execute(
            "INSERT INTO seconded_scores (unit, period, score, posted_by, posted_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (unit, period) DO UPDATE SET score = EXCLUDED.score, posted_by = EXCLUDED.posted_by,"
            " posted_at = EXCLUDED.posted_at", "land", "2026-11", score, "s032", NOW)
    return ahead


PREVIOUS = {"intake": previous_intake, "dispatch": previous_dispatch, "enforcement": previous_enforcement,
            "appraisal": previous_appraisal}


# --- tests -------------------------------------------------------------------------------------
async def upgraded(postgres: Postgres, service: str, tmp_path: Path, default_town: str | None) -> asyncpg.Pool:
    """A database as the previous version left it, migrated by a new replica's start-up."""
    migrations, first_new, expand = SERVICES[service]
    pool = await database_before(postgres, migrations, first_new, tmp_path)
    applied = await migrate(pool, [SHARED_MIGRATIONS, migrations], default_town=default_town)
    assert f"{service}/{expand}" in applied
    return pool


@pytest.mark.parametrize("service", list(SERVICES))
async def test_the_previous_versions_writes_land_in_the_legacy_town(postgres: Postgres, tmp_path: Path,
                                                                    service: str) -> None:
    pool = await upgraded(postgres, service, tmp_path, LEGACY)
    try:
        async with pool.acquire() as conn, conn.transaction():
            answers = await PREVIOUS[service](conn)
        for table in TOWN_TABLES[service]:
            towns = {r["town_code"] for r in await pool.fetch(f"SELECT town_code FROM {table}")}
            assert towns == {LEGACY}, table
        # Each ON CONFLICT took its path: the second claim continued the first, a second need,
        # supervision or extension found the first, the second score update found the first row.
        assert answers == {"intake": [1, 2], "dispatch": [True, True, None, None], "enforcement": [True, None],
                           "appraisal": [0, 0]}[service]
        if service == "appraisal":
            assert await pool.fetchval("SELECT score FROM seconded_scores") == 90.0
            assert await pool.fetchval("SELECT composite FROM score_cache") == 85.0
            assert await pool.fetchval("SELECT count(*) FROM task_facts") == 1
            totals = await pool.fetchrow("SELECT town_code, dispatched, points FROM subject_totals"
                                         " WHERE subject_type = 'staff' AND subject_id = 's049'")
            assert tuple(totals) == (LEGACY, 1, 3)  # the old writes kept the new per-town totals
    finally:
        await pool.close()


async def test_both_versions_count_on_one_days_tickets(postgres: Postgres, tmp_path: Path) -> None:
    """The previous version's claims and the new version's claims of the legacy town's day share
    one row, so the day's numbers go on without a gap or a repeat whichever replica files."""
    pool = await upgraded(postgres, "intake", tmp_path, LEGACY)
    try:
        async with pool.acquire() as conn, conn.transaction():
            assert await previous_intake(conn) == [1, 2]
            assert await intake_store.claim_tickets(conn, {(LEGACY, DAY): 1}) == {(LEGACY, DAY): 3}
            assert (await previous_intake(conn))[0] == 4
    finally:
        await pool.close()


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_new_county_gets_no_default_town(fresh_database: str, service: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=2)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, SERVICES[service][0]])
        assert await _defaults(pool) == {}
        assert await _compatibility_indexes(pool) == []
    finally:
        await pool.close()


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_database_already_on_the_county_schema_is_left_alone(postgres: Postgres, tmp_path: Path,
                                                                     service: str) -> None:
    """No replica of the version before the county change can run any more: a later start-up with
    a legacy town adds no default (the database may already hold several towns)."""
    migrations, _, expand = SERVICES[service]
    older = await database_before(postgres, migrations, expand[:3], tmp_path)  # the county schema, no expand
    name = str(await older.fetchval("SELECT current_database()"))
    await older.close()
    pool = await create_pool(postgres.dsn(name), min_size=1, max_size=2)  # a later start-up
    try:
        assert f"{service}/{expand}" in await migrate(pool, [SHARED_MIGRATIONS, migrations], default_town=LEGACY)
        assert await _defaults(pool) == {}
        assert await _compatibility_indexes(pool) == []
    finally:
        await pool.close()


async def test_the_upgrade_gives_every_town_column_the_legacy_town(postgres: Postgres, tmp_path: Path) -> None:
    for service in SERVICES:
        pool = await upgraded(postgres, service, tmp_path / service, LEGACY)
        try:
            generated = {"requests"}  # read off the ticket number instead
            assert set(await _defaults(pool)) == set(TOWN_TABLES[service]) - generated, service
            assert set((await _defaults(pool)).values()) <= {f"'{LEGACY}'::text"}
        finally:
            await pool.close()


async def _defaults(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT table_name, column_default FROM information_schema.columns"
                            " WHERE column_name = 'town_code' AND column_default IS NOT NULL"
                            " AND table_schema = 'public'")
    return {r["table_name"]: r["column_default"] for r in rows}


async def _compatibility_indexes(pool: asyncpg.Pool) -> list[str]:
    return [r["indexname"] for r in await pool.fetch(
        "SELECT indexname FROM pg_indexes WHERE indexname LIKE '%previous_version'")]

