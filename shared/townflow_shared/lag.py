"""Consumer lag per partition, measured from the broker: the messages after what this service's
consumer group has committed. Seen from outside the consumer, so a stuck handler shows too.

The relays publish in Kafka transactions, and each transaction leaves a marker in the log that
takes an offset but is no message (and a fenced relay's aborted messages are no messages to a
reader either). So the end offset minus the committed one can stay above zero with nothing left
to handle; where that difference is small, the messages are counted by reading them.

Each replica reports only the partitions assigned to it, so summing the series of every replica
gives the group's true lag whatever the replica count (two replicas each reporting the whole
group would read double)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from .kafka import client_security
from .metrics import gauge
from .settings import ServiceSettings

log = logging.getLogger(__name__)
CONSUMER_LAG = gauge("townflow_consumer_lag",
                     "Messages not yet handled, by topic and partition, on the replica the partition is assigned to",
                     "service", "topic", "partition")


# A partition this far behind or less is read to count its messages; further behind, the offsets'
# difference stands (a marker per relay transaction, each holding one or more messages).
COUNTED_BELOW = 64


async def unhandled(consumer: AIOKafkaConsumer, committed: dict[TopicPartition, int],
                    partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
    """How many messages of each partition lie after its committed offset. `consumer` reads
    committed (isolation_level="read_committed") and belongs to no group: it is assigned here."""
    ends = await consumer.end_offsets(list(partitions))
    lag = {tp: max(ends[tp] - committed.get(tp, 0), 0) for tp in partitions}
    near = {tp for tp, n in lag.items() if 0 < n <= COUNTED_BELOW}
    if not near:
        return lag
    consumer.assign(list(near))
    for tp in near:
        consumer.seek(tp, committed.get(tp, 0))
        lag[tp] = 0
    waiting = set(near)
    while waiting:
        for records in (await consumer.getmany(*waiting, timeout_ms=500)).values():
            for record in records:
                if record.offset < ends[TopicPartition(record.topic, record.partition)]:
                    lag[TopicPartition(record.topic, record.partition)] += 1
        waiting = {tp for tp in waiting if await consumer.position(tp) < ends[tp]}
    # The partitions stay assigned (the next `assign` replaces them): aiokafka 0.14's `stop()` never
    # returns after `unsubscribe()` (or `assign([])`) once positions moved past transaction markers
    # alone, its fetcher waiting for an assignment through its own cancellation.
    return lag


async def group_lag(bootstrap: str, group: str, partitions: Collection[TopicPartition],
                    **security: object) -> dict[TopicPartition, int]:
    """The messages `group` has not handled yet, by partition (a partition it never committed
    counts whole): what harnesses wait on to call the consumers caught up."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, **security)
    await admin.start()
    await consumer.start()
    try:
        return await unhandled(consumer, await _committed(admin, group, partitions), partitions)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


async def _committed(admin: AIOKafkaAdminClient, group: str,
                     partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
    offsets = await admin.list_consumer_group_offsets(group, partitions=list(partitions))
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def measure_lag_forever(settings: ServiceSettings, group: str, interval: float,
                              assigned: Callable[[], Collection[TopicPartition]]) -> None:
    security = client_security(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, **security)
    await admin.start()
    await consumer.start()
    reported: set[TopicPartition] = set()
    try:
        while True:
            try:
                partitions = set(assigned())
                lag = await unhandled(consumer, await _committed(admin, group, partitions),
                                      partitions) if partitions else {}
                for tp in reported - partitions:  # moved to another replica: it reports them now
                    with contextlib.suppress(KeyError):
                        CONSUMER_LAG.remove(settings.service_name, tp.topic, str(tp.partition))
                for tp, n in lag.items():
                    CONSUMER_LAG.labels(settings.service_name, tp.topic, str(tp.partition)).set(n)
                reported = partitions
            except Exception as exc:  # the broker may be restarting; try again next round
                log.warning("could not measure consumer lag: %s", exc)
            await asyncio.sleep(interval)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()
