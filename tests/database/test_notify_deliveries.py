"""Notify's deliveries on PostgreSQL alone: recorded once per event, person and channel however
often the event is handled; one replica at a time sends to a channel; a robot whose minute is full
is sent nothing (and nothing is counted against its messages); channels sent to at once, each
channel's messages one at a time, each message recorded sent before the next is sent (one
statement by primary key), and a wake-up's failures recorded with its lease given back in one."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from notify.app import MIGRATIONS
from notify.contacts import Robot, TownContacts
from notify.deps import Deps
from notify.rules import Delivery
from notify.scheduled import Sender
from notify.settings import NotifySettings
from notify.store import Failed, PgStore
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import Database
from townflow_shared.settings import DEMO_TOWN_DIR

from .db_tools import migrated

TOWN = "321003104"
ROBOT = f"robot:{TOWN}/duty"


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated(fresh_database, MIGRATIONS, max_size=3) as p:
        yield p


def _deps(pool: asyncpg.Pool, contacts: TownContacts, settings: NotifySettings | None = None,
          clock: Clock | None = None) -> Deps:
    """A sender's or the digest's deps on `pool`, the demo town's people reached as `contacts` say."""
    database = Database()
    database.use(pool)
    return Deps(settings=settings or NotifySettings(), county=load_county(DEMO_TOWN_DIR), clock=clock or Clock(),
                database=database, contacts={TOWN: contacts})


async def test_an_event_handled_twice_records_its_deliveries_once(pool: asyncpg.Pool) -> None:
    event_id = uuid.uuid4()
    deliveries = [Delivery("s010", ROBOT, "新任务", "…"), Delivery("s010", "email:s010@qinghe.example.cn", "新任务", "…")]
    for _ in range(2):
        async with pool.acquire() as conn, conn.transaction():
            await PgStore(conn).add_deliveries(event_id, "dispatch.task.dispatched", TOWN, deliveries)
    rows = await pool.fetch("SELECT recipient, channel FROM deliveries WHERE event_id = $1", event_id)
    assert sorted((r["recipient"], r["channel"]) for r in rows) == sorted(
        (d.recipient, d.channel) for d in deliveries)


