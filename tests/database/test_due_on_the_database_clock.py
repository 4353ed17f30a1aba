"""Supervision (督办, SPEC §5.3) decided by the database's clock, not the replica's: a replica whose
own clock runs five minutes ahead claims only what is due by PostgreSQL's `now()`, publishes it
stamped with that moment, and its clock, once it has followed the database's, computes the same
deadlines as its peers. The test clock, when a test sets it, still decides instead."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from dispatch import rules, scheduled
from dispatch.app import MIGRATIONS
from townflow_shared.clock import Clock
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate

from ..supervision_rows import RULES, SUPERVISED, TOWNS, insert_tasks, task_row

AHEAD = timedelta(minutes=5)


async def published(pool: asyncpg.Pool) -> dict[str, tuple[str, datetime]]:
    """task_id → (level, the event's `at`) of every supervision event in the outbox."""
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1", SUPERVISED)
    events = [json.loads(r["payload"])["data"] for r in rows]
    return {e["task_id"]: (e["level"], datetime.fromisoformat(e["at"])) for e in events}


async def test_a_replica_five_minutes_ahead_publishes_nothing_before_the_databases_moment(
        fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=3)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        database_now: datetime = await pool.fetchval("SELECT now()")
        window = timedelta(hours=10)
        # Each task's reminder (at 80 % of its window) falls due at a moment around the database's now.
        reminder_in = {"passed a minute ago": timedelta(minutes=-1), "in one minute": timedelta(minutes=1),
                       "in four minutes": timedelta(minutes=4), "in ten minutes": timedelta(minutes=10)}
        rows = {name: task_row(database_now + due - window * RULES.reminder_at, window)
                for name, due in reminder_in.items()}
        async with pool.acquire() as conn:
            await insert_tasks(conn, list(rows.values()))
        skewed = Clock(system=lambda: datetime.now(UTC) + AHEAD)  # this replica's own clock

        assert await scheduled.supervise_all_due(pool, TOWNS, skewed, 50) == 1
        levels = await published(pool)
        assert set(levels) == {str(rows["passed a minute ago"][0])}, "only what is due by the database's clock"
        level, at = levels[str(rows["passed a minute ago"][0])]
        assert level == "reminder"
        # Stamped with the database's moment, not the replica's five minutes ahead.
        assert abs(at - datetime.now(UTC)) < timedelta(seconds=30)
        # Nothing more on a second pass at once (its claim found the rest not due).
        assert await scheduled.supervise_all_due(pool, TOWNS, skewed, 50) == 0

        # The replica's clock once it followed the database's: a deadline computed from it is its peers'.
        assert skewed.now() - datetime.now(UTC) > AHEAD - timedelta(seconds=5)
        await skewed.follow(pool)
        assert abs(skewed.now() - datetime.now(UTC)) < timedelta(seconds=1)

        # A test clock set by a test still decides: an hour on, the three others are due.
        skewed.set(database_now + timedelta(hours=1))
        assert await scheduled.supervise_all_due(pool, TOWNS, skewed, 50) == 3
        assert {level for level, _ in (await published(pool)).values()} == {"reminder"}
        assert rules.supervision_due(rows["in ten minutes"][14], rows["in ten minutes"][16], set(),
                                     database_now + timedelta(minutes=9), RULES) == []
    finally:
        await pool.close()
