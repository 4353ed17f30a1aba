"""The relay's decisions without a broker: what is parked, what waits, what goes on (SPEC §6.1);
and which retention is too short."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from townflow_shared.kafka import _check_retention, retention_too_short, wanted_retention_ms
from townflow_shared.outbox import OutboxRelay, refusal_reason, refused_for_good
from townflow_shared.settings import ServiceSettings


class FakeProducer:
    """Fails `send` itself (refused before leaving) or its future (refused by the broker) per row;
    records the transaction's fate."""

    def __init__(self, at_send: dict[bytes, Exception] | None = None,
                 at_broker: dict[bytes, Exception] | None = None, at_commit: Exception | None = None) -> None:
        self.at_send = at_send or {}
        self.at_broker = at_broker or {}
        self.at_commit = at_commit
        self.sent: list[bytes] = []
        self.transaction: list[str] = []

    async def begin_transaction(self) -> None:
        self.transaction.append("begin")

    async def commit_transaction(self) -> None:
        if self.at_commit is not None:
            raise self.at_commit
        self.transaction.append("commit")

    async def abort_transaction(self) -> None:
        self.transaction.append("abort")

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[object]:
        if value in self.at_send:
            raise self.at_send[value]
        self.sent.append(value)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if value in self.at_broker:
            future.set_exception(self.at_broker[value])
        else:
            future.set_result(None)
        return future


def rows(*values: bytes, topic: str = "intake.request.filed.v1") -> list[dict[str, Any]]:
    return [{"id": i, "topic": topic, "key": "matter", "payload": v, "headers": {}} for i, v in enumerate(values, 1)]


async def cycle_of(producer: FakeProducer, batch: list[dict[str, Any]]) -> Any:
    async def nothing_published(topics: list[str], depth: int) -> set[int]:
        return set()

    relay = OutboxRelay("test", pool=None, producer_factory=lambda: producer,  # type: ignore[arg-type,return-value]
                        published_ids=nothing_published)
    relay.producer = producer  # type: ignore[assignment]
    return await relay._publish(batch)  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [MessageSizeTooLargeError(), RecordListTooLargeError(),
                                   TopicAuthorizationFailedError("t"), InvalidTopicError()])
def test_refusals_for_good(error: Exception) -> None:
    assert refused_for_good(error)
    reason = refusal_reason("intake.request.filed.v1", error)
    assert reason is not None and reason.startswith(type(error).__name__)


@pytest.mark.parametrize("error", [KafkaTimeoutError(), KafkaConnectionError(), NotLeaderForPartitionError(),
                                   RequestTimedOutError(), NotEnoughReplicasError(),
                                   UnknownTopicOrPartitionError(), OutOfOrderSequenceNumber(), RuntimeError()])
def test_passing_failures_are_not_refusals(error: Exception) -> None:
    assert not refused_for_good(error)
    assert refusal_reason("intake.request.filed.v1", error) is None


@pytest.mark.parametrize("topic", ["", ".", "..", "with space", "x" * 250, "主题"])
def test_illegal_topic_names_are_refused_before_sending(topic: str) -> None:
    assert (refusal_reason(topic, None) or "").startswith("InvalidTopicError")


async def test_a_row_refused_before_it_leaves_is_parked_and_the_rows_behind_it_go_on() -> None:
    producer = FakeProducer(at_send={b"big": MessageSizeTooLargeError("too big")})
    cycle = await cycle_of(producer, rows(b"a", b"big", b"b"))
    assert [r["payload"] for r in cycle.published] == [b"a", b"b"]
    assert [(r["payload"], reason.split(":")[0]) for r, reason in cycle.parked] == [(b"big", "MessageSizeTooLargeError")]
    assert cycle.error is None and producer.transaction == ["begin", "commit"]
    assert cycle.done_ids == [1, 3, 2]


async def test_a_passing_failure_before_sending_keeps_that_row_and_every_row_behind_it() -> None:
    producer = FakeProducer(at_send={b"b": KafkaTimeoutError()})
    cycle = await cycle_of(producer, rows(b"a", b"b", b"c"))
    assert producer.sent == [b"a"]  # c never overtakes b
    assert [r["payload"] for r in cycle.published] == [b"a"]
    assert not cycle.parked and isinstance(cycle.error, KafkaTimeoutError)
    assert cycle.done_ids == [1]
    assert producer.transaction == ["begin", "commit"]  # what was sent before it is published