async def test_one_replica_at_a_time_sends_to_a_channel(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        store = PgStore(conn)
        await store.add_deliveries(uuid.uuid4(), "dispatch.task.dispatched", TOWN,
                                   [Delivery("s010", ROBOT, "新任务", "…")])
        assert await store.claim_channels("replica-a", 60, 10) == [ROBOT]
        assert await store.claim_channels("replica-b", 60, 10) == []  # held by a
        assert len(await store.due_while_held(ROBOT, "replica-a", 60, 10)) == 1
        assert await store.due_while_held(ROBOT, "replica-b", 60, 10) == []
        await store.release_channel(ROBOT, "replica-a")
        assert await store.claim_channels("replica-b", 60, 10) == [ROBOT]
        # b stops mid-wake-up (killed): once its lease has run out, a takes the channel over.
        await conn.execute("UPDATE channel_leases SET until = now() - interval '1 second'")
        assert await store.claim_channels("replica-a", 60, 10) == [ROBOT]
        assert await store.due_while_held(ROBOT, "replica-b", 60, 10) == []


async def test_a_robot_whose_minute_is_full_is_sent_nothing(pool: asyncpg.Pool) -> None:
    # Its URL leads nowhere: a send would fail the test (no connection is made when nothing is sent).
    robot = Robot(name="duty", kind="dingtalk", url="http://127.0.0.1:9/robot/send?access_token=t", secret="SECx")
    deps = _deps(pool, TownContacts(robots=[robot]))
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


async def test_two_replicas_record_one_digest_per_person_and_day_of_open_items_only(pool: asyncpg.Pool) -> None:
    from datetime import UTC, datetime, timedelta

    from notify.digest import DIGEST_EVENT_TYPE, KnownCase
    from notify.rules import KnownTask
    from notify.scheduled import record_due_digests

    clock = Clock()
    morning = datetime(2026, 11, 24, 1, tzinfo=UTC)  # 09:00 in the town: past the default 08:30
    clock.set(morning)
    deps = _deps(pool, TownContacts(people=[  # type: ignore[list-item]
        {"staff": p, "channels": [{"email": f"{p}@qinghe.example.cn"}]} for p in ("s010", "s011", "s026")]), clock=clock)
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


async def _statements(conn: asyncpg.Connection, work: Callable[[], Awaitable[None]]) -> list[str]:
    """The statements `work` ran on `conn` that touch notify's tables (asyncpg's own look-ups of
    the array types aside)."""
    statements: list[str] = []

    def log(record: asyncpg.connection.LoggedQuery) -> None:
        statements.append(record.query)

    conn.add_query_logger(log)
    try:
        await work()
        await asyncio.sleep(0.1)  # asyncpg calls its query loggers soon after, not at once
    finally:
        conn.remove_query_logger(log)
    return [q for q in statements if any(t in q for t in ("deliveries", "channel_leases", "robot_messages"))]


async def test_a_message_is_recorded_in_one_statement_and_a_wake_ups_end_in_one(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        store = PgStore(conn)
        await store.add_deliveries(uuid.uuid4(), "dispatch.task.dispatched", TOWN, [
            Delivery(f"s0{n}", ROBOT, f"新任务{n}", "…") for n in range(10, 15)])
        assert await store.claim_channels("replica-a", 60, 10) == [ROBOT]
        ids = [r["id"] for r in await store.due_while_held(ROBOT, "replica-a", 60, 10)]
        # A message alone, then a digest folding two: each one statement, counted for the robot's minute.
        assert len(await _statements(conn, lambda: store.record_sent(ids[:1], False, ROBOT))) == 1
        assert len(await _statements(conn, lambda: store.record_sent(ids[1:3], True, ROBOT))) == 1
        assert await conn.fetchval("SELECT count(*) FROM robot_messages WHERE channel = $1", ROBOT) == 2
        await store.record_sent(ids[:1], False, ROBOT)  # recorded again: the delivery stays as it was
        await store.record_sent([], False, None)  # an e-mail's is counted against nothing
        assert await conn.fetchval("SELECT count(*) FROM robot_messages") == 3
        failed = Failed(ids[3:], [5.0, 50.0], "HTTP 503")
        assert len(await _statements(conn, lambda: store.release_channel(ROBOT, "replica-a", failed))) == 1
        rows = {r["id"]: r for r in await conn.fetch(
            "SELECT id, status, attempts, in_digest, last_error,"
            " extract(epoch FROM next_attempt_at - now())::float8 AS wait FROM deliveries")}
        assert [(rows[i]["status"], rows[i]["in_digest"], rows[i]["attempts"]) for i in ids[:3]] == [
            ("sent", False, 1), ("sent", True, 1), ("sent", True, 1)]
        assert [(rows[i]["status"], rows[i]["last_error"], rows[i]["attempts"]) for i in ids[3:]] == [
            ("pending", "HTTP 503", 1), ("pending", "HTTP 503", 1)]
        assert 4 < rows[ids[3]]["wait"] <= 5 and 49 < rows[ids[4]]["wait"] <= 50
        assert await conn.fetchval("SELECT count(*) FROM channel_leases") == 0  # given back


async def _webhook_turn(dsn: str, pool: asyncpg.Pool, answers: list[int]) -> tuple[int, list[tuple[int, list[str]]]]:
    """One wake-up of a sender on a signed webhook with five deliveries due, against a real HTTP
    server answering `answers` in turn (200 after them). At each arrival, before answering, the
    server reads the deliveries' statuses (by id) on a connection of its own. The number sent, and
    each arrival's delivery id with the statuses it saw."""
    observer = await asyncpg.connect(dsn)
    seen: list[tuple[int, list[str]]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        delivery_id = json.loads(await reader.readexactly(length))["id"]
        seen.append((delivery_id, [r["status"] for r in await observer.fetch("SELECT status FROM deliveries ORDER BY id")]))
        status = answers[len(seen) - 1] if len(seen) <= len(answers) else 200
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        robot = Robot(name="feed", kind="webhook", url=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/feed",
                      secret="k")
        deps = _deps(pool, TownContacts(robots=[robot]))
        async with pool.acquire() as conn:
            await PgStore(conn).add_deliveries(uuid.uuid4(), "dispatch.task.dispatched", TOWN, [
                Delivery(f"s0{n}", f"robot:{TOWN}/feed", "新任务", "…") for n in range(10, 15)])
        sender = Sender(deps, holder="replica-a")
        try:
            return await sender.send_due(), seen
        finally:
            await sender.close()
    finally:
        server.close()
        await observer.close()


async def test_each_message_is_recorded_sent_before_the_next_is_sent(fresh_database: str, pool: asyncpg.Pool) -> None:
    sent, seen = await _webhook_turn(fresh_database, pool, [])
    assert sent == 5
    assert [i for i, _ in seen] == [r["id"] for r in await pool.fetch("SELECT id FROM deliveries ORDER BY id")]
    # Each message arrives with those before it already recorded sent, seen from elsewhere: a
    # replica killed while one is in flight would send again that one only.
    assert [statuses for _, statuses in seen] == [["sent"] * n + ["pending"] * (5 - n) for n in range(5)]


async def test_a_wake_up_whose_second_send_fails_leaves_the_first_sent_and_the_rest_waiting(
        fresh_database: str, pool: asyncpg.Pool) -> None:
    sent, seen = await _webhook_turn(fresh_database, pool, [200, 503])
    assert sent == 1 and len(seen) == 2  # the rest are not tried: the receiver is down
    rows = await pool.fetch("SELECT status, attempts, last_error, next_attempt_at > now() AS later"
                            " FROM deliveries ORDER BY id")
    assert [tuple(r) for r in rows] == [("sent", 1, None, False)] + [("pending", 1, "HTTP 503", True)] * 4
    assert await pool.fetchval("SELECT count(*) FROM robot_messages") == 1  # the one message sent
    assert await pool.fetchval("SELECT count(*) FROM channel_leases") == 0  # given back


async def test_channels_are_sent_to_at_once_and_each_channels_messages_one_at_a_time(pool: asyncpg.Pool) -> None:
    """Three signed webhooks of no per-minute limit, ten messages each, against a real HTTP server
    that takes a while to answer: the channels overlap, one channel's messages never do."""
    busy: dict[str, int] = {}
    most = {"total": 0, "one_channel": 0}
    arrived: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        busy[path] = busy.get(path, 0) + 1
        most["total"] = max(most["total"], sum(busy.values()))
        most["one_channel"] = max(most["one_channel"], busy[path])
        await asyncio.sleep(0.02)
        busy[path] -= 1
        arrived.append(path)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        robots = [Robot(name=f"feed{n}", kind="webhook", url=f"http://127.0.0.1:{port}/feed{n}", secret="k")
                  for n in range(3)]
        deps = _deps(pool, TownContacts(robots=robots), NotifySettings(send_concurrency=3))
        async with pool.acquire() as conn:
            await PgStore(conn).add_deliveries(uuid.uuid4(), "dispatch.task.dispatched", TOWN, [
                Delivery(f"s0{n}", f"robot:{TOWN}/{robot.name}", "新任务", "…")
                for robot in robots for n in range(10, 20)])
        sender = Sender(deps, holder="replica-a")
        try:
            assert await sender.send_due() == 30  # no per-minute limit on a webhook: no digest
        finally:
            await sender.robots.close()
        assert sorted(arrived) == sorted(f"/feed{n}" for n in range(3) for _ in range(10))
        assert most["one_channel"] == 1 and most["total"] > 1
        assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'sent' AND NOT in_digest") == 30
    finally:
        server.close()
