"""Which replay process takes a record (rebuild.Share): every event of a town goes to one process,
found by its CloudEvents header without parsing it, or in an older message by its town_code."""

from __future__ import annotations

import zlib
from collections import Counter

from aiokafka import ConsumerRecord

from appraisal.rebuild import Share, _town_of
from townflow_shared.events import RequestFiled, RequestFiledData, new_event
from townflow_shared.outbox import message_headers


def record(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic=RequestFiled.topic, partition=0, offset=0, timestamp=0, timestamp_type=0, key=None,
                          value=value, checksum=None, serialized_key_size=0, serialized_value_size=len(value),
                          headers=headers or [])


def filed(town_code: str) -> bytes:
    event = new_event(RequestFiled, RequestFiledData(
        request_id="r1", ticket_no="t1", channel="window", item_code="T001", colour="yellow", description="-",
        village="V01", location="-", citizen_ref="x" * 64, filed_at="2026-11-02T09:00:00+08:00"),  # type: ignore[arg-type]
        source="intake", town_code=town_code, subject="r1", correlation_id="r1", time="2026-11-02T09:00:00+08:00")  # type: ignore[arg-type]
    return event.model_dump_json().encode()


def test_the_town_comes_from_the_header_as_the_relay_sends_it() -> None:
    value = filed("321003101")
    headers = [(k, v.encode()) for k, v in message_headers({}, value, {}).items()]
    assert _town_of(record(value, headers)) == "321003101"
    # The header decides without the value being read: a value that is no JSON does not matter.
    assert _town_of(record(b"not json", [("ce_towncode", b"321003102")])) == "321003102"


def test_an_older_message_without_headers_is_read_for_its_town() -> None:
    assert _town_of(record(filed("321003103"))) == "321003103"


def test_a_record_that_is_no_envelope_goes_to_the_first_process() -> None:
    for value in (b"not json", b"[1, 2]", b'{"town_code": 7}', b""):
        assert _town_of(record(value)) == ""
        assert Share(0, 2).takes(record(value)) and not Share(1, 2).takes(record(value))


def test_every_town_goes_to_exactly_one_process_and_the_county_is_shared_out() -> None:
    towns = [f"3210031{i:02d}" for i in range(60)]
    shares = [Share(i, 2) for i in range(2)]
    taken_by = {}
    for town in towns:
        takers = [s.index for s in shares if s.takes(record(filed(town)))]
        assert takers == [zlib.crc32(town.encode()) % 2]
        taken_by[town] = takers[0]
    assert min(Counter(taken_by.values()).values()) >= 20  # neither process idles on a county of 60
    assert all(Share(0, 1).takes(record(filed(town))) for town in towns)  # one process takes everything
