"""SPEC §6.1: history is kept. Topics are created with their retention, and a topic that keeps
less than it should is reported at start-up (a warning and a gauge), without failing it."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from townflow_shared.events import TOPICS, dlq_topic
from townflow_shared.kafka import check_retention, kafka_admin
from townflow_shared.metrics import REGISTRY
from townflow_shared.settings import ServiceSettings

from .conftest import Api

DAY_MS = 24 * 3600 * 1000


async def _retention_of(bootstrap: str, topics: list[str]) -> dict[str, int]:
    async with kafka_admin(bootstrap) as admin:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"retention.ms": None}) for t in topics])
    return {resource[3]: int(dict((e[0], e[1]) for e in resource[4])["retention.ms"])
            for response in responses for resource in response.resources}


async def test_the_services_create_event_topics_that_keep_everything_and_dlqs_for_30_days(
        intake: Api, bootstrap: str) -> None:
    retention = await _retention_of(bootstrap, [*TOPICS, *(dlq_topic(t) for t in TOPICS)])
    assert {t: retention[t] for t in TOPICS} == dict.fromkeys(TOPICS, -1)
    assert {dlq_topic(t): retention[dlq_topic(t)] for t in TOPICS} == {dlq_topic(t): 30 * DAY_MS for t in TOPICS}


async def test_a_topic_created_with_seven_days_is_reported_by_a_warning_and_a_gauge(
        bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    name = f"townflow.test.retention.{uuid.uuid4().hex[:12]}"
    week, forever = 7 * DAY_MS, -1
    wanted = {name: week, f"{name}.ok": forever, dlq_topic(name): week, f"{name}.ok.dlq": 60 * DAY_MS}
    async with kafka_admin(bootstrap) as admin:
        await admin.create_topics([NewTopic(t, 1, 1, topic_configs={"retention.ms": str(ms)})
                                   for t, ms in wanted.items()])
    settings = ServiceSettings(service_name="retentiontest", kafka_bootstrap=bootstrap)

    with caplog.at_level(logging.WARNING, logger="townflow_shared.kafka"):
        assert await check_retention(settings, list(wanted)) == wanted

    def gauge(metric: str, topic: str) -> float | None:
        return REGISTRY.get_sample_value(metric, {"service": "retentiontest", "topic": topic})

    too_short = {name, dlq_topic(name)}  # 7 days on an event topic, and on a .dlq (30 days wanted)
    for topic, ms in wanted.items():
        assert gauge("townflow_topic_retention_ms", topic) == ms
        assert gauge("townflow_topic_retention_too_short", topic) == (1 if topic in too_short else 0)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for topic in too_short:
        assert any(f"topic {topic} keeps" in m and f"retention.ms={week}" in m for m in warned), warned
    assert not any(f"topic {name}.ok" in m for m in warned)
