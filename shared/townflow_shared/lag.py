"""Consumer lag per partition, measured from the broker: the end offset minus what this service's
consumer group has committed. Seen from outside the consumer, so a stuck handler shows too.

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


async def measure_lag_forever(settings: ServiceSettings, group: str, interval: float,
                              assigned: Callable[[], Collection[TopicPartition]]) -> None:
    security = client_security(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **security)
    await admin.start()
    await consumer.start()
    reported: set[TopicPartition] = set()
    try:
        while True:
            try:
                partitions = set(assigned())
                lag = await _lag(admin, consumer, group, partitions) if partitions else {}
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


async def _lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str,
               partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
    committed = await admin.list_consumer_group_offsets(group, partitions=list(partitions))
    ends = await consumer.end_offsets(list(partitions))
    return {tp: max(ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0), 0)
            for tp in partitions}
