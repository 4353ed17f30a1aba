"""SPEC §6.1: a row the broker refuses for good is parked with the reason, and the rows behind
it are published — against the real broker."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import ProducerFenced

from devstack.stack import Stack
from townflow_shared import db
from townflow_shared.kafka import committed_outbox_ids, create_producer, kafka_admin, relay_transactional_id
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


def _relay_of(pool: asyncpg.Pool, bootstrap: str, service: str, takeover_seconds: float = 4.0) -> OutboxRelay:
    """A relay of the test's outbox as a service's runtime makes it; `service` names its
    transactional id, shared by the relays of one test as by a service's replicas."""
    settings = ServiceSettings(service_name=service, kafka_bootstrap=bootstrap)
    return OutboxRelay(service, pool, lambda: create_producer(settings, relay_transactional_id(settings)),
                       lambda topics, depth: committed_outbox_ids(settings, topics, depth),
                       takeover_seconds=takeover_seconds)


@contextlib.asynccontextmanager
async def _relay(pool: asyncpg.Pool, bootstrap: str, service: str | None = None,
                 takeover_seconds: float = 4.0) -> AsyncIterator[OutboxRelay]:
    """A relay driven by the test, its producer stopped after."""
    relay = _relay_of(pool, bootstrap, service or f"relaytest{uuid.uuid4().hex[:8]}", takeover_seconds)
    try:
        yield relay
    finally:
        if relay.producer is not None:
            await relay.producer.stop()


async def test_a_refusal_by_the_broker_itself_parks_the_row_and_the_others_go_in_the_next_transaction(
        scratch_outbox: asyncpg.Pool, bootstrap: str) -> None:
    # The topic takes at most 20 kB: the client lets the 30 kB record go and the broker refuses it.
    # (Above the producer's 16 kB batch size, so the record is alone in its batch.)
    topic = await _new_topic(bootstrap, **{"max.message.bytes": "20000"})
    async with _relay(scratch_outbox, bootstrap) as relay:
        first, big, second, other = await _write_rows(scratch_outbox, topic, [
            ("k1", _payload("first")), ("k1", _payload("big", 30_000)),
            ("k1", _payload("second")), ("k2", _payload("other"))])
        # The refusal fails the cycle's Kafka transaction: it is aborted, the refused row parked,
        # and the next cycle (a fresh producer) publishes the other three once, in order. (The row
        # behind it on its partition failed with it in a passing way: the relay backs off.)
        with pytest.raises(RowsHeldBack):
            await relay.publish_batch()
        assert relay.producer is None
        assert await relay.publish_batch() == 3
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
    async with _relay(scratch_outbox, bootstrap) as relay:
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
    async with _relay(scratch_outbox, bootstrap) as relay:
        bad, good = await _write_rows(scratch_outbox, "", [("k", _payload("nowhere"))]) + \
            await _write_rows(scratch_outbox, topic, [("k", _payload("somewhere"))])
        assert await relay.publish_batch() == 2
    reason = await scratch_outbox.fetchval("SELECT reason FROM outbox_parked WHERE id = $1", bad)
    assert reason.startswith("InvalidTopicError")
    assert [json.loads(r.value)["label"] for r in await read_all(bootstrap, topic)] == ["somewhere"]
    assert good not in [r["id"] for r in await scratch_outbox.fetch("SELECT id FROM outbox")]


async def _fetch_rows(pool: asyncpg.Pool, ids: list[int]) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT id, topic, key, payload, headers, created_at FROM outbox"
                            " WHERE id = ANY($1::bigint[]) ORDER BY id", ids)


async def test_a_relay_taking_over_fences_the_paused_holder_so_nothing_it_sends_after_is_read(
        scratch_outbox: asyncpg.Pool, bootstrap: str) -> None:
    """Issue #26: the holder is paused in the middle of a cycle (its Kafka transaction open, its
    database session ended by PostgreSQL); another replica takes over and publishes; the holder
    resumes and tries to finish."""
    topic = await _new_topic(bootstrap)
    service = f"relaytest{uuid.uuid4().hex[:8]}"
    async with _relay(scratch_outbox, bootstrap, service) as holder, \
            _relay(scratch_outbox, bootstrap, service, takeover_seconds=0) as standby:
        (first,) = await _write_rows(scratch_outbox, topic, [("k", _payload("first"))])
        assert await holder.publish_batch() == 1
        (second,) = await _write_rows(scratch_outbox, topic, [("k", _payload("second"))])
        paused = holder.producer
        assert paused is not None
        await paused.begin_transaction()
        (row,) = await _fetch_rows(scratch_outbox, [second])
        await holder._send(paused, row)  # sent, not committed: then the pause

        assert await standby.publish_batch() == 1  # took the lease (0 s), fenced, published `second`
        with pytest.raises(ProducerFenced):
            await paused.commit_transaction()  # the holder resumes: the broker refuses it
        assert await holder.publish_batch() == 0  # the lease is the standby's now
        assert await scratch_outbox.fetchval("SELECT holder FROM outbox_relay_lease") == standby.holder

    labels = [json.loads(r.value)["label"] for r in await read_all(bootstrap, topic)]
    assert labels == ["first", "second"]
    assert not await scratch_outbox.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1)", [first, second])


async def test_rows_on_the_broker_but_still_in_the_outbox_are_not_sent_again_after_a_takeover(
        scratch_outbox: asyncpg.Pool, bootstrap: str) -> None:
    """The holder's Kafka transaction committed and then it stopped before deleting the rows; the
    relay that takes over finds them on the topic's tail and deletes them instead of sending."""
    topic = await _new_topic(bootstrap)
    service = f"relaytest{uuid.uuid4().hex[:8]}"
    async with _relay(scratch_outbox, bootstrap, service) as holder, \
            _relay(scratch_outbox, bootstrap, service, takeover_seconds=0) as standby:
        assert await holder.publish_batch() == 0  # holds the lease, its producer started
        ids = await _write_rows(scratch_outbox, topic, [("k1", _payload("a")), ("k2", _payload("b"))])
        producer = holder.producer
        assert producer is not None
        await producer.begin_transaction()
        for row in await _fetch_rows(scratch_outbox, ids):
            await holder._send(producer, row)
        await producer.commit_transaction()  # on the broker; the delete never happens
        (later,) = await _write_rows(scratch_outbox, topic, [("k1", _payload("c"))])

        assert await standby.publish_batch() == 1  # only `c`: a and b were found on the topic
        assert not await scratch_outbox.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1)", [*ids, later])

    labels = sorted(json.loads(r.value)["label"] for r in await read_all(bootstrap, topic))
    assert labels == ["a", "b", "c"]
