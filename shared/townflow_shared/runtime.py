"""The wiring every service shares: settings, town, clock, database, Kafka, outbox relay,
and one FastStream batch subscriber per service whose handlers run exactly once per event."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI
from faststream.kafka import KafkaMessage
from faststream.middlewares import AckPolicy
from prometheus_client import Gauge
from pydantic import Field, SkipValidation, TypeAdapter

from . import audit_api, audit_trail, db
from .auth import TokenRules, TokenVerifier
from .clock import Clock, follow_database_clock
from .consumer import BatchConsumer, DeadLetters, Handler, OutboxDeadLetters, Registered
from .county import County, load_county
from .db import OUTAGES
from .dlq import Rejected, describe
from .events import AUDIT_TYPES, TOPICS, Envelope, dlq_topic
from .group_gauges import GroupGauges, Refresh
from .guards import EdgeLimits
from .http import mount_common
from .kafka import committed_outbox_ids, create_broker, create_producer, ensure_topics, relay_transactional_id
from .lag import measure_lag_forever
from .metrics import AUDIT_UNSEALED, AUDIT_UNSEALED_AGE, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PARKED_ROWS
from .offsets import OffsetCommitter
from .outbox import OutboxRelay, refresh_outbox_gauges
from .retry import Retrying
from .settings import ServiceSettings
from .telemetry import setup_tracing
from .town import Town

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Envelope)


# How long a stopping service waits for its relay's cycle under way (then it is cancelled).
RELAY_FINISH_SECONDS = 5.0


def _still_assigned(consumer: AIOKafkaConsumer, records: Sequence[Any]) -> bool:
    assigned = consumer.assignment()
    return all(TopicPartition(r.topic, r.partition) in assigned for r in records)


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, migrations: Path) -> None:
        self.settings = settings
        self.service = settings.service_name
        self.county: County = load_county(settings.town_dir)  # a wrong file fails start-up here
        self.town_of_old_rows = self.county.town_of_old_rows(settings.legacy_town_code)  # and a wrong legacy town
        self.clock = Clock()
        self.tokens = TokenVerifier(TokenRules(
            secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            jwks_url=settings.jwt_jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
            staff_id_claim=settings.jwt_staff_id_claim,
            jwks_cache_seconds=settings.jwt_jwks_cache_seconds, jwks_refetch_seconds=settings.jwt_jwks_refetch_seconds))
        self.migrations = migrations
        self.handlers: dict[type[Envelope], Registered] = {}
        self.background: list[Callable[[ServiceRuntime], Awaitable[None]]] = [follow_database_clock()]
        if settings.db_stuck_session_seconds > 0:
            self.background.append(end_stuck_sessions)
        self._closing: list[Callable[[], None]] = []
        self.transaction_scope: Callable[[asyncpg.Connection], AbstractAsyncContextManager[None]] = (
            lambda conn: contextlib.nullcontext())
        self._producer: AIOKafkaProducer | None = None  # made in start(): aiokafka needs the running loop
        self.offsets = OffsetCommitter(settings.commit_interval_seconds)
        # No FastStream middlewares: they would see batches; spans, metrics and dead letters are
        # made per event by the BatchConsumer.
        self.broker = create_broker(settings, middlewares=[])
        self.relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self.retrying = Retrying(self.service, settings.retry_base_seconds, settings.retry_max_seconds)
        self.group_gauges = GroupGauges(lambda: self.pool, settings.group_gauges_seconds)
        self.reports(lambda pool: refresh_outbox_gauges(pool, self.service),
                     OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PARKED_ROWS)
        self.subscriber: Any = None  # FastStream's subscriber: its consumer knows the assignment
        # What the event handlers and the routes are handed: the service's bootstrap sets its own
        # dependencies here (app.py); until a service has, its handlers get this runtime.
        self.deps: Any = self
        self.database = db.Database()  # the pool, opened in start()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = False
        if self.service in AUDIT_TYPES:  # every service's audit trail, chained and sent on its own topic
            self.publishes(AUDIT_TYPES[self.service])
            self.every(audit_trail.sealing_loop(self.service, self.database, audit_trail.home_of(self.county),
                                                self.clock, settings.audit_retention_days))
            self.reports(lambda pool: audit_trail.refresh_audit_gauges(pool, self.service),
                         AUDIT_UNSEALED, AUDIT_UNSEALED_AGE)

    @property
    def town(self) -> Town:
        """The town of a one-town deployment. In a county the town comes from each event
        (`town_of`) and each caller's token instead."""
        only = self.county.only_town
        if only is None:
            raise RuntimeError("this deployment serves a county: take the town from the event or the caller")
        return only

    def town_of(self, town_code: str) -> Town:
        """The town an event or a record belongs to; an event for a town this deployment does
        not serve is poison (SPEC §8)."""
        town = self.county.town(town_code)
        if town is None:
            raise Rejected(f"town {town_code} is not served by this deployment")
        return town

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the service has not started")
        return self._producer

    @property
    def pool(self) -> asyncpg.Pool:
        return self.database.pool

    def use_pool(self, pool: asyncpg.Pool) -> None:
        """Run handlers against another database (the appraisal rebuild replays into a fresh one)."""
        self.database.use(pool)

    # --- registration -------------------------------------------------------------------
    def on(self, event_type: type[E]) -> Callable[[Handler], Handler]:
        """Register `handler(conn, event, runtime)` for one event type; it runs exactly once."""

        def register(handler: Handler) -> Handler:
            if event_type in self.handlers:
                raise ValueError(f"{event_type.__name__} already has a handler")
            self.handlers[event_type] = Registered(f"{self.service}.{handler.__name__}", handler)
            return handler

        return register

    def around_handlers(self, scope: Callable[[asyncpg.Connection], AbstractAsyncContextManager[None]]) -> None:
        """Wrap every consumer transaction's handlers, e.g. to publish once what a whole batch
        changed (its exit runs inside the transaction, before the commit)."""
        self.transaction_scope = scope

    def publishes(self, *event_types: type[Envelope]) -> None:
        """Declare the events this service publishes (through its outbox), for its AsyncAPI document."""
        for event_type in event_types:
            self.broker.publisher(event_type.topic, schema=event_type, title=f"{event_type.topic}:publish",
                                  description=(event_type.__doc__ or "").strip() or None)

    def asyncapi(self) -> Any:
        """The service's AsyncAPI document, generated from its subscribers and publishers."""
        from faststream.specification import AsyncAPI

        self._subscribe()
        return AsyncAPI(self.broker, title=f"Townflow {self.service}", version="1.0.0",
                        description=f"Events consumed and published by Townflow's {self.service} service. "
                                    "Kafka key: the matter's request_id (inspections, plans, scores: their own id).",
                        ).to_specification()

    def reports(self, refresh: Refresh, *gauges: Gauge) -> None:
        """Gauges that describe the whole service, set by `refresh` on one replica at a time."""
        self.group_gauges.add(refresh, *gauges)

    def every(self, task: Callable[[ServiceRuntime], Awaitable[None]]) -> None:
        """Run a background loop (e.g. supervision) for the life of the service."""
        self.background.append(task)

    def on_stop(self, close: Callable[[], None]) -> None:
        """Release something of the service's own (e.g. worker processes) when it stops."""
        self._closing.append(close)

    def _payload(self) -> Any:
        """Every event this service consumes, as one type (a union told apart by `type`)."""
        types = tuple(self.handlers)
        return types[0] if len(types) == 1 else Annotated[
            Union[types], Field(discriminator="type")]  # noqa: UP007 - a runtime-built union

    def batch_consumer(self, dead_letters: DeadLetters) -> BatchConsumer:
        """The one way this service's events are consumed: live, or replayed by a rebuild."""
        return BatchConsumer(self.service, self.handlers, TypeAdapter(self._payload()), lambda: self.pool,
                             dead_letters, self)

    def _subscribe(self) -> None:
        if not self.handlers or self._subscribed:
            return
        self._subscribed = True
        types = tuple(self.handlers)
        payload = self._payload()
        batches = self.batch_consumer(OutboxDeadLetters(self.service))

        async def consume(event: Any, message: KafkaMessage) -> None:
            records: Sequence[Any] = message.raw_message  # type: ignore[assignment]
            consumer = cast(AIOKafkaConsumer, message.consumer)  # FastStream's aiokafka consumer
            while True:
                try:
                    await batches.handle(records)
                    break
                except Exception as exc:  # not poison: an outage (or a bug) to wait out, never a dead letter
                    delay = self.retrying.failed(exc)
                    outage = isinstance(exc, OUTAGES)
                    report = log.warning if outage else log.exception
                    report("a batch of %d failed (%s); it is tried again in %.1fs", len(records), describe(exc), delay)
                    await asyncio.sleep(delay)
                if outage and _still_assigned(consumer, records):
                    # The database is away: waited out here, without fetching. A replica cut off
                    # from its database alone so stops polling, and after max.poll.interval the
                    # client leaves the group and its partitions go to a replica that can work
                    # them (issue #26); it rejoins when this batch is done.
                    continue
                if outage:
                    self.retrying.left()  # revoked meanwhile: their new owner has the records
                    return
                try:
                    await message.nack()  # rewinds every partition of the batch to its first record
                except Exception as seek_failed:  # partitions revoked meanwhile: their new owner has them
                    log.info("batch not rewound: %s", describe(seek_failed))
                if not _still_assigned(consumer, records):
                    self.retrying.left()
                return
            self.retrying.succeeded()
            # Committed up to the last record handled: a transaction marker after it stays below the
            # end offset, and lag.py counts messages, not offsets. (Never `await consumer.position()`
            # here: in a rebalance it waits for a rejoin that waits for this callback to return.)
            for record in records:
                self.offsets.mark(consumer, record.topic, record.partition, record.offset)

        # The signature is for the AsyncAPI document: every Kafka message is one of these events.
        # FastStream skips validating it (SkipValidation): the BatchConsumer validates record by
        # record, so one bad record cannot sink its batch.
        consume.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
            inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[payload, SkipValidation()]),
            inspect.Parameter("message", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=KafkaMessage),
        ], return_annotation=None)
        consume.__name__ = f"{self.service}_consumer"
        subscriber = self.broker.subscriber(
            *(t.topic for t in types),
            group_id=self.service,
            auto_offset_reset="earliest",
            batch=True,
            max_records=self.settings.consume_batch_max,
            fetch_min_bytes=self.settings.kafka_fetch_min_bytes,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            # The relays publish in Kafka transactions: an aborted one (a fenced, paused holder's)
            # is never read. A replica that stops heartbeating gives its partitions up in seconds.
            isolation_level="read_committed",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=self.settings.kafka_max_poll_interval_ms,
            decoder=_records_undecoded,
            ack_policy=AckPolicy.MANUAL,  # offsets are committed in batches by self.offsets
            title=f"{self.service} consumer",
        )
        subscriber(consume)
        self.subscriber = subscriber

    def assignment(self) -> set[TopicPartition]:
        """The partitions this replica consumes now (none before it joined its group)."""
        consumer = getattr(self.subscriber, "consumer", None)
        return set(consumer.assignment()) if consumer is not None else set()

    # --- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        setup_tracing(self.service, self.settings.otlp_endpoint)
        pool = await db.create_pool(self.settings.database_url.get_secret_value(),
                                    self.settings.db_pool_min, self.settings.db_pool_max, service=self.service,
                                    limits=session_limits(self.settings))
        self.database.use(pool)
        applied = await db.migrate(pool, [db.SHARED_MIGRATIONS, self.migrations],
                                   default_town=self.town_of_old_rows)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        # Every replica's "now" is the database's (clock.py): measured once before anything is
        # served or published, then followed by a background loop.
        async with pool.acquire() as conn:
            await self.clock.follow(conn)
        contract = [*TOPICS, *(dlq_topic(t) for t in TOPICS)]
        await ensure_topics(self.settings, contract, self.settings.kafka_partitions)
        self._producer = create_producer(self.settings)
        await self.producer.start()
        if self.settings.outbox_relay:
            settings = self.settings
            self.relay = OutboxRelay(
                self.service, pool, lambda: create_producer(settings, relay_transactional_id(settings)),
                lambda topics, depth: committed_outbox_ids(settings, topics, depth),
                batch_size=settings.outbox_batch_size, poll_seconds=settings.outbox_poll_seconds,
                takeover_seconds=settings.outbox_takeover_seconds)
            self._relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
            self._tasks.append(self._relay_task)
        for task in self.background:
            self._tasks.append(asyncio.create_task(self._guard(task), name=task.__name__))
        self._tasks.append(asyncio.create_task(self.group_gauges.run(), name="group-gauges"))
        self._subscribe()
        await self.broker.start()
        self._tasks.append(asyncio.create_task(self.offsets.run(), name="offset-commits"))
        if self.handlers:
            self._tasks.append(asyncio.create_task(measure_lag_forever(
                self.settings, self.service, self.settings.lag_seconds, self.assignment), name="consumer-lag"))
        log.info("%s started (%d objects out of the collector's sight)", self.service, freeze_what_lives_for_good())

    async def _guard(self, task: Callable[[ServiceRuntime], Awaitable[None]]) -> None:
        await keep_alive(f"{self.service}.{task.__name__}", lambda: task(self), self.settings.retry_base_seconds,
                         self.settings.retry_max_seconds)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.offsets.commit()  # what is handled is committed before the consumer leaves
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self.relay is not None and self._relay_task is not None:
            self.relay.finish()
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._relay_task), RELAY_FINISH_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        if self.database.opened:
            await self.database.pool.close()
        for close in self._closing:
            with contextlib.suppress(Exception):
                close()

    def http_app(self, title: str, routers: list[Any]) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(title=title, version="1.0.0", lifespan=lifespan)
        app.state.runtime = self  # for the operations routes (readiness, the test clock) only
        app.state.deps = self.deps
        app.state.tokens = self.tokens
        app.state.county = self.county
        for router in [*routers, audit_api.audit_router(self.service, self.database, self.county)]:
            app.include_router(router)
        # Every request's audit record (issue #28), inside the guard: what it refuses reached no route.
        app.add_middleware(audit_trail.AuditMiddleware, service=self.service, database=self.database,
                           clock=self.clock)
        mount_common(app, self.service, self.settings.test_clock, EdgeLimits.of(self.settings))
        return app


