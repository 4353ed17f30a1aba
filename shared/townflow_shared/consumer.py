"""Consumed records handled a batch at a time, each event exactly once.

A batch is what one fetch returned (up to `consume_batch_max` records). Its events are validated
one by one; the valid ones run in ONE PostgreSQL transaction with ONE inbox insert and ONE
outbox insert of every event they publish, so a batch costs three round trips plus what the
handlers themselves read and write, instead of five per event. If a
handler fails, the transaction is rolled back and the batch is handled again event by event, so
only the failing event goes to its `.dlq` topic. A database or broker that is away rewinds the
batch; the inbox makes the redelivery harmless. Offsets are marked only after all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from opentelemetry import propagate, trace
from pydantic import TypeAdapter

from .dlq import TRANSIENT_ERRORS, dead_letter_headers, describe
from .events import Envelope, dlq_topic
from .inbox import handle_once
from .metrics import BATCH_SIZE, DLQ_MESSAGES, DUPLICATES_SKIPPED, EVENTS_CONSUMED, HANDLER_DURATION
from .outbox import one_insert_per_transaction
from .telemetry import tracer

log = logging.getLogger(__name__)
Handler = Callable[[asyncpg.Connection, Any, Any], Awaitable[None]]


class TopicMismatch(ValueError):
    """An event arrived on a topic other than its own."""


@dataclass(frozen=True)
class Registered:
    name: str        # the inbox's handler name: `<service>.<function>`
    handler: Handler


@dataclass
class Parsed:
    record: ConsumerRecord
    event: Envelope
    registered: Registered


class BatchConsumer:
    def __init__(self, service: str, handlers: dict[type[Envelope], Registered], adapter: TypeAdapter[Any],
                 pool_of: Callable[[], asyncpg.Pool], producer_of: Callable[[], AIOKafkaProducer],
                 runtime: Any) -> None:
        self.service = service
        self.by_type = {t.model_fields["type"].default: r for t, r in handlers.items()}
        self.adapter = adapter
        self.pool_of = pool_of
        self.producer_of = producer_of
        self.runtime = runtime

    async def handle(self, records: Sequence[ConsumerRecord]) -> bool:
        """Handle a batch; False when a passing error means it must be delivered again."""
        BATCH_SIZE.labels(self.service).observe(len(records))
        parsed: list[Parsed] = []
        bad: list[tuple[ConsumerRecord, BaseException]] = []
        for record in in_arrival_order(records):
            try:
                parsed.append(self._parse(record))
            except Exception as exc:  # not JSON, not the schema, wrong topic: a dead letter
                bad.append((record, exc))
        try:
            try:
                await self._in_one_transaction(parsed)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                log.warning("a handler failed in a batch of %d (%s); handling it event by event",
                            len(parsed), describe(exc))
                bad.extend(await self._one_by_one(parsed))
            # Dead letters after the effects commit: a rewound batch does not dead-letter twice.
            await self._dead_letter(bad)
        except TRANSIENT_ERRORS as exc:
            log.warning("transient error, the batch will be delivered again: %s", describe(exc))
            return False
        return True

    def _parse(self, record: ConsumerRecord) -> Parsed:
        event: Envelope = self.adapter.validate_json(record.value or b"")
        if record.topic != event.topic:
            raise TopicMismatch(f"{event.type} does not belong on {record.topic}")
        return Parsed(record, event, self.by_type[event.type])

    async def _in_one_transaction(self, batch: list[Parsed]) -> None:
        if not batch:
            return
        async with self.pool_of().acquire() as conn, conn.transaction():
            fresh = {(r["handler"], r["event_id"]) for r in await conn.fetch(
                "INSERT INTO inbox (handler, event_id, topic)"
                " SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[])"
                " ON CONFLICT DO NOTHING RETURNING handler, event_id",
                [p.registered.name for p in batch], [p.event.id for p in batch], [p.record.topic for p in batch],
            )}
            outcomes = []
            async with self._around_handlers(conn):
                for p in batch:
                    key = (p.registered.name, p.event.id)
                    if key not in fresh:  # handled before, or twice in this very batch
                        outcomes.append((p, "duplicate"))
                        continue
                    fresh.discard(key)
                    await self._run(conn, p)
                    outcomes.append((p, "handled"))
        for p, outcome in outcomes:  # counted once committed
            self._count(p, outcome)
            if outcome == "duplicate":
                DUPLICATES_SKIPPED.labels(self.service, p.record.topic).inc()

    async def _one_by_one(self, batch: list[Parsed]) -> list[tuple[ConsumerRecord, BaseException]]:
        failed: list[tuple[ConsumerRecord, BaseException]] = []
        for p in batch:
            try:
                fresh = await handle_once(self.pool_of(), self.service, p.registered.name, p.event,
                                          lambda conn, p=p: self._scoped(conn, p))  # type: ignore[misc]
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                failed.append((p.record, exc))
                continue
            self._count(p, "handled" if fresh else "duplicate")  # handle_once counts its duplicates
        return failed

    async def _scoped(self, conn: asyncpg.Connection, p: Parsed) -> None:
        async with self._around_handlers(conn):
            await self._run(conn, p)

    @contextlib.asynccontextmanager
    async def _around_handlers(self, conn: asyncpg.Connection) -> AsyncIterator[None]:
        """What every consumer transaction does around its handlers: the service's own scope
        (e.g. appraisal's scores once per batch) inside, the events all enqueued written at once."""
        async with one_insert_per_transaction(conn), self.runtime.transaction_scope(conn):
            yield

    async def _run(self, conn: asyncpg.Connection, p: Parsed) -> None:
        """The handler inside a consumer span that continues the trace the event carries."""
        record = p.record
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        started = time.perf_counter()
        with tracer().start_as_current_span(
            f"{record.topic} process", context=propagate.extract(headers), kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.operation": "process",
                        "messaging.destination.name": record.topic,
                        "messaging.kafka.destination.partition": record.partition,
                        "messaging.kafka.message.offset": record.offset,
                        "messaging.message.id": str(p.event.id), "townflow.handler": p.registered.name},
        ):
            await p.registered.handler(conn, p.event, self.runtime)
        HANDLER_DURATION.labels(self.service, record.topic).observe(time.perf_counter() - started)

    def _count(self, p: Parsed, outcome: str) -> None:
        EVENTS_CONSUMED.labels(self.service, p.record.topic, outcome).inc()

    async def _dead_letter(self, bad: list[tuple[ConsumerRecord, BaseException]]) -> None:
        if not bad:
            return
        producer = self.producer_of()
        sent = [await producer.send(dlq_topic(record.topic), value=record.value, key=record.key,
                                    headers=dead_letter_headers(record, self.service, exc))
                for record, exc in bad]
        await asyncio.gather(*sent)  # every dead letter acknowledged before the offsets move on
        for record, exc in bad:
            DLQ_MESSAGES.labels(self.service, record.topic).inc()
            EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
            log.error("dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, describe(exc))


def in_arrival_order(records: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
    """A fetch returns its records partition by partition; handle them in the order they were
    written instead (a task's dispatch before the inspection that covers it), never reordering
    one partition's records."""
    by_partition: dict[tuple[str, int], list[ConsumerRecord]] = {}
    for record in records:
        by_partition.setdefault((record.topic, record.partition), []).append(record)
    if len(by_partition) < 2:
        return list(records)
    return list(heapq.merge(*by_partition.values(), key=lambda r: r.timestamp))
