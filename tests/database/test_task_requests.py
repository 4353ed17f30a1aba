"""A holder's requests on a task (延期 extensions, 挂起 suspensions), on a database of the test's
own: each gets a new id, and a second one while the first stands is refused by the table's unique
index (the store answers None, the flows refuse it)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from dispatch import store
from dispatch.app import MIGRATIONS
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate

from ..conftest import QINGHE

NOW = datetime.fromisoformat("2026-09-22T10:00:00+08:00")


async def test_one_extension_and_one_suspension_of_a_task_stand_at_a_time(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=2)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        task_id = uuid.uuid4()
        await pool.execute(
            "INSERT INTO tasks (task_id, town_code, request_id, ticket_no, item_code, kind, colour, village,"
            " location, lead_module, post, assignee, assigned_via, status, dispatched_at, window_start,"
            " respond_by, resolve_by) VALUES ($1, $2, $3, 'T', 'T004', 'service', 'red', 'V01', '村',"
            " 'social', 'p1', 's017', 'A', 'accepted', $4, $4, $5, $6)",
            task_id, QINGHE, uuid.uuid4(), NOW, NOW + timedelta(hours=1), NOW + timedelta(days=5))
        async with pool.acquire() as conn:
            extension_id = await store.add_extension(conn, QINGHE, task_id, 3, "等材料", "s017", NOW)
            assert extension_id is not None
            assert await store.add_extension(conn, QINGHE, task_id, 2, "再等", "s017", NOW) is None
            suspension_id = await store.add_suspension(conn, QINGHE, task_id, "awaiting_citizen", "补正材料",
                                                       "s017", NOW)
            assert suspension_id is not None
            assert await store.add_suspension(conn, QINGHE, task_id, "awaiting_third_party", "鉴定",
                                              "s017", NOW) is None
            extension = await store.pending_extension(conn, task_id)
            suspension = await store.open_suspension(conn, task_id, "pending")
        assert extension is not None and suspension is not None
        assert (extension["extension_id"], extension["days"], extension["reason"]) == (extension_id, 3, "等材料")
        assert (suspension["suspension_id"], suspension["category"], suspension["town_code"]) == (
            suspension_id, "awaiting_citizen", QINGHE)
    finally:
        await pool.close()
