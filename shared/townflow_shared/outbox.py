"""The transactional outbox (SPEC §6).

`enqueue` writes events in the caller's transaction, so a state change and the events it causes
commit together. `OutboxRelay` publishes committed rows in id order with acks=all and the
idempotent producer, then deletes them. A crash between publish and delete publishes a row
again; consumers' inboxes make that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace

from .events import Envelope
from .metrics import OUTBOX_BACKLOG, OUTBOX_ERRORS, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from .telemetry import current_trace_headers, tracer

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "townflow_outbox"
# Only one relay of a service publishes at a time, so rows leave in id order even with replicas.
_RELAY_LOCK = 72_410_002


def encode(event: Envelope) -> bytes:
    return event.model_dump_json().encode()


# Set inside a consumer's transaction: events wait here and are written in one statement.
_held: ContextVar[list[tuple[Envelope, dict[str, str]]] | None] = ContextVar("townflow_outbox_held", default=None)


async def enqueue(conn: asyncpg.Connection, *events: Envelope,
                  trace_headers: Sequence[dict[str, str]] | None = None) -> None:
    """Add events to the outbox inside the caller's open transaction, each carrying the current
    trace context, or its own from `trace_headers` (one per event) when it belongs to another."""
    if not events:
        return
    headers = list(trace_headers) if trace_headers is not None else [current_trace_headers()] * len(events)
    if len(headers) != len(events):
        raise ValueError("give one trace context per event")
    held = _held.get()
    if held is not None:
        held.extend(zip(events, headers, strict=True))
        return
    await _insert(conn, events, headers)


@asynccontextmanager
async def one_insert_per_transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold what the handlers of a consumer batch enqueue and write it in one statement before
    the commit, in the order it was enqueued (nothing is written if a handler fails)."""
    held: list[tuple[Envelope, dict[str, str]]] = []
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
    if held:
        await _insert(conn, [e for e, _ in held], [h for _, h in held])


async def _insert(conn: asyncpg.Connection, events: Sequence[Envelope], headers: Sequence[dict[str, str]]) -> None:
    # One statement whatever the number of events; the table's trigger NOTIFYs the relay at commit.
    await conn.execute(
        "INSERT INTO outbox (topic, key, payload, headers)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[])",
        [e.topic for e in events], [e.key for e in events], [encode(e) for e in events], list(headers),
    )


class OutboxRelay:
    def __init__(self, service: str, pool: asyncpg.Pool, producer: AIOKafkaProducer,
                 batch_size: int = 500, poll_seconds: float = 1.0) -> None:
        self.service = service
        self.pool = pool
        self.producer = producer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stats_due = 0.0

    async def run(self) -> None:
        listener: asyncpg.Connection | None = None
        try:
            while True:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                try:
                    published = await self.publish_batch()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    OUTBOX_ERRORS.labels(self.service).inc()
                    log.exception("outbox relay cycle failed; retrying")
                    await asyncio.sleep(min(self.poll_seconds * 2, 5))
                    continue
                if published < self.batch_size:
                    await self._wait()
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await self.pool.release(listener)

    async def _listen(self) -> asyncpg.Connection | None:
        """A connection held for LISTEN, so a commit wakes the relay at once; polling backs it up."""
        try:
            conn = await self.pool.acquire()
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except Exception:
            log.warning("outbox relay could not LISTEN; polling every %ss", self.poll_seconds)
            return None
        return conn

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    async def publish_batch(self) -> int:
        """Take the oldest rows, publish them, and let them go only if every send is acknowledged
        (acks=all): a failed send rolls the delete back and the rows stay for the next cycle."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK):
                return 0
            rows = sorted(await conn.fetch(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1)"
                " RETURNING id, topic, key, payload, headers", self.batch_size,
            ), key=lambda r: r["id"])
            if rows:
                futures = [await self._send(row) for row in rows]
                await asyncio.gather(*futures)
                for row in rows:
                    OUTBOX_PUBLISHED.labels(self.service, row["topic"]).inc()
            if time.monotonic() >= self._stats_due:  # a scan of the table: once a second is enough
                self._stats_due = time.monotonic() + 1.0
                stats = await conn.fetchrow("SELECT count(*) AS n, min(created_at) AS oldest FROM outbox")
                OUTBOX_BACKLOG.labels(self.service).set(stats["n"])
                oldest = stats["oldest"]
                OUTBOX_OLDEST_AGE.labels(self.service).set(
                    (datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
        return len(rows)

    async def _send(self, row: asyncpg.Record) -> asyncio.Future[object]:
        parent = propagate.extract(row["headers"] or {})
        with tracer().start_as_current_span(
            f"{row['topic']} publish", context=parent, kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": row["topic"],
                        "messaging.kafka.message.key": row["key"], "townflow.outbox_id": row["id"]},
        ):
            carrier = current_trace_headers()
        headers = [(k, v.encode()) for k, v in carrier.items()]
        headers.append(("content-type", b"application/json"))
        return await self.producer.send(
            row["topic"], value=bytes(row["payload"]), key=row["key"].encode(), headers=headers,
        )
