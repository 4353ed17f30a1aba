"""A county department's consumer of Townflow's topics, to copy and adapt: it rebuilds one figure,
a module's monthly resolution rate (有效办结率) in one town, from the topics alone, reading every
message with the standard CloudEvents SDK (Kafka binding, binary content mode).

    pip install -r requirements.txt
    python resolution_rate.py --bootstrap kafka:9092 --town 321003104 --module org --period 2032-05

It reads the three topics the figure needs from the beginning up to their ends as they stand when
it starts, and prints one JSON line: {"town_code", "module", "period", "dispatched", "resolved",
"resolution_rate"}. Nothing of Townflow's own code is needed.

The rule it applies is Townflow's (SPEC §5.5), restated with what the events carry:
- a task counts in the month (town time) of its `dispatched_at`, for its `lead_module`;
- a task a later dispatch names in `redispatch_of` no longer counts: a returned-and-redispatched
  matter counts once, as its final task;
- a task is resolved when its last completion (by `completed_at`) was `on_time` (by resolve_by)
  and no failed closure check (`dispatch.task.verified`, `passed: false`) came after it — counted
  as: more completions than failed checks;
- resolution rate = resolved ÷ dispatched; null when nothing was dispatched, never 0.

Delivery is at least once: events are deduplicated on their CloudEvents id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event
from cloudevents.core.exceptions import BaseCloudEventException

DISPATCHED = "dispatch.task.dispatched.v1"
COMPLETED = "dispatch.task.completed.v1"
VERIFIED = "dispatch.task.verified.v1"


@dataclass
class Task:
    module: str | None = None
    period: str | None = None
    completions: list[tuple[datetime, bool]] = field(default_factory=list)  # (completed_at, on_time)
    failed_checks: int = 0

    @property
    def resolved(self) -> bool:
        return len(self.completions) > self.failed_checks and max(self.completions)[1]


@dataclass
class ResolutionRate:
    """The figure, kept up to date one event at a time."""

    town_code: str
    module: str
    period: str
    tz: ZoneInfo
    tasks: dict[str, Task] = field(default_factory=dict)
    superseded: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)

    def apply(self, event: BaseCloudEvent) -> None:
        if event.get_extension("towncode") != self.town_code or event.get_id() in self.seen:
            return
        self.seen.add(event.get_id())
        envelope: Any = event.get_data()  # the whole envelope; its `data` holds the event's fields
        data = envelope["data"]
        task = self.tasks.setdefault(data["task_id"], Task())
        if event.get_type() == "dispatch.task.dispatched":
            task.module = data["lead_module"]
            task.period = datetime.fromisoformat(data["dispatched_at"]).astimezone(self.tz).strftime("%Y-%m")
            if data.get("redispatch_of"):
                self.superseded.add(data["redispatch_of"])
        elif event.get_type() == "dispatch.task.completed":
            task.completions.append((datetime.fromisoformat(data["completed_at"]), bool(data["on_time"])))
        elif event.get_type() == "dispatch.task.verified" and not data["passed"]:
            task.failed_checks += 1

    def figure(self) -> dict[str, Any]:
        counted = [t for task_id, t in self.tasks.items()
                   if t.module == self.module and t.period == self.period and task_id not in self.superseded]
        resolved = sum(t.resolved for t in counted)
        return {"town_code": self.town_code, "module": self.module, "period": self.period,
                "dispatched": len(counted), "resolved": resolved,
                "resolution_rate": resolved / len(counted) if counted else None}


def as_cloudevent(record: Any) -> BaseCloudEvent | None:
    """Kafka binding, auto mode: the `ce_*` headers make it a binary-mode CloudEvent. A message
    that is no CloudEvent (written to the topic by some other producer, without the headers, or
    malformed) is None: a subscriber skips it rather than stop on it."""
    try:
        return from_kafka_event(KafkaMessage(headers=dict(record.headers or ()), key=record.key, value=record.value))
    except (BaseCloudEventException, ValueError) as error:
        print(f"skipped {record.topic}[{record.partition}]@{record.offset}: not a CloudEvent ({error})",
              file=sys.stderr)
        return None


async def partitions_of(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    missing = [t["topic"] for t in described if t.get("error_code", 0) != 0]
    if missing:
        raise RuntimeError(f"no topic {missing} on {bootstrap}")
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def read_to_the_end(bootstrap: str, topics: list[str], rate: ResolutionRate, timeout: float) -> None:
    """Every message of `topics` from the beginning up to the end offsets as they are now. A live
    subscriber would instead join its own consumer group and keep reading."""
    partitions = await partitions_of(bootstrap, topics)
    # read_committed: Townflow publishes in Kafka transactions, and a transaction aborted when a
    # paused publisher was fenced holds messages no reader should count.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"did not reach the end of {topics} within {timeout}s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if (event := as_cloudevent(record)) is not None:
                        rate.apply(event)
    finally:
        await consumer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    parser.add_argument("--town", required=True, help="the town's code, e.g. 321003104")
    parser.add_argument("--module", required=True, help="the module's code, e.g. org")
    parser.add_argument("--period", required=True, help="the month, YYYY-MM")
    parser.add_argument("--tz", default="Asia/Shanghai", help="the town's time zone (months are town time)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to reach the topics' ends")
    args = parser.parse_args()
    rate = ResolutionRate(args.town, args.module, args.period, ZoneInfo(args.tz))
    asyncio.run(read_to_the_end(args.bootstrap, [DISPATCHED, COMPLETED, VERIFIED], rate, args.timeout))
    print(json.dumps(rate.figure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
