"""Supervision (督办, SPEC §5.3 and §6.1) with a backlog and with replicas: every due level of
thousands of tasks goes out in one wake-up, the newest task is not starved by older ones, and
two passes at once share the work and publish each level exactly once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from devstack.processes import free_port
from devstack.stack import ServiceProcess, Stack
from dispatch import flows, rules, scheduled
from dispatch.app import MIGRATIONS
from dispatch.store import PgUnitOfWork
from townflow_shared.clock import Clock
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

from .conftest import ADMIN, eventually, file_matter, set_clocks, task_of
from .db_tools import database_before
from .kafka_tools import event_of, read_all

SUPERVISED = "dispatch.task.supervised.v1"
TOWN = load_town(DEMO_TOWN_DIR)
RULES = TOWN.rules.dispatch
TOWNS = {TOWN.code: TOWN}
COLUMNS = ("task_id", "request_id", "ticket_no", "item_code", "kind", "colour", "village", "location",
           "lead_module", "post", "assignee", "assigned_via", "status", "dispatched_at", "window_start",
           "respond_by", "resolve_by")


def task_row(window_start: datetime, window: timedelta, status: str = "dispatched") -> tuple[object, ...]:
    """A task of the demo town's mediation post (A holder s017), as dispatch stores it."""
    return (uuid.uuid4(), uuid.uuid4(), f"321003104-TEST-{uuid.uuid4().hex[:8]}", "T004", "service", "red",
            "V01", "青禾村五组", "stability", "mediation", "s017", "A", status, window_start, window_start,
            window_start + timedelta(hours=1), window_start + window)


async def insert_tasks(conn: asyncpg.Connection, rows: Sequence[tuple[object, ...]],
                       with_next: bool = True, town: str | None = TOWN.code) -> None:
    """Tasks of `town` written straight into dispatch's database (far faster than filing
    thousands), with the next supervision moment dispatch itself would store. `town` None: as
    written before the county change (no town_code column yet)."""
    columns: tuple[str, ...] = COLUMNS if town is None else (*COLUMNS, "town_code")
    rows = [row if town is None else (*row, town) for row in rows]
    if not with_next:
        await conn.copy_records_to_table("tasks", records=rows, columns=columns)
        return
    records = [(*row, rules.next_supervision_at(row[14], row[16], (), RULES)
                if row[12] in rules.OPEN_STATUSES else None) for row in rows]
    await conn.copy_records_to_table("tasks", records=records, columns=(*columns, "next_supervision_at"))


async def insert_sent(conn: asyncpg.Connection, task_ids: Sequence[uuid.UUID], levels: Sequence[str],
                      at: datetime, town: str | None = TOWN.code) -> None:
    """Levels already sent, of tasks of `town` (None: as written before the county change)."""
    columns: tuple[str, ...] = ("task_id", "level", "at", "notified")
    records = [(t, level, at, ["s017"]) for t in task_ids for level in levels]
    if town is not None:
        columns, records = (*columns, "town_code"), [(*r, town) for r in records]
    await conn.copy_records_to_table("supervisions", columns=columns, records=records)


# --- On the running stack ----------------------------------------------------------------------

async def test_2000_due_reminders_go_out_in_one_wake_up_and_the_newest_is_not_starved(
        stack: Stack, intake: object, dispatch: object, bootstrap: str,
        databases: dict[str, asyncpg.Pool]) -> None:
    filed_at = datetime.fromisoformat("2027-03-01T09:00:00+08:00")
    await set_clocks(stack, filed_at.isoformat())
    window = timedelta(hours=24)  # red: 24 clock hours, reminder at 19.2 h
    reminder_moment = filed_at + window * RULES.reminder_at
    check_at = reminder_moment + timedelta(minutes=1)
    # 1,999 older tasks, dispatched a second apart before the newest: all past their reminder
    # point at check_at, none overdue yet.
    backlog = [task_row(filed_at - timedelta(seconds=2000 - i), window) for i in range(1999)]
    # 600 long-overdue tasks waiting for escalation (reminder and overdue sent): not due at
    # check_at. Taken by resolve_by, 500 at a time, they used to fill every pass.
    blocker_start = check_at - window * 1.25
    blockers = [task_row(blocker_start, window) for _ in range(600)]
    db = databases["dispatch"]
    async with db.acquire() as conn, conn.transaction():
        await insert_tasks(conn, backlog + blockers)
        await insert_sent(conn, [b[0] for b in blockers], ["reminder", "overdue"], blocker_start + window)
        await conn.execute("UPDATE tasks SET next_supervision_at = $2 WHERE task_id = ANY($1)",
                           [b[0] for b in blockers], blocker_start + window * RULES.escalated_at)
    # The newest through intake and dispatch's own code path.
    newest = await task_of(dispatch, (await file_matter(intake, item_code="T004", colour="red"))["request_id"])
    assert datetime.fromisoformat(newest["resolve_by"]) == filed_at + window
    assert datetime.fromisoformat(newest["next_supervision_at"]) == reminder_moment
    due_ids = [row[0] for row in backlog] + [uuid.UUID(newest["task_id"])]
    blocker_ids = [row[0] for row in blockers]
    try:
        started = time.monotonic()
        await set_clocks(stack, check_at.isoformat())

        async def newest_reminded() -> bool:
            return bool(await db.fetchval("SELECT true FROM supervisions WHERE task_id = $1 AND level = 'reminder'",
                                          uuid.UUID(newest["task_id"])))

        # One wake-up (supervision_seconds is 10 s): a second wake-up would already be too late.
        await eventually(newest_reminded, timeout=30, what="the newest task's reminder")
        newest_after = time.monotonic() - started

        async def all_recorded() -> bool:
            return int(await db.fetchval("SELECT count(*) FROM supervisions WHERE task_id = ANY($1)",
                                         due_ids)) >= len(due_ids)

        await eventually(all_recorded, timeout=30, what="2,000 reminders recorded")
        recorded_after = time.monotonic() - started
        wanted = {str(t) for t in due_ids + blocker_ids}

        async def all_published() -> list[dict[str, object]] | None:
            mine = [event_of(r)["data"] for r in await read_all(bootstrap, SUPERVISED)
                    if event_of(r)["data"]["task_id"] in wanted]
            return mine if len(mine) >= len(due_ids) else None

        published = await eventually(all_published, timeout=60, what="2,000 reminders on the topic")
        published_after = time.monotonic() - started
        print(f"\n2,000 due reminders: newest recorded after {newest_after:.2f} s, all recorded after "
              f"{recorded_after:.2f} s, all on Kafka after {published_after:.2f} s")
        await asyncio.sleep(1)  # anything extra would show up now
        published = await all_published() or []
        counts = Counter((e["task_id"], e["level"]) for e in published)
        assert set(counts) == {(str(t), "reminder") for t in due_ids}  # nothing for the blockers
        assert set(counts.values()) == {1}
        assert all(e["at"] == published[0]["at"] for e in published)
    finally:  # closed, they stay out of later tests' supervision
        await db.execute("UPDATE tasks SET status = 'closed' WHERE task_id = ANY($1)", due_ids + blocker_ids)


