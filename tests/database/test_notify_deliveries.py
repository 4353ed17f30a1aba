"""Notify's deliveries on PostgreSQL alone: recorded once per event, person and channel however
often the event is handled; one replica at a time sends to a channel; a robot whose minute is full
is sent nothing (and nothing is counted against its messages)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from notify.app import MIGRATIONS
from notify.contacts import Robot, TownContacts
from notify.deps import Deps
from notify.rules import Delivery
from notify.scheduled import Sender
from notify.settings import NotifySettings
from notify.store import PgStore
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, Database, create_pool, migrate
from townflow_shared.settings import DEMO_TOWN_DIR

TOWN = "321003104"
ROBOT = f"robot:{TOWN}/duty"


async def _pool(dsn: str) -> asyncpg.Pool:
    pool = await create_pool(dsn, min_size=1, max_size=3)
    await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
    return pool


async def test_an_event_handled_twice_records_its_deliveries_once(fresh_database: str) -> None:
    pool = await _pool(fresh_database)
    try:
        event_id = uuid.uuid4()
        deliveries = [Delivery("s010", ROBOT, "新任务", "…"), Delivery("s010", "email:s010@qinghe.example.cn", "新任务", "…")]
        for _ in range(2):
            async with pool.acquire() as conn, conn.transaction():
                await PgStore(conn).add_deliveries(event_id, "dispatch.task.dispatched", TOWN, deliveries)
        rows = await pool.fetch("SELECT recipient, channel FROM deliveries WHERE event_id = $1", event_id)
        assert sorted((r["recipient"], r["channel"]) for r in rows) == sorted(
            (d.recipient, d.channel) for d in deliveries)
    finally:
        await pool.close()


async def test_one_replica_at_a_time_sends_to_a_channel(fresh_database: str) -> None:
    pool = await _pool(fresh_database)
    try:
        async with pool.acquire() as conn:
            store = PgStore(conn)
            await store.add_deliveries(uuid.uuid4(), "dispatch.task.dispatched", TOWN,
                                       [Delivery("s010", ROBOT, "新任务", "…")])
            assert await store.claim_channels("replica-a", 60, 10) == [ROBOT]
            assert await store.claim_channels("replica-b", 60, 10) == []  # held by a
            assert await store.still_held(ROBOT, "replica-a") and not await store.still_held(ROBOT, "replica-b")
            await store.release_channel(ROBOT, "replica-a")
            assert await store.claim_channels("replica-b", 60, 10) == [ROBOT]
            # b stops mid-wake-up (killed): once its lease has run out, a takes the channel over.
            await conn.execute("UPDATE channel_leases SET until = now() - interval '1 second'")
            assert await store.claim_channels("replica-a", 60, 10) == [ROBOT]
            assert not await store.still_held(ROBOT, "replica-b")
    finally:
        await pool.close()


async def test_a_robot_whose_minute_is_full_is_sent_nothing(fresh_database: str) -> None:
    pool = await _pool(fresh_database)
    try:
        database = Database()
        database.use(pool)
        county = load_county(DEMO_TOWN_DIR)
        # Its URL leads nowhere: a send would fail the test (no connection is made when nothing is sent).
        robot = Robot(name="duty", kind="dingtalk", url="http://127.0.0.1:9/robot/send?access_token=t", secret="SECx")
        deps = Deps(settings=NotifySettings(), county=county, clock=Clock(), database=database,
                    contacts={TOWN: TownContacts(robots=[robot])})
        async with pool.acquire() as conn:
            await PgStore(conn).add_deliveries(uuid.uuid4(), "dispatch.task.dispatched", TOWN,
                                               [Delivery("s010", ROBOT, "新任务", "…")])
            await conn.execute("INSERT INTO robot_messages (channel) SELECT $1 FROM generate_series(1, 20)", ROBOT)
        sender = Sender(deps, holder="replica-a")
        try:
            assert await sender.send_due() == 0
        finally:
            await sender.robots.close()
        row = await pool.fetchrow("SELECT status, attempts FROM deliveries")
        assert (row["status"], row["attempts"]) == ("pending", 0)  # waiting for the minute, not failed
        assert await pool.fetchval("SELECT count(*) FROM channel_leases") == 0  # given back
    finally:
        await pool.close()


async def test_two_replicas_record_one_digest_per_person_and_day_of_open_items_only(fresh_database: str) -> None:
    from datetime import UTC, datetime, timedelta

    from notify.digest import DIGEST_EVENT_TYPE, KnownCase
    from notify.rules import KnownTask
    from notify.scheduled import record_due_digests

    pool = await _pool(fresh_database)
    try:
        database = Database()
        database.use(pool)
        clock = Clock()
        morning = datetime(2026, 11, 24, 1, tzinfo=UTC)  # 09:00 in the town: past the default 08:30
        clock.set(morning)
        deps = Deps(settings=NotifySettings(), county=load_county(DEMO_TOWN_DIR), clock=clock, database=database,
                    contacts={TOWN: TownContacts(people=[  # type: ignore[list-item]
                        {"staff": p, "channels": [{"email": f"{p}@qinghe.example.cn"}]} for p in ("s010", "s011", "s026")])})
        async with pool.acquire() as conn:
            store = PgStore(conn)
            due = morning + timedelta(days=1)
            await store.remember_task(TOWN, KnownTask("t1", "s010", "social-security", "S002", "V01", "l", "accepted",
                                                      None, due))
            await store.remember_task(TOWN, KnownTask("t2", "s011", "social-security", "S002", "V01", "l", "dispatched",
                                                      morning, due))
            await store.set_task_state("t2", "closed")  # completed: s011 has nothing open
            await store.remember_case(TOWN, KnownCase("c1", "E001", "91321003MA0001", ("s026",), due))
        counts = await asyncio.gather(*(record_due_digests(deps) for _ in range(4)))
        assert sum(counts) == 2  # s010 and s026, once each, whichever pass came first
        assert await record_due_digests(deps) == 0
        rows = await pool.fetch("SELECT recipient, channel FROM deliveries WHERE event_type = $1 ORDER BY recipient",
                                DIGEST_EVENT_TYPE)
        assert [r["recipient"] for r in rows] == ["s010", "s026"]
        clock.set(morning + timedelta(days=1))  # the next day: the next digest
        assert await record_due_digests(deps) == 2
    finally:
        await pool.close()
