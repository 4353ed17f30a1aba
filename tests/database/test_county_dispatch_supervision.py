"""Supervision (督办) in a county, on a database of the test's own: one pass covers every town's
due tasks, each by its own town's rules and staff, and each event carries its task's town."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import asyncpg

from dispatch import rules, scheduled
from dispatch.app import MIGRATIONS
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR
from townflow_shared.town import Post, Town

from ..conftest import QINGHE, SHIQIAO

COUNTY = load_county(DEMO_COUNTY_DIR)
NOW = datetime.fromisoformat("2026-09-22T10:00:00+08:00")
GONE = "321003199"  # a town code of the county that no town folder has


async def _open_task(pool: asyncpg.Pool, town_code: str, post: Post, start: datetime, window: timedelta,
                     rules_of: Town) -> uuid.UUID:
    """An open red task of `town_code` whose window started at `start`."""
    task_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO tasks (task_id, town_code, request_id, ticket_no, item_code, kind, colour, village,"
        " location, lead_module, post, assignee, assigned_via, status, dispatched_at, window_start,"
        " respond_by, resolve_by, next_supervision_at) VALUES ($1, $2, $3, 'T', 'T004', 'service', 'red',"
        " 'V01', '村', $4, $5, $6, 'A', 'dispatched', $7, $7, $8, $9, $10)",
        task_id, town_code, uuid.uuid4(), post.module, post.code, post.a_holder, start,
        start + timedelta(hours=1), start + window,
        rules.next_supervision_at(start, start + window, (), rules_of.rules.dispatch))
    return task_id


async def test_one_pass_supervises_every_town_with_its_own_staff(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=3)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        window = timedelta(hours=10)
        start = NOW - window * 1.6  # every level is due
        tasks: dict[uuid.UUID, Town] = {}
        for town_code, post_code in ((QINGHE, "mediation"), (SHIQIAO, "mediation")):
            town = COUNTY.towns[town_code]
            post = town.posts[post_code]
            tasks[await _open_task(pool, town_code, post, start, window, town)] = town
        clock = Clock()
        clock.set(NOW)
        assert await scheduled.supervise_all_due(pool, COUNTY.towns, clock, 100) == 6

        events = [json.loads(r["payload"]) for r in await pool.fetch(
            "SELECT payload FROM outbox WHERE topic = 'dispatch.task.supervised.v1'")]
        assert len(events) == 6
        for event in events:
            town = tasks[uuid.UUID(event["data"]["task_id"])]
            assert event["town_code"] == town.code
            post = town.posts["mediation"]
            assert event["data"]["notified"] == rules.notified_for(event["data"]["level"], post.a_holder, post, town)
        escalated = {e["town_code"]: e["data"]["notified"] for e in events if e["data"]["level"] == "escalated"}
        assert escalated[QINGHE] != escalated[SHIQIAO]  # each town's command centre on duty
        stored = {(r["town_code"], r["level"]) for r in await pool.fetch("SELECT town_code, level FROM supervisions")}
        assert {t for t, _ in stored} == {QINGHE, SHIQIAO}
    finally:
        await pool.close()


async def test_tasks_of_a_town_no_longer_served_do_not_hold_up_the_others(fresh_database: str) -> None:
    """A town gone from the county's files (乡镇撤并) keeps open tasks whose levels fell due first;
    they are left out of the claim, so every batch still reaches the served towns' tasks."""
    pool = await create_pool(fresh_database, min_size=1, max_size=3)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        window = timedelta(hours=10)
        qinghe = COUNTY.towns[QINGHE]
        post = qinghe.posts["mediation"]
        for _ in range(3):  # more than a batch, all due before the served town's task
            await _open_task(pool, GONE, post, NOW - window * 3, window, qinghe)
        served = await _open_task(pool, QINGHE, post, NOW - window * 1.6, window, qinghe)
        clock = Clock()
        clock.set(NOW)
        assert await scheduled.supervise_all_due(pool, COUNTY.towns, clock, 2) == 3
        levels = await pool.fetch("SELECT task_id FROM supervisions")
        assert {r["task_id"] for r in levels} == {served}
        assert await pool.fetchval("SELECT count(*) FROM tasks WHERE town_code = $1 AND next_supervision_at <= $2",
                                   GONE, NOW) == 3  # still due: worked again if the town comes back
    finally:
        await pool.close()
