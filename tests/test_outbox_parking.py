"""SPEC §6.1: a row the broker refuses for good is parked with the reason, and the rows behind
it are published — against the real broker."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devstack.stack import Stack
from townflow_shared import db
from townflow_shared.kafka import create_producer, kafka_admin
from townflow_shared.outbox import OutboxRelay, RowsHeldBack
from townflow_shared.settings import ServiceSettings

from .conftest import Api, eventually
from .kafka_tools import read_all

# Above the producer's max_request_size and the test broker's message.max.bytes (both ~1 MiB).
TOO_LARGE = 1_500_000


async def _new_topic(bootstrap: str, **configs: str) -> str:
    topic = f"townflow.test.parking.{uuid.uuid4().hex[:12]}"
    async with kafka_admin(bootstrap) as admin:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs=configs)])
    return topic


def _payload(label: str, size: int = 0) -> bytes:
    return json.dumps({"label": label, "padding": "x" * size}).encode()


async def _write_rows(pool: asyncpg.Pool, topic: str, rows: list[tuple[str, bytes]]) -> list[int]:
    """Rows written straight into an outbox, in one transaction and in this order."""
    async with pool.acquire() as conn, conn.transaction():
        return [await conn.fetchval("INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3) RETURNING id",
                                    topic, key, payload) for key, payload in rows]


async def test_a_record_larger_than_the_broker_takes_is_parked_and_the_rows_behind_it_go_on(
        databases: dict[str, asyncpg.Pool], intake: Api, bootstrap: str) -> None:
    topic = await _new_topic(bootstrap)
    key = f"matter-{uuid.uuid4()}"
    big, small = await _write_rows(databases["intake"], topic, [
        (key, _payload("big", TOO_LARGE)), (key, _payload("after"))])

    async def published() -> list[bytes]:
        return [r.value for r in await read_all(bootstrap, topic)]

    values = await eventually(published, what="the row behind the refused one on the topic")
    assert [json.loads(v)["label"] for v in values] == ["after"]
    async with databases["intake"].acquire() as conn:
        # The relay commits after the broker's acknowledgement: the record can be seen first.
        parked = await eventually(lambda: conn.fetchrow("SELECT * FROM outbox_parked WHERE id = $1", big),
                                  what="the refused row in outbox_parked")
        assert parked["topic"] == topic and parked["key"] == key and len(parked["payload"]) > TOO_LARGE
        assert parked["reason"].startswith("MessageSizeTooLargeError")
        assert parked["parked_at"] is not None
        assert not await conn.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1)", [big, small])

    async def counted() -> bool:
        metrics = (await intake.call("GET", "/metrics")).text
        parked_total = f'townflow_outbox_parked_total{{service="intake",topic="{topic}"}} 1.0'
        rows = [line for line in metrics.splitlines() if line.startswith('townflow_outbox_parked_rows{service="intake"}')]
        return parked_total in metrics and bool(rows) and float(rows[0].rsplit(" ", 1)[1]) >= 1

    await eventually(counted, what="the parked row counted on /metrics")
    await databases["intake"].execute("DELETE FROM outbox_parked WHERE id = $1", big)  # the operator discards it


@pytest.fixture
async def scratch_outbox(stack: Stack, databases: dict[str, asyncpg.Pool]) -> AsyncIterator[asyncpg.Pool]:
    """An outbox of its own in a fresh database, so a relay driven by the test has it alone."""
    assert stack.postgres is not None
    name = f"relay_{uuid.uuid4().hex[:12]}"
    await databases["intake"].execute(f'CREATE DATABASE "{name}"')
    pool = await db.create_pool(stack.postgres.dsn(name), 1, 3)
    try:
        await db.migrate(pool, [db.SHARED_MIGRATIONS])
        yield pool
    finally:
        await pool.close()
        with contextlib.suppress(Exception):
            await databases["intake"].execute(f'DROP DATABASE "{name}"')


@contextlib.asynccontextmanager
async def _relay(pool: asyncpg.Pool, bootstrap: str) -> AsyncIterator[tuple[OutboxRelay, AIOKafkaProducer]]:
    """A relay of the test's outbox with a started producer (given back too) and a factory for the
    fresh one it makes after a broker's refusal; both stopped after."""
    settings = ServiceSettings(service_name="relaytest", kafka_bootstrap=bootstrap)
    given = create_producer(settings)
    await given.start()
    relay = OutboxRelay("relaytest", pool, given, producer_factory=lambda: create_producer(settings))
    try:
        yield relay, given
    finally:
        if relay.producer is not given:  # renewed after the broker's refusal
            await relay.producer.stop()
        await given.stop()


