"""SPEC §11: every message is also a CloudEvent in Kafka binary content mode, read with the
standard CloudEvents SDK (`cloudevents`, Kafka binding, auto mode) as a county department would,
while the value stays the v1 envelope byte for byte."""

from __future__ import annotations

import json
import types
import typing
import uuid
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args, get_origin

import pytest
from aiokafka import ConsumerRecord
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event
from cloudevents.core.exceptions import BaseCloudEventException
from pydantic import BaseModel

from devstack.stack import Stack
from townflow_shared import db
from townflow_shared.cloudevents import cloudevent_headers
from townflow_shared.events import EVENT_TYPES, Envelope, RequestFiled, dlq_topic, new_event
from townflow_shared.outbox import encode, enqueue, message_headers

from .conftest import Api, file_matter
from .kafka_tools import about, wait_for_record

NOW = datetime(2032, 5, 10, 1, 0, tzinfo=UTC)
STRAY_TOWN = "321003999"  # a town this deployment does not serve: every consumer dead-letters its events


def _value_of(annotation: Any, name: str) -> Any:
    """A valid value of a field's type: enough to build one event of every topic."""
    if name == "period":
        return "2032-05"
    origin = get_origin(annotation)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (types.UnionType, typing.Union):
        return _value_of(next(a for a in get_args(annotation) if a is not type(None)), name)
    if origin is list:
        return [_value_of(get_args(annotation)[0], name)]
    if origin is dict:
        return {"resolution": 0.5}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _sample(annotation)
    return {str: f"{name}-1", int: 1, float: 1.5, bool: True, datetime: NOW, date: NOW.date()}[annotation]


def _sample(model: type[BaseModel]) -> Any:
    return model(**{name: _value_of(field.annotation, name) for name, field in model.model_fields.items()})


def one_event_of(event_type: type[Envelope], town_code: str = STRAY_TOWN) -> Envelope:
    data_model = event_type.model_fields["data"].annotation
    assert isinstance(data_model, type)
    subject = str(uuid.uuid4())
    return new_event(event_type, _sample(data_model), source=event_type.topic.split(".")[0],  # type: ignore[no-any-return]
                     town_code=town_code, subject=subject, correlation_id=subject, time=NOW,
                     causation_id=uuid.uuid4())


def as_cloudevent(record: ConsumerRecord) -> BaseCloudEvent:
    """What a subscriber does with the SDK: auto mode (binary when `ce_*` headers are present)."""
    return from_kafka_event(KafkaMessage(headers={k: v for k, v in record.headers or ()},
                                         key=record.key, value=record.value))


def assert_is_the_envelope(event: BaseCloudEvent, envelope: Envelope) -> None:
    assert event.get_specversion() == "1.0"
    assert event.get_id() == str(envelope.id)
    assert event.get_type() == envelope.type
    assert event.get_source() == f"/towns/{envelope.town_code}/{envelope.source}"
    assert event.get_time() == envelope.time
    assert event.get_subject() == envelope.subject
    assert event.get_datacontenttype() == "application/json"
    assert event.get_extension("towncode") == envelope.town_code
    assert event.get_extension("correlationid") == envelope.correlation_id
    assert event.get_extension("causationid") == envelope.causation_id
    assert event.get_data() == json.loads(encode(envelope))  # the data is the whole v1 envelope


# --- without a broker: the headers themselves --------------------------------------------------
@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.topic)
def test_the_headers_make_every_event_a_cloudevent(event_type: type[Envelope]) -> None:
    envelope = one_event_of(event_type, "321003104")
    value = encode(envelope)
    headers = message_headers({"traceparent": "old"}, value, {"traceparent": "00-new-01"})
    record = ConsumerRecord(envelope.topic, 0, 0, 0, 0, envelope.key.encode(), value, None, 0, 0,
                            [(k, v.encode()) for k, v in headers.items()])
    assert_is_the_envelope(as_cloudevent(record), envelope)
    assert headers["traceparent"] == "00-new-01" and headers["content-type"] == "application/json"
    assert headers["ce_time"] == json.loads(value)["time"]  # as written, with the town's offset


