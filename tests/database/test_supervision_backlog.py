"""Dispatch's supervision loop (督办, SPEC §5.3 and §6.1) on a database of the test's own, its
functions called directly: two passes at once share a backlog and publish each level once, one
wake-up clears a backlog many batches long, and the migration fills the next supervision moment
of tasks written before it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from devstack.postgres import Postgres
from dispatch import flows, rules, scheduled
from dispatch.app import MIGRATIONS
from dispatch.store import PgUnitOfWork
from townflow_shared.clock import Clock
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate

from ..supervision_rows import RULES, SUPERVISED, TOWN, TOWNS, insert_sent, insert_tasks, task_row
from .db_tools import database_before


async def migrated_pool(dsn: str) -> asyncpg.Pool:
    pool = await create_pool(dsn, min_size=3, max_size=6)
    await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
    return pool


async def supervised_in_outbox(pool: asyncpg.Pool) -> Counter[tuple[str, str]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1", SUPERVISED)
    return Counter((json.loads(r["payload"])["data"]["task_id"], json.loads(r["payload"])["data"]["level"])
                   for r in rows)


async def test_two_passes_at_once_share_the_work_and_publish_each_level_once(fresh_database: str) -> None:
    pool = await migrated_pool(fresh_database)
    try:
        now = datetime.fromisoformat("2027-05-10T10:00:00+08:00")
        window = timedelta(hours=24)
        # 2,000 tasks: some due for the reminder, some for every level (missed while down), some
        # for nothing yet.
        rows = [task_row(now - window * (0.1 + 1.5 * (i % 4) / 3) - timedelta(seconds=i), window)
                for i in range(2000)]
        async with pool.acquire() as conn:
            await insert_tasks(conn, rows)
        expected = {(str(r[0]), level) for r in rows
                    for level in rules.supervision_due(r[14], r[16], set(), now, RULES)}
        assert 1000 < len(expected) < 4000

        # Two transactions claim at once: the second skips the first's rows instead of waiting.
        async with pool.acquire() as a, pool.acquire() as b:
            async with a.transaction():
                first = await flows.supervise_due(PgUnitOfWork(a), TOWNS, now, 300)
                async with b.transaction():
                    second = await asyncio.wait_for(flows.supervise_due(PgUnitOfWork(b), TOWNS, now, 300), timeout=10)
            assert first.claimed == second.claimed == 300

        # A task held by someone else (a person completing it) is skipped, not waited for.
        held_id = await pool.fetchval(
            "SELECT task_id FROM tasks WHERE next_supervision_at <= $1 ORDER BY next_supervision_at LIMIT 1", now)
        clock = Clock()
        clock.set(now)
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute("SELECT 1 FROM tasks WHERE task_id = $1 FOR UPDATE", held_id)
            # Two replicas' wake-ups at once, in small batches.
            split = await asyncio.wait_for(asyncio.gather(
                scheduled.supervise_all_due(pool, TOWNS, clock, 50),
                scheduled.supervise_all_due(pool, TOWNS, clock, 50)), timeout=120)
        assert all(n > 0 for n in split), split
        assert not any(t == str(held_id) for t, _ in await supervised_in_outbox(pool))
        await scheduled.supervise_all_due(pool, TOWNS, clock, 50)  # the next wake-up takes it

        counts = await supervised_in_outbox(pool)
        assert set(counts) == expected
        assert set(counts.values()) == {1}
        assert await pool.fetchval("SELECT count(*) FROM supervisions") == len(expected)
        assert await pool.fetchval("SELECT count(*) FROM tasks WHERE next_supervision_at <= $1", now) == 0
        # A later wake-up at the same moment publishes nothing more.
        assert await scheduled.supervise_all_due(pool, TOWNS, clock, 50) == 0
    finally:
        await pool.close()


async def test_one_wake_up_clears_a_backlog_many_batches_long(fresh_database: str) -> None:
    pool = await migrated_pool(fresh_database)
    try:
        now = datetime.fromisoformat("2027-05-10T10:00:00+08:00")
        window = timedelta(hours=10)
        rows = [task_row(now - window * 0.9 - timedelta(seconds=i), window) for i in range(2000)]
        async with pool.acquire() as conn:
            await insert_tasks(conn, rows)
        clock = Clock()
        clock.set(now)
        started = time.monotonic()
        assert await scheduled.supervise_all_due(pool, TOWNS, clock, 100) == 2000  # 20 batches, one call
        print(f"\n2,000 reminders in batches of 100 in {time.monotonic() - started:.2f} s")
        assert set((await supervised_in_outbox(pool)).values()) == {1}
    finally:
        await pool.close()


async def test_the_migration_fills_the_next_supervision_of_existing_tasks(postgres: Postgres, tmp_path: Path) -> None:
    pool = await database_before(postgres, MIGRATIONS, "004", tmp_path)
    try:
        now = datetime.fromisoformat("2027-05-10T10:00:00+08:00")
        window = timedelta(hours=24)
        not_due = task_row(now - timedelta(hours=10), window)
        reminder_due = task_row(now - timedelta(hours=20), window)
        escalation_due = task_row(now - timedelta(hours=40), window)
        all_sent = task_row(now - timedelta(hours=40), window)
        completed = task_row(now - timedelta(hours=40), window, status="completed")
        async with pool.acquire() as conn:
            await insert_tasks(conn, [not_due, reminder_due, escalation_due, all_sent, completed], with_next=False,
                               town=None)
            await insert_sent(conn, [escalation_due[0]], ["reminder", "overdue"], now - timedelta(hours=16), town=None)
            await insert_sent(conn, [all_sent[0]], ["reminder", "overdue", "escalated"], now - timedelta(hours=4),
                              town=None)

        applied = await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS], default_town=TOWN.code)
        assert applied[:2] == [  # and whatever later migrations there are
            "dispatch/004_next_supervision.sql", "dispatch/005_next_supervision_from_older_versions.sql"]
        stored = {r["task_id"]: r["next_supervision_at"]
                  for r in await pool.fetch("SELECT task_id, next_supervision_at FROM tasks")}
        # Open tasks with a level to send are due at once; the loop's first pass sorts them out.
        assert stored[not_due[0]] == not_due[14]
        assert stored[reminder_due[0]] == reminder_due[14]
        assert stored[all_sent[0]] is None and stored[completed[0]] is None

        clock = Clock()
        clock.set(now)
        assert await scheduled.supervise_all_due(pool, TOWNS, clock, 500) == 2
        assert set(await supervised_in_outbox(pool)) == {(str(reminder_due[0]), "reminder"),
                                                         (str(escalation_due[0]), "escalated")}
        stored = {r["task_id"]: r["next_supervision_at"]
                  for r in await pool.fetch("SELECT task_id, next_supervision_at FROM tasks")}
        assert stored[not_due[0]] == not_due[14] + window * RULES.reminder_at
        assert stored[reminder_due[0]] == reminder_due[16]
        assert stored[escalation_due[0]] is None

        # A replica of the previous version, still running during a rolling upgrade, writes a
        # task without the column, and reworks one without moving it: both are due at once.
        older = task_row(now - timedelta(hours=20), window)
        async with pool.acquire() as conn:
            await insert_tasks(conn, [older], with_next=False)
            await conn.execute("DELETE FROM supervisions WHERE task_id = $1", reminder_due[0])
            await conn.execute("UPDATE tasks SET status = 'rework', window_start = $2, resolve_by = $3"
                               " WHERE task_id = $1", reminder_due[0], now - timedelta(hours=22), now + timedelta(hours=2))
        stored = {r["task_id"]: r["next_supervision_at"]
                  for r in await pool.fetch("SELECT task_id, next_supervision_at FROM tasks")}
        assert stored[older[0]] == older[14]
        assert stored[reminder_due[0]] == now - timedelta(hours=22)
        assert await scheduled.supervise_all_due(pool, TOWNS, clock, 500) == 2
        assert (await supervised_in_outbox(pool))[(str(older[0]), "reminder")] == 1
        assert (await supervised_in_outbox(pool))[(str(reminder_due[0]), "reminder")] == 2  # once per window
    finally:
        await pool.close()