def session_limits(settings: ServiceSettings) -> db.SessionLimits:
    """What PostgreSQL lets each session of a service hold or wait for (db.SessionLimits)."""
    return db.SessionLimits(settings.db_idle_in_transaction_seconds, settings.db_lock_timeout_seconds,
                            settings.db_statement_timeout_seconds)


async def end_stuck_sessions(runtime: ServiceRuntime) -> None:
    """Every replica ends the service's sessions stuck mid-statement (db.END_STUCK_SESSIONS): a
    paused peer's, holding its transaction's locks out of reach of the session's timeouts."""
    settings = runtime.settings
    await db.end_stuck_sessions_forever(settings.database_url.get_secret_value(), runtime.service,
                                        session_limits(settings), settings.db_stuck_session_seconds)


def freeze_what_lives_for_good() -> int:
    """Move every object made while starting (the modules, the county's towns with their
    catalogs, rules and calendars, the routes, the schemas: about 140,000 at 60 towns) out of the
    garbage collector's sight. They live as long as the process, yet each full collection walked
    them all and found nothing: 55-80 ms with the event loop stopped (`/healthz` p99 96 ms while
    enforcement served its inspection lists at a county-year, 66-87 ms in a smaller rerun; 16-26
    ms frozen)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def _records_undecoded(message: KafkaMessage) -> None:
    """FastStream would JSON-decode the whole batch at once; the BatchConsumer does it per record."""
    return None


async def keep_alive(name: str, run: Callable[[], Awaitable[None]], base_seconds: float,
                     max_seconds: float) -> None:
    """Keep a background loop alive through errors, waiting out an outage with back-off (a
    service's loops, and the console's)."""
    retrying = Retrying(name, base_seconds, max_seconds)
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = retrying.failed(exc)
            report = log.warning if isinstance(exc, OUTAGES) else log.exception
            report("background task %s failed (%s); restarting in %.1fs", name, describe(exc), delay)
            await asyncio.sleep(delay)
