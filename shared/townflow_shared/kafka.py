"""Kafka clients built from settings: FastStream's broker for consuming, and one idempotent
aiokafka producer (acks=all) for the outbox relay and dead letters."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from .settings import ServiceSettings


def _security(settings: ServiceSettings) -> BaseSecurity | None:
    if settings.kafka_username is None:
        return None
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    use_ssl = settings.kafka_security_protocol.upper().startswith("SASL_SSL")
    ssl_context = None
    if use_ssl:
        import ssl

        ssl_context = ssl.create_default_context()
    kind = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}.get(
        (settings.kafka_sasl_mechanism or "PLAIN").upper(), SASLPlaintext)
    return kind(username=settings.kafka_username, password=password, ssl_context=ssl_context)


def _producer_security_args(settings: ServiceSettings) -> dict[str, Any]:
    if settings.kafka_username is None:
        return {}
    import ssl

    return {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism or "PLAIN",
        "sasl_plain_username": settings.kafka_username,
        "sasl_plain_password": settings.kafka_password.get_secret_value() if settings.kafka_password else "",
        "ssl_context": ssl.create_default_context() if "SSL" in settings.kafka_security_protocol.upper() else None,
    }


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


def create_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.service_name}-outbox",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,  # lets a relay batch share requests without adding visible latency
        **_producer_security_args(settings),
    )


async def ensure_topics(settings: ServiceSettings, topics: list[str], partitions: int) -> list[str]:
    """Create the contract's topics (and their DLQs) that do not exist yet; return the new ones.

    Brokers in production usually refuse auto-creation, and a consumer that subscribes before
    the producer's first message must still find its topic."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                client_id=f"{settings.service_name}-admin",
                                **_producer_security_args(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=settings.kafka_replication)
                 for t in missing])
            for topic, code, *_ in getattr(response, "topic_errors", []):
                if code not in (0, 36):  # 36: created meanwhile by another service
                    raise RuntimeError(f"could not create topic {topic}: error {code}")
        return missing
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, topics: list[str], **security: Any) -> list[TopicPartition]:
    """Every partition of `topics`, read from the cluster's metadata."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return sorted(TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
                  if t.get("error_code", 0) == 0)
