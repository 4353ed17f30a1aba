"""Reading and writing the real topics from tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from devstack.stack import REPO
from townflow_shared.kafka import topic_partitions
from townflow_shared.lag import group_lag


async def read_all(bootstrap: str, topic: str, timeout: float = 20.0) -> list[ConsumerRecord]:
    """Every record on `topic` up to its end offsets as they stand now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end offsets")
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def place_group_at_the_ends(bootstrap: str, group: str, topics: list[str]) -> None:
    """Commit `group`'s offsets at the ends of `topics` as they stand now, before the group first
    runs: a service that joins a running system then handles what comes after it joined (a group
    new to a topic starts at its earliest record, the whole history)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, topics)
        consumer.assign(partitions)
        await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def wait_for_record(bootstrap: str, topic: str, match: Callable[[ConsumerRecord], bool],
                          timeout: float = 30.0) -> ConsumerRecord:
    """The first record on `topic` (from the beginning) that `match` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in await read_all(bootstrap, topic):
            if match(record):
                return record
        await asyncio.sleep(0.2)
    raise TimeoutError(f"no matching record on {topic} within {timeout}s")


def event_of(record: ConsumerRecord) -> dict[str, Any]:
    return json.loads(record.value)


def about(request_id: str) -> Callable[[ConsumerRecord], bool]:
    def match(record: ConsumerRecord) -> bool:
        try:
            return event_of(record)["data"].get("request_id") == request_id
        except (ValueError, KeyError, AttributeError, TypeError):
            return False

    return match


async def produce(bootstrap: str, topic: str, value: bytes, key: bytes | None = None,
                  headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


async def produce_together(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """(key, value) pairs sent in one go, so a consumer most likely fetches them in one batch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=value, key=key,
                                    headers=[("content-type", b"application/json")])
                for key, value in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def group_caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """True when `group` has handled every message of every partition of `topics`."""
    return not any((await group_lag(bootstrap, group, await topic_partitions(bootstrap, topics))).values())


def topics_consumed_by(service: str) -> list[str]:
    """The topics `service` subscribes to, as its generated AsyncAPI document says: a topic it does
    not read is never committed by its group, so waiting for that would never end."""
    document = json.loads((REPO / "docs" / "asyncapi" / f"{service}.json").read_text(encoding="utf-8"))
    return sorted({channel["address"] for channel in document["channels"].values()
                   if not channel["address"].startswith(f"{service}.")})
