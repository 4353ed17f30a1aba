"""The transactional outbox (SPEC §6).

`enqueue` writes events in the caller's transaction, so a state change and the events it causes
commit together. `OutboxRelay` publishes committed rows in id order with acks=all and the
idempotent producer, then deletes them. A crash between publish and delete publishes a row
again; consumers' inboxes make that harmless.

A row the broker refuses for good (SPEC §6.1: too large, topic not authorised, invalid topic) is
moved to `outbox_parked` with the reason, in the transaction that deletes it, and the rows behind
it go on; every other failure keeps the row (and the rows behind it) for the next cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)
from opentelemetry import propagate, trace

from .cloudevents import cloudevent_headers, is_cloudevent_header
from .db import OUTAGES, RELAY_LOCK
from .events import Envelope
from .metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_ERRORS,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PARKED,
    OUTBOX_PARKED_ROWS,
    OUTBOX_PUBLISHED,
)
from .telemetry import current_trace_headers, tracer

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "townflow_outbox"
# Back-off after a failed relay cycle: twice the poll, but at most this, so a broker back from an
# outage is used again within seconds while a failing one is not hammered.
RETRY_MAX_SECONDS = 5.0


_TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


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


async def enqueue_raw(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, bytes, dict[str, str]]]) -> None:
    """Add (topic, key, value, headers) rows that are not our events, e.g. dead letters: sent as
    they are, their headers beside the relay's trace context (see `_send`)."""
    if rows:
        await _insert_rows(conn, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                           [r[3] for r in rows])


async def _insert(conn: asyncpg.Connection, events: Sequence[Envelope], headers: Sequence[dict[str, str]]) -> None:
    await _insert_rows(conn, [e.topic for e in events], [e.key for e in events], [encode(e) for e in events],
                       list(headers))


async def _insert_rows(conn: asyncpg.Connection, topics: list[str], keys: list[str], payloads: list[bytes],
                       headers: list[dict[str, str]]) -> None:
    """The one INSERT into the outbox: one statement whatever the number of rows; the table's
    trigger NOTIFYs the relay at commit."""
    await conn.execute(
        "INSERT INTO outbox (topic, key, payload, headers)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[])",
        topics, keys, payloads, headers)


# Refusals that sending the same bytes again can never turn into a success: the row is parked.
# Everything else (broker away, timeouts, not leader, not enough replicas, a missing topic that
# may yet be created) is passing and retried. Topic authorisation counts as for good (SPEC §6.1):
# an operator fixes the ACL, then re-publishes the parked rows.
REFUSED_FOR_GOOD: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,      # larger than max_request_size (client) or message.max.bytes (broker)
    RecordTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    InvalidTopicError,
)
# Kafka's rule for topic names; aiokafka would wait for metadata of an illegal one and time out
# as if it were merely missing, so the relay checks it itself.
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def refused_for_good(error: BaseException) -> bool:
    return isinstance(error, REFUSED_FOR_GOOD)


def refusal_reason(topic: str, error: BaseException | None) -> str | None:
    """Why a row can never be published, or None when it may yet be."""
    if not _LEGAL_TOPIC.fullmatch(topic) or topic in (".", ".."):
        return f"InvalidTopicError: {topic!r} is not a legal Kafka topic name"
    if error is not None and refused_for_good(error):
        return f"{type(error).__name__}: {error}"[:1000]
    return None


@dataclass
class RelayCycle:
    """What one cycle did with the rows it took: published, parked (with the reason), or held
    back for the next cycle by a passing failure (`error`, the first one)."""

    published: list[asyncpg.Record] = field(default_factory=list)
    parked: list[tuple[asyncpg.Record, str]] = field(default_factory=list)
    error: BaseException | None = None
    broker_failed: bool = False  # a send failed at the broker: the producer's sequence is out of step

    @property
    def done_ids(self) -> list[int]:
        return [r["id"] for r in self.published] + [r["id"] for r, _ in self.parked]


class RowsHeldBack(Exception):
    """Some rows failed in a passing way and wait for the next cycle; the others are done."""