async def test_two_dispatch_replicas_share_supervision_and_publish_each_level_once(
        stack: Stack, bootstrap: str, databases: dict[str, asyncpg.Pool], tmp_path: Path) -> None:
    """A second dispatch process on the same database, as the Kubernetes manifests run it. Its
    clock stands one second after the first's, so each level's `at` tells which replica sent it."""
    check_at = datetime.fromisoformat("2027-04-05T10:00:00+08:00")
    await set_clocks(stack, (check_at - timedelta(days=3)).isoformat())
    port = free_port()
    replica = ServiceProcess("dispatch", port, stack.service_env("dispatch") | {
        "TOWNFLOW_HTTP_PORT": str(port), "TOWNFLOW_SUPERVISION_BATCH_SIZE": "50"},
        tmp_path / "dispatch-replica.log")
    window = timedelta(hours=24)
    # 900 tasks due for their reminder, 300 for every level (missed while both were down).
    rows = ([task_row(check_at - window * 0.9 - timedelta(seconds=i), window) for i in range(900)]
            + [task_row(check_at - window * 2 - timedelta(seconds=i), window) for i in range(300)])
    ids = [row[0] for row in rows]
    db = databases["dispatch"]
    async with db.acquire() as conn:
        await insert_tasks(conn, rows)
    replica.start()
    try:
        replica_at = check_at + timedelta(seconds=1)
        token = stack.token("dispatch", ADMIN[0], ADMIN[1:])
        async with httpx.AsyncClient(base_url=replica.url, timeout=20,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            moved = await asyncio.gather(
                set_clocks(stack, check_at.isoformat()),
                client.post("/v1/admin/clock", json={"now": replica_at.isoformat()}))
        assert moved[1].status_code == 200, moved[1].text
        expected = {(str(r[0]), level) for r in rows
                    for level in rules.supervision_due(r[14], r[16], set(), check_at, RULES)}
        assert len(expected) == 900 + 300 * 3
        wanted = {str(t) for t in ids}

        async def all_published() -> list[dict[str, object]] | None:
            mine = [event_of(r)["data"] for r in await read_all(bootstrap, SUPERVISED)
                    if event_of(r)["data"]["task_id"] in wanted]
            return mine if len(mine) >= len(expected) else None

        published = await eventually(all_published, timeout=60, what="every due level on the topic")
        await asyncio.sleep(1)
        published = await all_published() or []
        counts = Counter((e["task_id"], e["level"]) for e in published)
        assert set(counts) == expected and set(counts.values()) == {1}
        by = Counter(datetime.fromisoformat(str(e["at"])) for e in published)
        print(f"\nlevels sent by the first replica: {by[check_at]}, by the second: {by[replica_at]}")
        assert set(by) == {check_at, replica_at}  # both replicas took a share
    finally:
        replica.stop()
        await db.execute("UPDATE tasks SET status = 'closed' WHERE task_id = ANY($1)", ids)


# --- On a database of the test's own, the loop's functions called directly ---------------------

async def migrated_pool(dsn: str) -> asyncpg.Pool:
    pool = await create_pool(dsn, min_size=3, max_size=6)
    await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
    return pool


async def supervised_in_outbox(pool: asyncpg.Pool) -> Counter[tuple[str, str]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1", SUPERVISED)
    return Counter((json.loads(r["payload"])["data"]["task_id"], json.loads(r["payload"])["data"]["level"])
                   for r in rows)


async def test_two_passes_at_once_share_the_work_and_publish_each_level_once(
        own_database: tuple[str, Path]) -> None:
    pool = await migrated_pool(own_database[0])
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


async def test_one_wake_up_clears_a_backlog_many_batches_long(own_database: tuple[str, Path]) -> None:
    pool = await migrated_pool(own_database[0])
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


async def test_the_migration_fills_the_next_supervision_of_existing_tasks(stack: Stack, tmp_path: Path) -> None:
    pool = await database_before(stack, MIGRATIONS, "004", tmp_path)
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