async def test_a_refusal_by_the_broker_itself_parks_the_row_and_the_relay_renews_its_producer(
        scratch_outbox: asyncpg.Pool, bootstrap: str) -> None:
    # The topic takes at most 20 kB: the client lets the 30 kB record go and the broker refuses it.
    # (Above the producer's 16 kB batch size, so the record is alone in its batch.)
    topic = await _new_topic(bootstrap, **{"max.message.bytes": "20000"})
    async with _relay(scratch_outbox, bootstrap) as (relay, given):
        first, big, second, other = await _write_rows(scratch_outbox, topic, [
            ("k1", _payload("first")), ("k1", _payload("big", 30_000)),
            ("k1", _payload("second")), ("k2", _payload("other"))])
        # The broker's refusal spent a sequence number of the idempotent producer: the rows behind
        # it on the partition fail with it and wait; the next cycle publishes them with a new producer.
        with pytest.raises(RowsHeldBack):
            await relay.publish_batch()
        assert relay.producer is not given
        assert await relay.publish_batch() == 2
        assert await relay.publish_batch() == 0

    labels = [json.loads(r.value)["label"] for r in await read_all(bootstrap, topic)]
    assert labels == ["first", "second", "other"]
    parked = await scratch_outbox.fetch("SELECT id, reason FROM outbox_parked")
    assert [p["id"] for p in parked] == [big]
    assert parked[0]["reason"].startswith("MessageSizeTooLargeError")
    assert await scratch_outbox.fetchval("SELECT count(*) FROM outbox") == 0
    assert {first, second, other}.isdisjoint(p["id"] for p in parked)


async def test_the_runbook_republishes_a_parked_row_once_the_topic_takes_it(
        scratch_outbox: asyncpg.Pool, bootstrap: str) -> None:
    topic = await _new_topic(bootstrap, **{"max.message.bytes": "20000"})
    async with _relay(scratch_outbox, bootstrap) as (relay, _):
        (big,) = await _write_rows(scratch_outbox, topic, [("k1", _payload("big", 30_000))])
        assert await relay.publish_batch() == 1
        assert await scratch_outbox.fetchval("SELECT count(*) FROM outbox_parked WHERE id = $1", big) == 1

        async with kafka_admin(bootstrap) as admin:  # the operator raises the topic's limit
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": "100000"})])
        await scratch_outbox.execute(  # the README's runbook, word for word but the id
            "WITH back AS (DELETE FROM outbox_parked WHERE id = ANY($1::bigint[]) RETURNING *)"
            " INSERT INTO outbox (topic, key, payload, headers, created_at)"
            " SELECT topic, key, payload, headers, created_at FROM back ORDER BY id", [big])

        async def republished() -> bool:
            with contextlib.suppress(RowsHeldBack):
                await relay.publish_batch()
            return not await scratch_outbox.fetchval("SELECT count(*) FROM outbox")

        await eventually(republished, what="the re-published row to leave the outbox")
    assert [json.loads(r.value)["label"] for r in await read_all(bootstrap, topic)] == ["big"]
    assert not await scratch_outbox.fetchval("SELECT count(*) FROM outbox_parked")


async def test_a_row_for_an_illegal_topic_name_is_parked_at_once(scratch_outbox: asyncpg.Pool, bootstrap: str) -> None:
    topic = await _new_topic(bootstrap)
    async with _relay(scratch_outbox, bootstrap) as (relay, _):
        bad, good = await _write_rows(scratch_outbox, "", [("k", _payload("nowhere"))]) + \
            await _write_rows(scratch_outbox, topic, [("k", _payload("somewhere"))])
        assert await relay.publish_batch() == 2
    reason = await scratch_outbox.fetchval("SELECT reason FROM outbox_parked WHERE id = $1", bad)
    assert reason.startswith("InvalidTopicError")
    assert [json.loads(r.value)["label"] for r in await read_all(bootstrap, topic)] == ["somewhere"]
    assert good not in [r["id"] for r in await scratch_outbox.fetch("SELECT id FROM outbox")]
