"""Supervision (督办, SPEC §5.3 and §6.1) with a backlog and with replicas, on the running stack:
every due level of thousands of tasks goes out in one wake-up, the newest task is not starved by
older ones, and two dispatch processes share the work and publish each level exactly once. (The
loop's functions on a database of their own: tests/database/test_supervision_backlog.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from devstack.processes import free_port
from devstack.stack import ServiceProcess, Stack
from dispatch import rules

from .conftest import ADMIN, eventually, file_matter, http_client, set_clocks, task_of
from .kafka_tools import event_of, read_all
from .supervision_rows import RULES, SUPERVISED, insert_sent, insert_tasks, task_row


async def outbox_drained(db: asyncpg.Pool, topic: str) -> bool:
    """No row of `topic` left in the outbox: the relay deletes a row once the broker has it."""
    return not await db.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", topic)

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
        # Anything extra was committed with the levels above: once the outbox has handed the topic's
        # rows to the broker, the topic read up to its end offsets holds it.
        await eventually(lambda: outbox_drained(db, SUPERVISED), what="dispatch's outbox to drain")
        published = await all_published() or []
        counts = Counter((e["task_id"], e["level"]) for e in published)
        assert set(counts) == {(str(t), "reminder") for t in due_ids}  # nothing for the blockers
        assert set(counts.values()) == {1}
        assert all(e["at"] == published[0]["at"] for e in published)
    finally:  # closed: the test leaves no open work of its own to the session's supervision loop
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
        async with http_client(base_url=replica.url, timeout=20,
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
        await eventually(lambda: outbox_drained(db, SUPERVISED), what="dispatch's outbox to drain")
        published = await all_published() or []
        counts = Counter((e["task_id"], e["level"]) for e in published)
        assert set(counts) == expected and set(counts.values()) == {1}
        by = Counter(datetime.fromisoformat(str(e["at"])) for e in published)
        print(f"\nlevels sent by the first replica: {by[check_at]}, by the second: {by[replica_at]}")
        assert set(by) == {check_at, replica_at}  # both replicas took a share
    finally:
        replica.stop()
        await db.execute("UPDATE tasks SET status = 'closed' WHERE task_id = ANY($1)", ids)