class OutboxRelay:
    def __init__(self, service: str, pool: asyncpg.Pool, producer: AIOKafkaProducer,
                 batch_size: int = 500, poll_seconds: float = 1.0, *,
                 producer_factory: Callable[[], AIOKafkaProducer] | None = None) -> None:
        self.service = service
        self.pool = pool
        self.producer = producer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        # Makes a fresh producer after the broker failed a send (see `_renew_producer`).
        self.producer_factory = producer_factory
        self._own_producer = False  # the given producer belongs to the caller, who stops it
        self._wake = asyncio.Event()

    async def run(self) -> None:
        listener: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    if not _usable(listener):
                        listener = await self._listen()
                    published = await self.publish_batch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    OUTBOX_ERRORS.labels(self.service).inc()
                    if isinstance(exc, (*OUTAGES, RowsHeldBack)):  # waited out, nothing to debug
                        log.warning("outbox relay cycle failed; retrying: %s: %s", type(exc).__name__, exc)
                    else:
                        log.exception("outbox relay cycle failed; retrying")
                    await asyncio.sleep(min(self.poll_seconds * 2, RETRY_MAX_SECONDS))
                    continue
                if published < self.batch_size:
                    await self._wait()
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await self.pool.release(listener)
            if self._own_producer:
                with contextlib.suppress(Exception):
                    await self.producer.stop()

    async def _listen(self) -> asyncpg.Connection | None:
        """A connection held for LISTEN, so a commit wakes the relay at once; polling backs it up."""
        conn = await self.pool.acquire()
        try:
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except Exception as exc:  # e.g. read-only after a failover refuses LISTEN: try again next cycle
            log.warning("outbox relay could not LISTEN (%s); polling every %ss", type(exc).__name__, self.poll_seconds)
            await self.pool.release(conn)
            return None
        return conn

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    async def publish_batch(self) -> int:
        """Take the oldest rows, publish them, delete those acknowledged (acks=all) and move those
        refused for good to `outbox_parked`, in one transaction; return how many left `outbox`.

        A row that fails in a passing way stays, and so does every row of its cycle not sent yet,
        so nothing overtakes it; `RowsHeldBack` is raised after the commit so the caller backs off."""
        cycle: RelayCycle | None = None
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
                    rows = await conn.fetch(
                        "SELECT id, topic, key, payload, headers, created_at FROM outbox ORDER BY id LIMIT $1",
                        self.batch_size)
                    cycle = await self._publish(rows)
                    if cycle.done_ids:
                        await self._take_away(conn, cycle)
        if cycle is None:
            return 0
        for row in cycle.published:
            OUTBOX_PUBLISHED.labels(self.service, row["topic"]).inc()
        for row, reason in cycle.parked:
            OUTBOX_PARKED.labels(self.service, row["topic"]).inc()
            log.error("outbox row %s for %s refused for good and parked: %s", row["id"], row["topic"], reason)
        if cycle.broker_failed:
            await self._renew_producer()
        if cycle.error is not None:
            raise RowsHeldBack(f"{len(cycle.published)} published, {len(cycle.parked)} parked, "
                               "the rest wait for the next cycle") from cycle.error
        return len(cycle.done_ids)

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> RelayCycle:
        cycle = RelayCycle()
        sent: list[tuple[asyncpg.Record, asyncio.Future[object]]] = []
        for row in rows:
            reason = refusal_reason(row["topic"], None)
            if reason is not None:
                cycle.parked.append((row, reason))
                continue
            try:
                sent.append((row, await self._send(row)))
            except Exception as error:  # refused before it left: no sequence number was spent
                reason = refusal_reason(row["topic"], error)
                if reason is None:
                    cycle.error = error
                    break  # the rows behind it must not overtake it
                cycle.parked.append((row, reason))
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        for (row, _), result in zip(sent, results, strict=True):
            if not isinstance(result, BaseException):
                cycle.published.append(row)
                continue
            # The idempotent producer spent a sequence number on the failed batch, so every later
            # send to its partition fails (OutOfOrderSequenceNumber) until the producer is renewed.
            # Those rows are passing failures and stay, in order, behind nothing but this one.
            cycle.broker_failed = True
            reason = refusal_reason(row["topic"], result)
            if reason is not None:
                cycle.parked.append((row, reason))
            elif cycle.error is None:
                cycle.error = result
        cycle.parked.sort(key=lambda parked: parked[0]["id"])
        return cycle

    async def _take_away(self, conn: asyncpg.Connection, cycle: RelayCycle) -> None:
        # One round trip: delete what is done and keep a copy of the parked rows with the reason.
        await conn.execute(
            "WITH gone AS (DELETE FROM outbox WHERE id = ANY($1::bigint[]) RETURNING *)"
            " INSERT INTO outbox_parked (id, topic, key, payload, headers, created_at, reason)"
            " SELECT gone.id, gone.topic, gone.key, gone.payload, gone.headers, gone.created_at, why.reason"
            " FROM gone JOIN unnest($2::bigint[], $3::text[]) AS why(id, reason) ON why.id = gone.id",
            cycle.done_ids, [r["id"] for r, _ in cycle.parked], [reason for _, reason in cycle.parked],
        )

    async def _renew_producer(self) -> None:
        """After the broker failed a send, the idempotent producer's sequence numbers for that
        partition are ahead of the broker's (aiokafka does not take them back), so later sends to
        it would fail for ever. A new producer (a new producer id) starts its sequences afresh."""
        if self.producer_factory is None:
            log.error("the broker failed a send: later rows to its partition wait until the service "
                      "restarts (the relay was given no producer factory to renew its producer)")
            return
        fresh = self.producer_factory()
        try:
            await fresh.start()
        except Exception:
            with contextlib.suppress(Exception):
                await fresh.stop()
            log.warning("could not start a fresh outbox producer; will try again after the next failure")
            return
        old, was_own = self.producer, self._own_producer
        self.producer, self._own_producer = fresh, True
        log.warning("outbox producer renewed after a send the broker failed")
        if was_own:
            with contextlib.suppress(Exception):
                await old.stop()

    async def _send(self, row: asyncpg.Record) -> asyncio.Future[object]:
        parent = propagate.extract(row["headers"] or {})
        with tracer().start_as_current_span(
            f"{row['topic']} publish", context=parent, kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": row["topic"],
                        "messaging.kafka.message.key": row["key"], "townflow.outbox_id": row["id"]},
        ):
            carrier = current_trace_headers()
        payload = bytes(row["payload"])
        headers = [(k, v.encode()) for k, v in message_headers(row["headers"] or {}, payload, carrier,
                                                               outbox_id=row["id"]).items()]
        return await self.producer.send(
            row["topic"], value=payload, key=row["key"].encode() or None, headers=headers,
        )