async def test_a_refusal_by_the_broker_parks_the_row_and_aborts_the_whole_transaction() -> None:
    producer = FakeProducer(at_broker={b"big": MessageSizeTooLargeError(), b"b": OutOfOrderSequenceNumber()})
    cycle = await cycle_of(producer, rows(b"a", b"big", b"b"))
    assert producer.transaction == ["begin", "abort"]
    assert cycle.published == []  # a was sent in the aborted transaction: no reader sees it, it goes again
    assert [r["payload"] for r, _ in cycle.parked] == [b"big"]
    assert isinstance(cycle.error, OutOfOrderSequenceNumber)  # a and b wait for the next cycle
    assert cycle.done_ids == [2]


async def test_a_refusal_for_good_alone_still_sends_the_others_again_next_cycle() -> None:
    producer = FakeProducer(at_broker={b"big": MessageSizeTooLargeError()})
    cycle = await cycle_of(producer, rows(b"a", b"big", b"b"))
    assert producer.transaction == ["begin", "abort"] and cycle.published == [] and cycle.aborted
    assert cycle.done_ids == [2] and cycle.error is None  # a and b go again, at once


async def test_a_failed_commit_publishes_nothing_and_keeps_every_row() -> None:
    producer = FakeProducer(at_commit=KafkaTimeoutError())
    cycle = await cycle_of(producer, rows(b"a", b"b"))
    assert cycle.published == [] and cycle.done_ids == [] and isinstance(cycle.error, KafkaTimeoutError)


async def test_a_row_for_an_illegal_topic_is_parked_without_sending() -> None:
    producer = FakeProducer()
    cycle = await cycle_of(producer, rows(b"a", topic="bad topic"))
    assert producer.sent == [] and [r["payload"] for r, _ in cycle.parked] == [b"a"]


@pytest.mark.parametrize(("actual", "wanted", "short"), [
    (-1, -1, False), (604_800_000, -1, True), (0, -1, True),
    (2_592_000_000, 2_592_000_000, False), (604_800_000, 2_592_000_000, True), (-1, 2_592_000_000, False),
    (5_184_000_000, 2_592_000_000, False),
])
def test_retention_too_short(actual: int, wanted: int, short: bool) -> None:
    assert retention_too_short(actual, wanted) is short


def test_event_topics_keep_everything_and_dlqs_the_setting() -> None:
    settings = ServiceSettings(kafka_dlq_retention_ms=123)
    assert wanted_retention_ms(settings, "intake.request.filed.v1") == -1
    assert wanted_retention_ms(settings, "intake.request.filed.v1.dlq") == 123
    assert ServiceSettings().kafka_dlq_retention_ms == 30 * 24 * 3600 * 1000


async def test_a_broker_that_cannot_describe_its_topics_does_not_stop_the_start_up() -> None:
    class Unanswering:
        async def describe_configs(self, *_: Any) -> Any:
            raise KafkaConnectionError("no broker")

    assert await _check_retention(Unanswering(), ServiceSettings(), ["intake.request.filed.v1"]) == {}


class Described:
    """An admin client whose broker answers describe_configs with these topic configs."""

    def __init__(self, configs: dict[str, dict[str, str]]) -> None:
        self.configs = configs

    async def describe_configs(self, *_: Any) -> Any:
        resources = [(0, "", 2, topic, [(k, v, False, 1, False, []) for k, v in values.items()])
                     for topic, values in self.configs.items()]
        return [SimpleNamespace(resources=resources)]


async def test_a_topic_that_takes_smaller_records_than_the_producer_sends_is_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    admin = Described({"a.b.c.v1": {"retention.ms": "-1", "max.message.bytes": "20000"},
                       "a.b.d.v1": {"retention.ms": "-1", "max.message.bytes": "1048588"}})
    settings = ServiceSettings(service_name="sizetest")
    with caplog.at_level("WARNING", logger="townflow_shared.kafka"):
        assert await _check_retention(admin, settings, ["a.b.c.v1", "a.b.d.v1"]) == {"a.b.c.v1": -1, "a.b.d.v1": -1}
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "a.b.c.v1" in warned[0] and "max.message.bytes=20000" in warned[0]
