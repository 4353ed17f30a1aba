"""Kafka clients built from settings: FastStream's broker for consuming, idempotent aiokafka
producers (acks=all; the outbox relay's transactional), and the contract's topics created
with the retention they need (SPEC §6.1: event topics keep everything) and checked at start-up."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from .metrics import TOPIC_RETENTION_MS, TOPIC_RETENTION_TOO_SHORT
from .outbox import OUTBOX_ID_HEADER, OUTBOX_SERVICE_HEADER
from .settings import ServiceSettings

log = logging.getLogger(__name__)


def _security(settings: ServiceSettings) -> BaseSecurity | None:
    """The broker credentials of the settings, once: FastStream's broker takes this form, every
    aiokafka client (producer, admin, lag consumer) the same translated by `client_security`."""
    if settings.kafka_username is None:
        return None
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    ssl_context = ssl.create_default_context() if "SSL" in settings.kafka_security_protocol.upper() else None
    kind = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}.get(
        (settings.kafka_sasl_mechanism or "PLAIN").upper(), SASLPlaintext)
    return kind(username=settings.kafka_username, password=password, ssl_context=ssl_context)


def client_security(settings: ServiceSettings) -> dict[str, Any]:
    """`_security` as the keyword arguments of aiokafka's clients (FastStream's own translation)."""
    return parse_security(_security(settings))


def create_broker(settings: ServiceSettings, middlewares: list[Any]) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=settings.service_name,
        security=_security(settings),
        middlewares=middlewares,
        log_level=logging.DEBUG,  # "Received"/"Processed" for every batch is noise at INFO
        acks="all",
        enable_idempotence=True,
    )


def create_producer(settings: ServiceSettings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """The idempotent producer (dead letters, tools); with `transactional_id`, the outbox relay's."""
    transactional: dict[str, Any] = {} if transactional_id is None else {
        "transactional_id": transactional_id,
        # The broker aborts a transaction its producer left open this long (a holder paused with
        # no replica to take over): readers of the partitions are held back no longer than that.
        "transaction_timeout_ms": int(settings.kafka_transaction_timeout_seconds * 1000),
    }
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.service_name}-outbox",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,  # lets a relay batch share requests without adding visible latency
        # A record above it is refused here, before it spends a sequence number (outbox.py parks it).
        max_request_size=settings.kafka_max_message_bytes,
        **transactional,
        **client_security(settings),
    )


def _own_event_topic(topic: str, service: bytes) -> bool:
    """A topic only this service publishes to (`intake.request.filed.v1` is intake's; a `.dlq` has
    many publishers): a message on it without `x-outbox-service` was sent by a replica of the
    release before that header, during a rolling upgrade, and is this service's all the same."""
    return topic.startswith(service.decode() + ".") and not topic.endswith(".dlq")


def relay_transactional_id(settings: ServiceSettings) -> str:
    """Shared by every replica of a service: a new relay holder's producer fences the last one's."""
    return f"townflow.{settings.service_name}.outbox-relay"


async def committed_outbox_ids(settings: ServiceSettings, topics: list[str], depth: int) -> set[int]:
    """The outbox row ids of this service among the newest `depth` committed records of every
    partition of `topics`: what the relay must not send again when it takes over (outbox.py)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", client_id=f"{settings.service_name}-relay-tails",
                                **client_security(settings))
    partitions = await topic_partitions(settings.kafka_bootstrap, topics, **client_security(settings))
    found: set[int] = set()
    if not partitions:
        return found
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)  # read committed: the last stable offsets
        starts = await consumer.beginning_offsets(partitions)
        waiting = {tp for tp in partitions if ends[tp] > starts[tp]}
        for tp in waiting:
            consumer.seek(tp, max(starts[tp], ends[tp] - depth))
        service = settings.service_name.encode()
        while waiting:
            batches = await consumer.getmany(*waiting, timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers or ())
                    if OUTBOX_ID_HEADER in headers and (headers.get(OUTBOX_SERVICE_HEADER) == service or (
                            OUTBOX_SERVICE_HEADER not in headers and _own_event_topic(record.topic, service))):
                        found.add(int(headers[OUTBOX_ID_HEADER]))
            waiting = {tp for tp in waiting if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return found


KEEP_FOREVER = -1  # retention.ms of event topics: rebuild and new subscribers replay from the start


def wanted_retention_ms(settings: ServiceSettings, topic: str) -> int:
    """Event topics keep every message; a `.dlq` keeps its poison for the operator for a while."""
    return settings.kafka_dlq_retention_ms if topic.endswith(".dlq") else KEEP_FOREVER


def retention_too_short(actual_ms: int, wanted_ms: int) -> bool:
    if actual_ms == KEEP_FOREVER:
        return False
    return wanted_ms == KEEP_FOREVER or actual_ms < wanted_ms


async def ensure_topics(settings: ServiceSettings, topics: list[str], partitions: int) -> list[str]:
    """Create the contract's topics (and their DLQs) that do not exist yet, with the retention
    they need, then check the retention of all of them (`check_retention`); return the new ones.

    Brokers in production usually refuse auto-creation, and a consumer that subscribes before
    the producer's first message must still find its topic."""
    from aiokafka.admin import NewTopic

    admin = _admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=settings.kafka_replication,
                          topic_configs={"retention.ms": str(wanted_retention_ms(settings, t))})
                 for t in missing])
            for topic, code, *_ in getattr(response, "topic_errors", []):
                if code not in (0, 36):  # 36: created meanwhile by another service
                    raise RuntimeError(f"could not create topic {topic}: error {code}")
        await _check_retention(admin, settings, topics)
        return missing
    finally:
        await admin.close()