def message_headers(stored: dict[str, str], payload: bytes, trace: dict[str, str],
                    outbox_id: int | None = None) -> dict[str, str]:
    """Every header of an outgoing message, built here and nowhere else (SPEC §3.1, §11).

    `x-outbox-id` names the outbox row a message was sent from. The relay delivers at least once
    (a crash between the broker's ack and the row's delete sends the row again): two messages of
    one service with the same row id are that redelivery, two rows would be a second write. An
    event's readers dedupe by its id anyway; for a dead letter this is the way to tell.

    The stored trace context is replaced by the publish span's (`trace`); other stored headers (a
    dead letter's x-dlq-*, its original content-type) travel as they are, except `ce_*` ones: the
    CloudEvents attributes are always derived afresh from the value, so a dead letter's describe
    the envelope it holds (or there are none) whatever the poison's own headers claimed."""
    kept = {k: v for k, v in stored.items() if k not in _TRACE_HEADERS and not is_cloudevent_header(k)}
    row = {} if outbox_id is None else {"x-outbox-id": str(outbox_id)}
    return {"content-type": "application/json"} | kept | cloudevent_headers(payload) | trace | row


def _usable(conn: asyncpg.Connection | None) -> bool:
    """Whether a connection taken from the pool is still ours: when the server ends it (a restart,
    a failover), asyncpg gives it back to the pool by itself and every call on it raises."""
    try:
        return conn is not None and not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


async def refresh_outbox_gauges(pool: asyncpg.Pool, service: str) -> None:
    """Backlog, age and parked rows: group-wide, so set by the one replica that reports for the
    service (townflow_shared.group_gauges), whichever replica holds the relay lock."""
    stats = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM outbox) AS n, (SELECT min(created_at) FROM outbox) AS oldest,"
        " (SELECT count(*) FROM outbox_parked) AS parked")
    OUTBOX_BACKLOG.labels(service).set(stats["n"])
    oldest = stats["oldest"]
    OUTBOX_OLDEST_AGE.labels(service).set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
    OUTBOX_PARKED_ROWS.labels(service).set(stats["parked"])
