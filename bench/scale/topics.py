"""The history on the real topics: produced fast (batched, idempotent), consumer groups moved to
its end where a service must not act on it again, and waiting until every group has caught up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from appraisal import handlers as appraisal_handlers
from dispatch import handlers as dispatch_handlers
from intake import handlers as intake_handlers
from townflow_shared import lag
from townflow_shared.events import Envelope, TaskDispatched
from townflow_shared.kafka import topic_partitions
from townflow_shared.outbox import message_headers

# What each service consumes: the topics of its own handler table (what its runtime subscribes
# to), so a topic added for another consumer (notify's) is never waited on for the wrong group.
# Enforcement registers its one handler in app.py.
CONSUMED: dict[str, list[str]] = {
    "appraisal": [event.topic for event, _ in appraisal_handlers.HANDLERS],
    "intake": [event.topic for event, _ in intake_handlers.HANDLERS],
    "dispatch": [event.topic for event, _ in dispatch_handlers.HANDLERS],
    "enforcement": [TaskDispatched.topic],
}


class HistoryProducer:
    """One idempotent producer for the whole history: batches of up to 1 MiB, acks from all."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                         linger_ms=50, max_batch_size=1 << 20, max_request_size=4 << 20)
        self.produced = 0
        self.by_topic: Counter[str] = Counter()  # not every topic is appraisal's (the replay's)

    async def __aenter__(self) -> HistoryProducer:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def produce(self, events: Iterable[Envelope]) -> None:
        """Send in order and wait until the broker has every one: the loaders and the lag
        check after this rely on the events being there."""
        futures = []
        for e in events:
            value = e.model_dump_json().encode()
            # The headers the services' relays send (CloudEvents attributes among them), built
            # where they build theirs: a replay finds each event's town without parsing it.
            headers = [(k, v.encode()) for k, v in message_headers({}, value, {}).items()]
            futures.append(await self.producer.send(e.topic, value=value, key=e.key.encode(), headers=headers))
            self.by_topic[e.topic] += 1
        await asyncio.gather(*futures)
        self.produced += len(futures)


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, list(topics))
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def move_group_to_end(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Commit the end of every partition of `topics` for `group` (its service stopped): on start
    it reads only what comes after the history. How many messages it skipped."""
    ends = await end_offsets(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit({tp: offset for tp, offset in ends.items()})
    finally:
        await consumer.stop()
    return sum(ends.values())


async def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Messages on `topics` that `group` has not handled yet (a partition it never committed
    counts whole)."""
    return sum((await lag.group_lag(bootstrap, group, await topic_partitions(bootstrap, list(topics)))).values())


async def wait_for_groups(bootstrap: str, groups: Sequence[str], timeout: float,
                          report: Callable[[str], None] = print, every: float = 15.0) -> float:
    """Until every group's lag is zero; the seconds it took. Progress with an ETA from the rate
    the lag falls at."""
    started = time.monotonic()
    first: int | None = None
    last_report = 0.0
    while True:
        lags = {g: await group_lag(bootstrap, g, CONSUMED[g]) for g in groups}
        total = sum(lags.values())
        elapsed = time.monotonic() - started
        if total == 0:
            return elapsed
        first = total if first is None else first
        if elapsed > timeout:
            raise TimeoutError(f"consumer lag still {lags} after {timeout:.0f}s")
        if elapsed - last_report >= every:
            last_report = elapsed
            rate = (first - total) / elapsed if elapsed else 0.0
            eta = f", about {total / rate:.0f}s to go" if rate > 0 else ""
            report(f"  waiting for consumers: lag {lags}{eta}")
        await asyncio.sleep(1.0)  # polling the broker: there is nothing to be woken by
