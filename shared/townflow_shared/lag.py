"""Consumer lag per partition, measured from the broker: the end offset minus what this service's
consumer group has committed. Seen from outside the consumer, so a stuck handler shows too."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from .kafka import _producer_security_args, topic_partitions
from .metrics import REGISTRY
from .settings import ServiceSettings

log = logging.getLogger(__name__)
CONSUMER_LAG = Gauge("townflow_consumer_lag", "Messages not yet handled, by topic and partition",
                     ["service", "topic", "partition"], registry=REGISTRY)


async def measure_lag_forever(settings: ServiceSettings, group: str, topics: list[str], interval: float) -> None:
    security = _producer_security_args(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **security)
    await admin.start()
    await consumer.start()
    try:
        while True:
            try:
                partitions = await topic_partitions(settings.kafka_bootstrap, topics, **security)
                committed = await admin.list_consumer_group_offsets(group)
                ends = await consumer.end_offsets(partitions)
                for tp in partitions:
                    done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0
                    CONSUMER_LAG.labels(settings.service_name, tp.topic, str(tp.partition)).set(
                        max(ends[tp] - done, 0))
            except Exception as exc:  # the broker may be restarting; try again next round
                log.warning("could not measure consumer lag: %s", exc)
            await asyncio.sleep(interval)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()
