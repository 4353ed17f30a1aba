"""The map and the hotspots on PostgreSQL (issue #30): dispatch keeps a located matter's point and
grid cell beside its tasks and its task lists read them and filter by cell and box on the indexes;
appraisal counts located matters per cell, month and item, once per matter however often the
filing is delivered."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from appraisal import store as appraisal_store
from appraisal.app import MIGRATIONS as APPRAISAL_MIGRATIONS
from appraisal.facts import FactBatch
from dispatch.app import MIGRATIONS as DISPATCH_MIGRATIONS
from dispatch.models import TaskView
from dispatch.store import TaskSearch, list_tasks, record_matter, search_tasks
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.events import RequestFiledData

NOW = datetime.fromisoformat("2027-01-05T10:00:00+08:00")
TOWN = "321003104"
CELL, OTHER_CELL = "321003104001001", "321003104002001"
ROAD, FIELD = (119.305, 32.42), (119.335, 32.42)  # in CELL (青禾村), in OTHER_CELL (东湖村)


async def _pool(dsn: str, migrations: list[Any]) -> asyncpg.Pool:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    await migrate(pool, [SHARED_MIGRATIONS, *migrations])
    return pool


@pytest.fixture
async def dispatch_pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await _pool(fresh_database, [DISPATCH_MIGRATIONS])
    try:
        yield pool
    finally:
        await pool.close()


async def _matter_and_task(pool: asyncpg.Pool, n: int, point: tuple[float, float] | None, cell: str | None,
                           colour: str = "yellow") -> uuid.UUID:
    request_id = uuid.uuid4()
    at = NOW - timedelta(hours=10 - n)
    data = RequestFiledData.model_validate({
        "request_id": str(request_id), "ticket_no": f"{TOWN}-20270105-{n:05d}", "channel": "window",
        "item_code": "T001", "colour": colour, "description": "路面破损", "village": "V01", "location": f"村道{n}",
        "citizen_ref": "0" * 64, "filed_at": at.isoformat(),
        "point": {"longitude": point[0], "latitude": point[1]} if point else None, "grid_cell": cell})
    async with pool.acquire() as conn, conn.transaction():
        await record_matter(conn, TOWN, data, uuid.uuid4(), at)
        await conn.execute(
            "INSERT INTO tasks (task_id, town_code, request_id, ticket_no, item_code, kind, colour, village, location,"
            " lead_module, post, assignee, assigned_via, status, dispatched_at, window_start, respond_by, resolve_by)"
            " VALUES ($1, $2, $3, $4, 'T001', 'territorial', $5, 'V01', $6, 'econ', 'infrastructure', 's020', 'A',"
            " 'dispatched', $7, $7, $7, $8)",
            uuid.uuid4(), TOWN, request_id, data.ticket_no, colour, data.location, at, at + timedelta(days=5))
    return request_id


async def test_the_task_lists_carry_each_matters_point_and_cell_and_filter_by_them(
        dispatch_pool: asyncpg.Pool) -> None:
    pool = dispatch_pool
    await _matter_and_task(pool, 1, ROAD, CELL, colour="red")
    await _matter_and_task(pool, 2, FIELD, OTHER_CELL)
    await _matter_and_task(pool, 3, None, None)  # a matter without a point: on the lists, off the map

    async def listed(**search: Any) -> list[tuple[str, Any, Any]]:
        rows = await list_tasks(pool, [TOWN], TaskSearch(**search), now=NOW, limit=10)
        views = [TaskView.of(r, NOW, NOW.tzinfo) for r in rows]  # type: ignore[arg-type]
        return [(v.ticket_no[-1], v.point and (v.point.longitude, v.point.latitude), v.grid_cell) for v in views]

    assert await listed() == [("3", None, None), ("2", FIELD, OTHER_CELL), ("1", ROAD, CELL)]
    assert await listed(cell=CELL) == [("1", ROAD, CELL)]
    assert await listed(located=True) == [("2", FIELD, OTHER_CELL), ("1", ROAD, CELL)]
    assert await listed(located=False) == [("3", None, None)]
    assert await listed(box=(119.30, 32.41, 119.31, 32.43)) == [("1", ROAD, CELL)]
    assert await listed(box=(119.0, 32.0, 119.1, 32.1)) == []
    rows, total = await search_tasks(pool, [TOWN], TaskSearch(cell=OTHER_CELL, phase="open"), now=NOW, offset=0,
                                     limit=10)
    assert (total, [r["grid_cell"] for r in rows]) == (1, [OTHER_CELL])
    assert await pool.fetchval("SELECT count(*) FROM matter_places") == 2  # only the matters with a point

    # The previous release's cached `SELECT * FROM tasks` reads the same columns: the place is joined.
    columns = [r["column_name"] for r in await pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'")]
    assert "grid_cell" not in columns and "point" not in columns


async def test_a_box_and_a_cell_are_answered_from_their_indexes(dispatch_pool: asyncpg.Pool) -> None:
    """With a town's year of located matters (5,000), a box and a cell read their index, not every place."""
    pool = dispatch_pool
    await pool.execute(
        "INSERT INTO matter_places (request_id, point, grid_cell)"
        " SELECT gen_random_uuid(), ST_SetSRID(ST_MakePoint(119.30 + (n % 100) * 0.0005, 32.40 + (n / 100) * 0.0005),"
        " 4326)::geography, $1 || lpad((n % 40)::text, 3, '0') FROM generate_series(1, 5000) AS n", TOWN + "001")
    await pool.execute("ANALYZE matter_places")
    for sql, args in (
            ("SELECT request_id FROM matter_places WHERE point && ST_MakeEnvelope($1, $2, $3, $4, 4326)::geography",
             (119.301, 32.401, 119.302, 32.402)),
            ("SELECT request_id FROM matter_places WHERE grid_cell = $1", (TOWN + "001007",))):
        plan = json.dumps(await pool.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
        assert "Index" in plan and "Seq Scan" not in plan, plan


async def test_hotspot_counts_are_one_per_matter_by_month_cell_and_item(fresh_database: str) -> None:
    pool = await _pool(fresh_database, [APPRAISAL_MIGRATIONS])
    try:
        batch = FactBatch()
        for n, (period, cell, item) in enumerate([("2027-01", CELL, "T001"), ("2027-01", CELL, "T001"),
                                                  ("2027-01", CELL, "T002"), ("2026-12", OTHER_CELL, "T001"),
                                                  ("2026-11", CELL, "T001")]):
            batch.matter_located((TOWN, f"r{n}"), period, cell, item)
        batch.matter_located(("321003112", "r9"), "2027-01", CELL, "T001")  # another town's
        async with pool.acquire() as conn, conn.transaction():
            await appraisal_store.record_matters(conn, batch)
            await appraisal_store.record_matters(conn, batch)  # delivered again (or replayed): counted once
        rows = await appraisal_store.cell_counts(pool, TOWN, ["2027-01", "2026-12"])
        assert sorted(tuple(r.values()) for r in rows) == [
            ("2026-12", OTHER_CELL, "T001", 1), ("2027-01", CELL, "T001", 2), ("2027-01", CELL, "T002", 1)]
    finally:
        await pool.close()
