"""The yardstick: the same number of Kafka hops as a matter takes from filing to its first score
(intake → dispatch → appraisal → subscriber), with bare aiokafka relays and no database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

HOPS = 3


async def _relay(bootstrap: str, source: str, target: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            futures = [await producer.send(target, value=r.value, key=r.key)
                       for records in batch.values() for r in records]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()  # the same at-least-once discipline: commit after the effect
    finally:
        await consumer.stop()
        await producer.stop()


async def run_bare_chain(bootstrap: str, count: int, payload_size: int = 700) -> dict[str, float]:
    """Push `count` messages through HOPS hops as fast as they go; throughput and latency."""
    run = uuid.uuid4().hex[:8]
    topics = [f"bench.bare.{run}.{i}" for i in range(HOPS + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in topics])
    await admin.close()
    stop = asyncio.Event()
    relays = [asyncio.create_task(_relay(bootstrap, topics[i], topics[i + 1], stop)) for i in range(HOPS - 1)]
    sink = AIOKafkaConsumer(topics[HOPS - 1], bootstrap_servers=bootstrap, group_id=f"bare-sink-{run}",
                            auto_offset_reset="earliest")
    await sink.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    padding = "x" * payload_size
    latencies: list[float] = []
    started = time.monotonic()
    for n in range(count):
        body = json.dumps({"n": n, "sent": time.monotonic(), "pad": padding}).encode()
        await producer.send(topics[0], value=body, key=str(n).encode())
    await producer.flush()
    received = 0
    deadline = time.monotonic() + 300
    while received < count and time.monotonic() < deadline:
        batch = await sink.getmany(timeout_ms=200)
        now = time.monotonic()
        for records in batch.values():
            for record in records:
                latencies.append(1000 * (now - json.loads(record.value)["sent"]))
                received += 1
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*relays, return_exceptions=True)
    await sink.stop()
    await producer.stop()
    latencies.sort()
    return {"messages": received, "hops": HOPS, "throughput": round(received / elapsed, 1),
            "latency_ms_p50": round(latencies[len(latencies) // 2], 1) if latencies else 0.0,
            "latency_ms_p99": round(latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else 0.0}