def test_without_the_headers_the_sdk_refuses_our_messages() -> None:
    """The bug of issue #19, kept as the proof the test above can fail: with only `content-type`,
    auto mode reads a structured event and our envelope is not one."""
    envelope = one_event_of(RequestFiled, "321003104")
    record = ConsumerRecord(envelope.topic, 0, 0, 0, 0, None, encode(envelope), None, 0, 0,
                            [("content-type", b"application/json")])
    with pytest.raises((BaseCloudEventException, ValueError, KeyError)):
        as_cloudevent(record)


def test_a_null_causation_is_left_out_and_poison_gets_no_attributes() -> None:
    envelope = new_event(RequestFiled, one_event_of(RequestFiled).data, source="intake", town_code="321003104",
                         subject="r1", correlation_id="r1", time=NOW)
    headers = cloudevent_headers(encode(envelope))
    assert "ce_causationid" not in headers and headers["ce_correlationid"] == "r1"
    no_offset = encode(envelope).replace(b'"time":"2032-05-10T01:00:00Z"', b'"time":"2032-05-10T01:00:00"')
    assert no_offset != encode(envelope)
    for poison in (b"not json", b"[1, 2]", b'{"id": "x"}', b"\xff\xfe", no_offset,
                   encode(envelope).replace(b'"time":"2032-05-10T01:00:00Z"', b'"time":"yesterday"')):
        assert cloudevent_headers(poison) == {}


def test_a_dead_letters_stale_attributes_are_replaced_by_its_values() -> None:
    """A dead letter keeps the poison's own headers, but never `ce_*` ones that its value does not
    back: they are derived afresh from the value (none for a value that is no envelope)."""
    stored = {"ce_id": "forged", "ce_type": "forged", "x-dlq-error": "not JSON", "content-type": "text/plain"}
    assert message_headers(stored, b"not json", {}) == {"content-type": "text/plain", "x-dlq-error": "not JSON"}
    envelope = one_event_of(RequestFiled)
    headers = message_headers(stored, encode(envelope), {})
    assert headers["ce_id"] == str(envelope.id) and headers["ce_type"] == "intake.request.filed"


# --- on the real broker -------------------------------------------------------------------------
async def test_one_message_of_every_topic_reads_as_a_cloudevent_and_its_value_is_unchanged(
        stack: Stack, bootstrap: str) -> None:
    """One event of every topic through a service's real outbox and relay (the one place messages
    are built) to the real broker; each comes back from the SDK with its envelope's attributes,
    and its value is the bytes the v1 producer wrote. The events are of a town the stack does not
    serve, so no figure of another test moves; the consumers dead-letter them, and the dead
    letters are CloudEvents too."""
    envelopes = [one_event_of(event_type) for event_type in EVENT_TYPES]
    assert stack.postgres is not None
    pool = await db.create_pool(stack.postgres.dsn("intake"), min_size=1, max_size=1)  # with the services' codecs
    try:
        async with db.transaction(pool) as conn:
            await enqueue(conn, *envelopes)
    finally:
        await pool.close()
    for envelope in envelopes:
        record = await wait_for_record(bootstrap, envelope.topic, lambda r, e=envelope: _has_id(r, e.id), timeout=60)
        assert record.value == encode(envelope)  # v1 consumers see the same bytes as before
        assert type(envelope).model_validate_json(record.value) == envelope
        assert record.key == envelope.key.encode()
        assert "traceparent" in dict(record.headers)  # the W3C trace context stays beside them
        assert_is_the_envelope(as_cloudevent(record), envelope)
    filed = envelopes[0]
    letter = await wait_for_record(bootstrap, dlq_topic(filed.topic), lambda r: _has_id(r, filed.id), timeout=60)
    assert letter.value == encode(filed)
    assert dict(letter.headers)["x-dlq-error"].startswith(b"Rejected")
    assert_is_the_envelope(as_cloudevent(letter), filed)


async def test_a_filing_through_intake_is_a_cloudevent(intake: Api, bootstrap: str) -> None:
    ticket = await file_matter(intake)
    record = await wait_for_record(bootstrap, RequestFiled.topic, about(ticket["request_id"]))
    event = as_cloudevent(record)
    assert event.get_type() == "intake.request.filed"
    assert event.get_source() == "/towns/321003104/intake"
    assert event.get_extension("correlationid") == ticket["request_id"]
    assert RequestFiled.model_validate_json(record.value).id == uuid.UUID(event.get_id())


def _has_id(record: ConsumerRecord, event_id: uuid.UUID) -> bool:
    return dict(record.headers or ()).get("ce_id") == str(event_id).encode()
