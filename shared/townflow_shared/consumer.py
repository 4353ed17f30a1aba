"""Consumed records handled a batch at a time, each event exactly once (SPEC §6, §6.1).

A batch is what one fetch returned (up to `consume_batch_max` records). Its records are parsed
one by one; those that never will parse are poison. The valid events run in ONE PostgreSQL
transaction with ONE inbox insert and ONE outbox insert of every event they publish. If a handler
refuses an event by its own rules (`Rejected`), the transaction is rolled back and the batch runs
again without that event, which joins the poison; nothing else is ever dead-lettered. Poison is
recorded in the inbox and handed to the dead letters in that same transaction, so it is
dead-lettered exactly once, however often it is delivered. Any other error leaves `handle` for
the caller to wait out and retry (the offsets are not moved); the inbox makes the redelivery
harmless.

The live service and appraisal's rebuild both consume through this class; they differ only in
where poison goes (`DeadLetters`).
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from aiokafka import ConsumerRecord
from opentelemetry import propagate, trace
from pydantic import TypeAdapter

from .dlq import UNPARSABLE, Rejected, TopicMismatch, dead_letter_headers, describe
from .events import Envelope, dlq_topic
from .metrics import BATCH_SIZE, DLQ_MESSAGES, DUPLICATES_SKIPPED, EVENTS_CONSUMED, HANDLER_DURATION
from .outbox import enqueue_raw, one_insert_per_transaction
from .telemetry import tracer

log = logging.getLogger(__name__)
Handler = Callable[[asyncpg.Connection, Any, Any], Awaitable[None]]
# Records that never parse have no event id: the inbox knows them by where they were.
_UNPARSABLE_IDS = uuid.UUID("6c1f7a8e-0b1d-4c55-9c3e-5d2f9e1a7b40")


@dataclass(frozen=True)
class Registered:
    name: str        # the inbox's handler name: `<service>.<function>`
    handler: Handler


def policy(name: str, flow: Callable[[Any, Any, Any], Awaitable[object]],
           unit_of_work: Callable[[asyncpg.Connection], object]) -> Handler:
    """The event handler that runs `flow(deps, unit_of_work(conn), event)` on the consumer's
    transaction, which already holds the event's inbox row, so what the flow writes commits with it.
    `name` is what the inbox knows its handled events by (`<service>.<name>`): renaming it would
    handle every event again."""

    async def handler(conn: asyncpg.Connection, event: Any, deps: Any) -> None:
        await flow(deps, unit_of_work(conn), event)

    handler.__name__ = handler.__qualname__ = name
    return handler


@dataclass
class Parsed:
    record: ConsumerRecord
    event: Envelope
    registered: Registered


@dataclass(frozen=True)
class Poison:
    record: ConsumerRecord
    error: BaseException
    inbox_key: tuple[str, uuid.UUID]  # (handler, event id): recorded so it is dead-lettered once


@dataclass(frozen=True)
class ParsedBatch:
    parsed: list[Parsed]
    poison: list[Poison]


class DeadLetters(Protocol):
    """Where poison goes, inside the transaction that records it in the inbox."""

    async def __call__(self, conn: asyncpg.Connection, poison: Sequence[Poison]) -> None: ...


class _RejectedEvent(Exception):
    """A handler's `Rejected`, with the event it refused."""

    def __init__(self, parsed: Parsed, cause: Rejected) -> None:
        super().__init__(str(cause))
        self.parsed = parsed
        self.cause = cause


