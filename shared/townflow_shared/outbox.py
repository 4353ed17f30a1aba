"""The transactional outbox (SPEC §6).

`enqueue` writes events in the caller's transaction, so a state change and the events it causes
commit together. `OutboxRelay` publishes committed rows oldest id first (so each key's in the
order they were written), a batch in one Kafka
transaction (acks=all), then deletes them; one replica's relay at a time, fenced at the broker
when another takes over (see `OutboxRelay`). A row the broker has is not sent again, even after a
crash or a pause between publish and delete; consumers' inboxes dedupe by event id all the same.

A row the broker refuses for good (SPEC §6.1: too large, topic not authorised, invalid topic) is
moved to `outbox_parked` with the reason, in the transaction that deletes it, and the rows behind
it go on; every other failure keeps the row (and the rows behind it) for the next cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    ProducerFenced,
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


OUTBOX_ID_HEADER = "x-outbox-id"
OUTBOX_SERVICE_HEADER = "x-outbox-service"
# A broker away or slow: the relay waits it out like a database outage, without a stack trace.
# ProducerFenced: this relay was paused or cut off and another replica took the relay over; it
# stands by (its next cycle finds the lease taken).
KAFKA_PASSING: tuple[type[Exception], ...] = (KafkaConnectionError, KafkaTimeoutError, ProducerFenced)

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
    aborted: bool = False  # a send failed, so the Kafka transaction was aborted: nothing published

    @property
    def done_ids(self) -> list[int]:
        return [r["id"] for r in self.published] + [r["id"] for r, _ in self.parked]


class RowsHeldBack(Exception):
    """Some rows failed in a passing way and wait for the next cycle; the others are done."""


# (topics, records per partition) -> the outbox ids of this service found among the newest
# committed records of every partition of those topics (kafka.committed_outbox_ids).
PublishedIds = Callable[[list[str], int], Awaitable[set[int]]]

# Take or renew the lease in one statement, on the database's clock (a replica's own clock may be
# off): it is ours when we hold it or when its holder has not renewed it for `takeover` seconds.
# Returns the holder before, so a takeover is told from a renewal; no row: someone else holds it.
TAKE_LEASE = (
    "UPDATE outbox_relay_lease AS lease SET holder = $1, heartbeat_at = now()"
    " FROM (SELECT holder FROM outbox_relay_lease) AS before"
    " WHERE lease.holder = $1 OR lease.heartbeat_at < now() - make_interval(secs => $2)"
    " RETURNING before.holder")


def relay_holder() -> str:
    """This process's name in the lease: host and pid find it, the nonce tells a restarted
    process (a reused pid) from the one before."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxRelay:
    """Publishes a service's outbox. Among a service's replicas one relay holds the lease and
    publishes; the others stand by and take over when its heartbeat stops (issue #26).

    Why a lease with fencing rather than only a lock: a holder that stops without dying (a pause,
    a frozen VM, a cut connection) must neither stall its peers nor, when it resumes, publish what
    they published meanwhile. PostgreSQL ends its open transaction (`idle_in_transaction_session
    _timeout`, db.py), which frees the lock; the lease's heartbeat tells the others it is gone;
    and the transactional producer, whose transactional.id every replica of the service shares,
    fences it at the broker: a new holder's initialisation aborts the old holder's open Kafka
    transaction and refuses whatever it sends after it resumes. What the old holder had committed
    to Kafka but not yet deleted from the outbox is found on the topics' tails and deleted, not
    sent twice. The per-cycle advisory lock stays, so replicas of the release before this one,
    which know only the lock, still take turns with these during a rolling upgrade."""

    def __init__(self, service: str, pool: asyncpg.Pool, producer_factory: Callable[[], AIOKafkaProducer],
                 published_ids: PublishedIds, *, batch_size: int = 500, poll_seconds: float = 1.0,
                 takeover_seconds: float = 4.0, holder: str | None = None) -> None:
        self.service = service
        self.pool = pool
        # Makes the relay's transactional producer: at the first cycle, after a takeover and after
        # any failed cycle (a producer in doubt is never reused: see `_fence`).
        self.producer_factory = producer_factory
        self.published_ids = published_ids
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.takeover_seconds = takeover_seconds
        self.holder = holder or relay_holder()
        self.producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def run(self) -> None:
        listener: asyncpg.Connection | None = None
        try:
            while not self._stopping:
                try:
                    if not _usable(listener):
                        listener = await self._listen()
                    published = await self.publish_batch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    OUTBOX_ERRORS.labels(self.service).inc()
                    if isinstance(exc, (*OUTAGES, *KAFKA_PASSING, RowsHeldBack)):  # waited out, nothing to debug
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
            await self._drop_producer()

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

    def finish(self) -> None:
        """Stop after the cycle under way. Cancelled in the middle of one, the relay could see its
        Kafka commit land after its database transaction rolled back, and a replica of the
        release before, which does not look at the topics' tails, would send those rows again."""
        self._stopping = True
        self._wake.set()

    async def publish_batch(self) -> int:
        """Take the oldest rows, publish them in one Kafka transaction, delete those published and
        move those refused for good to `outbox_parked`, in one PostgreSQL transaction; return how
        many left `outbox` (0 when another replica holds the lease).

        A row that fails in a passing way stays, and so does every row of its cycle not sent yet,
        so nothing overtakes it; `RowsHeldBack` is raised after the commit so the caller backs off."""
        cycle: RelayCycle | None = None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
                    return 0
                before = await conn.fetchrow(TAKE_LEASE, self.holder, self.takeover_seconds)
                if before is None:
                    return 0
                if self.producer is None or before["holder"] != self.holder:
                    await self._fence(conn, took_over=before["holder"] != self.holder)
                rows = await conn.fetch(
                    "SELECT id, topic, key, payload, headers, created_at FROM outbox ORDER BY id LIMIT $1",
                    self.batch_size)
                cycle = await self._publish(rows)
                if cycle.done_ids:
                    await self._take_away(conn, cycle)
        except BaseException:
            # Rows may be on the broker and still in the outbox (the Kafka commit went through,
            # the delete did not): the next cycle starts over with a fresh producer and looks.
            await self._drop_producer()
            raise
        for row in cycle.published:
            OUTBOX_PUBLISHED.labels(self.service, row["topic"]).inc()
        for row, reason in cycle.parked:
            OUTBOX_PARKED.labels(self.service, row["topic"]).inc()
            log.error("outbox row %s for %s refused for good and parked: %s", row["id"], row["topic"], reason)
        if cycle.aborted or cycle.error is not None:
            # Its sequence numbers may be out of step with the broker's: a fresh producer (a new
            # epoch) sends what waits, and looks first for anything of this cycle that got through.
            await self._drop_producer()
        if cycle.error is not None:
            raise RowsHeldBack(f"{len(cycle.published)} published, {len(cycle.parked)} parked, "
                               "the rest wait for the next cycle") from cycle.error
        if cycle.aborted:
            self.wake()  # only refusals for good failed it: the other rows go again at once
        return len(cycle.done_ids)

    async def _fence(self, conn: asyncpg.Connection, *, took_over: bool) -> None:
        """Start a fresh transactional producer, then delete the rows already on their topics.

        Starting it fences every other producer with the service's transactional.id: the broker
        aborts their open transaction and refuses their later sends. Whatever a producer had
        committed before is on the topics' tails; those rows are deleted here instead of being
        published twice."""
        await self._drop_producer()
        producer = self.producer_factory()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self.producer = producer
        topics = [r["topic"] for r in await conn.fetch("SELECT DISTINCT topic FROM outbox")
                  if refusal_reason(r["topic"], None) is None]
        if topics:
            # The last holder's uncertain rows are one cycle's: at most a batch on each partition.
            on_topics = await self.published_ids(topics, self.batch_size)
            if on_topics:
                gone = await conn.fetch("DELETE FROM outbox WHERE id = ANY($1::bigint[]) RETURNING id",
                                        sorted(on_topics))
                if gone:
                    log.warning("outbox rows %s were already on their topics (published before a failure "
                                "or by the holder before); deleted, not sent again", [r["id"] for r in gone])
        if took_over:
            log.info("outbox relay lease taken by %s", self.holder)

    async def _drop_producer(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> RelayCycle:
        """Send the rows in one Kafka transaction: all of them become visible to readers (who read
        committed) at its commit, or none. A row refused before it leaves is parked or, when the
        refusal passes, ends the cycle there (the rows behind it must not overtake it)."""
        cycle = RelayCycle()
        producer = self.producer
        if producer is None:
            raise RuntimeError("the relay has no producer")
        sent: list[tuple[asyncpg.Record, asyncio.Future[object]]] = []
        await producer.begin_transaction()
        for row in rows:
            reason = refusal_reason(row["topic"], None)
            if reason is not None:
                cycle.parked.append((row, reason))
                continue
            try:
                sent.append((row, await self._send(producer, row)))
            except Exception as error:  # refused before it left
                reason = refusal_reason(row["topic"], error)
                if reason is None:
                    cycle.error = error
                    break
                cycle.parked.append((row, reason))
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        failed = [(row, result) for (row, _), result in zip(sent, results, strict=True)
                  if isinstance(result, BaseException)]
        if not failed:
            try:
                await producer.commit_transaction()
            except Exception as error:
                cycle.error = error
            else:
                cycle.published = [row for row, _ in sent]
            cycle.parked.sort(key=lambda parked: parked[0]["id"])
            return cycle
        # A transaction with a failed send cannot commit: none of this cycle's sends is published.
        # Rows refused for good are parked; the others wait for the next cycle, in order.
        cycle.aborted = True
        with contextlib.suppress(Exception):
            await producer.abort_transaction()
        for row, result in failed:
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

    async def _send(self, producer: AIOKafkaProducer, row: asyncpg.Record) -> asyncio.Future[object]:
        parent = propagate.extract(row["headers"] or {})
        with tracer().start_as_current_span(
            f"{row['topic']} publish", context=parent, kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": row["topic"],
                        "messaging.kafka.message.key": row["key"], "townflow.outbox_id": row["id"]},
        ):
            carrier = current_trace_headers()
        payload = bytes(row["payload"])
        headers = [(k, v.encode()) for k, v in message_headers(row["headers"] or {}, payload, carrier,
                                                               outbox_id=row["id"], service=self.service).items()]
        return await producer.send(
            row["topic"], value=payload, key=row["key"].encode() or None, headers=headers,
        )


def message_headers(stored: dict[str, str], payload: bytes, trace: dict[str, str],
                    outbox_id: int | None = None, service: str | None = None) -> dict[str, str]:
    """Every header of an outgoing message, built here and nowhere else (SPEC §3.1, §11).

    `x-outbox-id` names the outbox row a message was sent from and `x-outbox-service` the service
    whose outbox it was (row ids are per service). The relay looks for them on the topics' tails
    when it takes over, so a row is not sent twice; two messages of one service with the same row
    id would be a second send, two rows a second write. An event's readers dedupe by its id anyway.

    The stored trace context is replaced by the publish span's (`trace`); other stored headers (a
    dead letter's x-dlq-*, its original content-type) travel as they are, except `ce_*` ones: the
    CloudEvents attributes are always derived afresh from the value, so a dead letter's describe
    the envelope it holds (or there are none) whatever the poison's own headers claimed."""
    kept = {k: v for k, v in stored.items() if k not in _TRACE_HEADERS and not is_cloudevent_header(k)}
    row = {} if outbox_id is None else {OUTBOX_ID_HEADER: str(outbox_id)}
    if service is not None:
        row[OUTBOX_SERVICE_HEADER] = service
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