async def check_retention(settings: ServiceSettings, topics: list[str]) -> dict[str, int]:
    """Read every topic's retention.ms back from the broker; a shorter one than it should have
    is logged as a WARNING and shown by `townflow_topic_retention_too_short`. A topic that takes
    smaller records than the producer sends (`max.message.bytes` below
    TOWNFLOW_KAFKA_MAX_MESSAGE_BYTES) is a WARNING too. Never raises: a service must start even
    on a cluster whose topics an operator has yet to fix."""
    admin = _admin(settings)
    try:
        await admin.start()
        return await _check_retention(admin, settings, topics)
    except Exception:
        log.warning("could not read the topics' retention from the broker", exc_info=True)
        return {}
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _check_retention(admin: Any, settings: ServiceSettings, topics: list[str]) -> dict[str, int]:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    found: dict[str, int] = {}
    takes: dict[str, int] = {}
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"retention.ms": None, "max.message.bytes": None})
             for t in topics])
        for response in responses:
            for error_code, _message, _type, topic, entries, *_ in response.resources:
                values = {entry[0]: entry[1] for entry in entries}
                if error_code != 0 or values.get("retention.ms") is None:
                    log.warning("could not read the retention of topic %s (error %s)", topic, error_code)
                    continue
                found[topic] = int(values["retention.ms"])
                if values.get("max.message.bytes") is not None:
                    takes[topic] = int(values["max.message.bytes"])
    except Exception:
        log.warning("could not read the topics' retention from the broker", exc_info=True)
    for topic, largest in sorted(takes.items()):
        if largest < settings.kafka_max_message_bytes:
            # The broker, not the client, would then refuse a record in between: the relay parks it
            # and must renew its producer (outbox.py); with the limits in line the client refuses it.
            log.warning("topic %s takes records up to max.message.bytes=%s, less than "
                        "TOWNFLOW_KAFKA_MAX_MESSAGE_BYTES=%s: lower the setting or raise the topic's limit",
                        topic, largest, settings.kafka_max_message_bytes)
    for topic, actual in sorted(found.items()):
        wanted = wanted_retention_ms(settings, topic)
        short = retention_too_short(actual, wanted)
        TOPIC_RETENTION_MS.labels(settings.service_name, topic).set(actual)
        TOPIC_RETENTION_TOO_SHORT.labels(settings.service_name, topic).set(int(short))
        if short:
            log.warning("topic %s keeps its messages for retention.ms=%s, less than it should (%s): "
                        "rebuild and new subscribers cannot replay what is deleted; see the README, "
                        "\"Topics\", to change it", topic, actual, "forever (-1)" if wanted == KEEP_FOREVER else wanted)
    return found


def _admin(settings: ServiceSettings) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                               client_id=f"{settings.service_name}-admin",
                               **client_security(settings))


@contextlib.asynccontextmanager
async def kafka_admin(bootstrap: str, **config: Any) -> AsyncIterator[Any]:
    """A started admin client of the cluster at `bootstrap`, closed when done."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **config)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, topics: list[str], **security: Any) -> list[TopicPartition]:
    """Every partition of `topics`, read from the cluster's metadata."""
    async with kafka_admin(bootstrap, **security) as admin:
        described = await admin.describe_topics(topics)
    return sorted(TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
                  if t.get("error_code", 0) == 0)