class BatchConsumer:
    def __init__(self, service: str, handlers: dict[type[Envelope], Registered], adapter: TypeAdapter[Any],
                 pool_of: Callable[[], asyncpg.Pool], dead_letters: DeadLetters, runtime: Any,
                 per_event_spans: bool = True) -> None:
        self.service = service
        # A replay traces nothing and publishes nothing: a span and a histogram per event were a
        # fifth of a rebuild's time (issue #16). The live consumer keeps both.
        self.per_event_spans = per_event_spans
        self.by_type = {t.model_fields["type"].default: r for t, r in handlers.items()}
        self.adapter = adapter
        self.pool_of = pool_of
        self.dead_letters = dead_letters
        self.runtime = runtime

    async def handle(self, records: Sequence[ConsumerRecord]) -> int:
        """Handle a batch; the number of poison records dead-lettered now. Raises whatever is not
        poison (an outage): nothing of the batch is then lost, and retrying it is harmless."""
        return await self.handle_parsed(self.parse(records))

    def parse(self, records: Sequence[ConsumerRecord]) -> ParsedBatch:
        """A batch's records parsed, in arrival order, and its poison: no I/O, so a replay parses
        the next fetch while the database applies the one before (rebuild.py)."""
        BATCH_SIZE.labels(self.service).observe(len(records))
        parsed: list[Parsed] = []
        poison: list[Poison] = []
        for record in in_arrival_order(records):
            try:
                parsed.append(self._parse(record))
            except UNPARSABLE as exc:  # not JSON, not the schema, wrong topic
                where = f"{record.topic}/{record.partition}/{record.offset}"
                poison.append(Poison(record, exc, (f"{self.service}.unparsable", uuid.uuid5(_UNPARSABLE_IDS, where))))
        return ParsedBatch(parsed, poison)

    async def handle_parsed(self, batch: ParsedBatch) -> int:
        """`handle` of a parsed batch (which is not changed: retrying it after an outage is harmless)."""
        parsed, poison = list(batch.parsed), list(batch.poison)
        while True:
            try:
                return await self._in_one_transaction(parsed, poison)
            except _RejectedEvent as rejected:  # the batch again without it
                refused = rejected.parsed
                log.warning("%s refused an event: %s", refused.registered.name, describe(rejected.cause))
                parsed = [p for p in parsed if p is not refused]
                poison.append(Poison(refused.record, rejected.cause, (refused.registered.name, refused.event.id)))

    def _parse(self, record: ConsumerRecord) -> Parsed:
        event: Envelope = self.adapter.validate_json(record.value or b"")
        if record.topic != event.topic:
            raise TopicMismatch(f"{event.type} does not belong on {record.topic}")
        return Parsed(record, event, self.by_type[event.type])

    async def _in_one_transaction(self, batch: list[Parsed], poison: list[Poison]) -> int:
        if not batch and not poison:
            return 0
        keys = [(p.registered.name, p.event.id, p.record.topic) for p in batch]
        keys += [(*x.inbox_key, x.record.topic) for x in poison]
        async with self.pool_of().acquire() as conn, conn.transaction():
            # Only the keys handled before come back (almost always none): returning every key
            # recorded was a few thousand rows to decode per batch of a replay (issue #16).
            handled_before = {(r["handler"], r["event_id"]) for r in await conn.fetch(
                "WITH batch AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[]) AS k(handler, event_id, topic)),"
                " recorded AS (INSERT INTO inbox (handler, event_id, topic) SELECT * FROM batch"
                "  ON CONFLICT DO NOTHING RETURNING handler, event_id)"
                " SELECT handler, event_id FROM batch EXCEPT SELECT handler, event_id FROM recorded",
                [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            )}
            taken: set[tuple[str, uuid.UUID]] = set()  # this batch's: a key twice in it counts once

            def fresh(key: tuple[str, uuid.UUID]) -> bool:
                if key in handled_before or key in taken:
                    return False
                taken.add(key)
                return True

            outcomes = []
            async with self._around_handlers(conn):
                for p in batch:
                    if not fresh((p.registered.name, p.event.id)):  # handled before, or twice in this very batch
                        outcomes.append((p.record, "duplicate"))
                        continue
                    if self.per_event_spans:
                        await self._run(conn, p)
                    else:
                        await self._call(p, conn)
                    outcomes.append((p.record, "handled"))
            dead = [x for x in poison if fresh(x.inbox_key)]  # new to the inbox: dead-lettered now, and only now
            if dead:
                await self.dead_letters(conn, dead)
        outcomes += [(x.record, "dead_lettered" if x in dead else "duplicate") for x in poison]
        for (topic, outcome), count in Counter((r.topic, o) for r, o in outcomes).items():  # counted once committed
            EVENTS_CONSUMED.labels(self.service, topic, outcome).inc(count)
            if outcome == "duplicate":
                DUPLICATES_SKIPPED.labels(self.service, topic).inc(count)
        for x in dead:
            DLQ_MESSAGES.labels(self.service, x.record.topic).inc()
            log.error("dead-lettered %s[%s]@%s: %s", x.record.topic, x.record.partition, x.record.offset,
                      describe(x.error))
        return len(dead)

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
            await self._call(p, conn)
        HANDLER_DURATION.labels(self.service, record.topic).observe(time.perf_counter() - started)


    async def _call(self, p: Parsed, conn: asyncpg.Connection) -> None:
        try:
            await p.registered.handler(conn, p.event, self.runtime.deps)
        except Rejected as exc:
            raise _RejectedEvent(p, exc) from exc


class OutboxDeadLetters:
    """Poison to `<topic>.dlq` through the outbox: unchanged, its headers beside ours."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def __call__(self, conn: asyncpg.Connection, poison: Sequence[Poison]) -> None:
        await enqueue_raw(conn, [
            # The key as text (ours are ids); a key that is not UTF-8 keeps its readable parts.
            (dlq_topic(x.record.topic), (x.record.key or b"").decode(errors="replace"), x.record.value or b"",
             dead_letter_headers(x.record, self.service, x.error))
            for x in poison])


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
