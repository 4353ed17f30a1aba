"""After a benchmark: scan every topic for a citizen's name, phone or id number (SPEC §6)."""

from __future__ import annotations

import re

from aiokafka import AIOKafkaConsumer

from townflow_shared.events import TOPICS, dlq_topic
from townflow_shared.kafka import topic_partitions

PHONE = re.compile(rb"(?<![0-9.])1[3-9][0-9]{9}(?![0-9])")
ID_NUMBER = re.compile(rb"(?<![0-9.])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
IDS = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,}")


async def scan_topics(bootstrap: str, names: list[str]) -> dict[str, int]:
    """How many messages were read, and how many hold something that looks like personal data."""
    topics = [*TOPICS, *(dlq_topic(t) for t in TOPICS)]
    partitions = await topic_partitions(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    scanned = flagged = 0
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    scanned += 1
                    value = IDS.sub(b"", record.value or b"")
                    text = value.decode(errors="replace")
                    if PHONE.search(value) or ID_NUMBER.search(value) or any(n in text for n in names):
                        flagged += 1
    finally:
        await consumer.stop()
    return {"messages_scanned": scanned, "messages_with_personal_data": flagged}
