"""Event contracts: every topic has a model, envelopes round-trip, keys follow SPEC §3.1."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from townflow_shared.events import (
    EVENT_TYPES,
    TOPICS,
    InspectionDone,
    InspectionDoneData,
    RequestFiled,
    RequestFiledData,
    new_event,
)

SPEC_TOPICS = {
    "intake.request.filed.v1", "intake.request.rated.v1", "dispatch.task.dispatched.v1",
    "dispatch.task.accepted.v1", "dispatch.task.returned.v1", "dispatch.task.supervised.v1",
    "dispatch.task.completed.v1", "dispatch.task.extended.v1", "dispatch.task.verified.v1",
    "enforcement.inspection.done.v1", "enforcement.case.updated.v1",
    "enforcement.plan.published.v1", "appraisal.score.updated.v1", "appraisal.alert.raised.v1",
    # SPEC §10
    "intake.request.merged.v1", "dispatch.task.merged.v1", "dispatch.task.callback.v1",
    # issue #27: 挂起
    "dispatch.task.suspended.v1", "dispatch.task.resumed.v1",
    # issue #28: each service's audit trail
    "intake.audit.recorded.v1", "dispatch.audit.recorded.v1", "enforcement.audit.recorded.v1",
    "appraisal.audit.recorded.v1", "console.audit.recorded.v1",
    # issue #29: evidence on inspections and cases (执法全过程记录)
    "enforcement.evidence.recorded.v1",
    # issue #31: what notify tells the command centre and the officers
    "dispatch.extension.requested.v1", "dispatch.suspension.requested.v1", "enforcement.case.flagged.v1",
}
NOW = datetime(2026, 11, 23, 1, 15, 2, tzinfo=UTC)


def test_every_topic_of_the_spec_has_one_model() -> None:
    assert set(TOPICS) == SPEC_TOPICS
    for event_type in EVENT_TYPES:
        service, entity, name, version = event_type.topic.split(".")
        assert event_type.model_fields["type"].default == f"{service}.{entity}.{name}"
        assert version == f"v{event_type.model_fields['version'].default}"
        assert re.fullmatch(r"[a-z]+\.[a-z]+\.[a-z]+\.v\d+", event_type.topic)


def test_no_event_model_has_a_field_for_personal_data() -> None:
    forbidden = {"name", "phone", "id_number", "citizen_name", "citizen_phone", "citizen_id_number"}
    for event_type in EVENT_TYPES:
        data_model = event_type.model_fields["data"].annotation
        assert forbidden.isdisjoint(data_model.model_fields), event_type.topic


def test_a_matter_event_is_keyed_by_its_request_and_round_trips() -> None:
    event = new_event(RequestFiled, RequestFiledData(
        request_id="r1", ticket_no="321003104-20261123-00001", channel="window", item_code="S001",
        colour="yellow", description="d", village="V01", location="l", citizen_ref="x" * 64,
        filed_at=NOW), source="intake", town_code="321003104", subject="r1", correlation_id="r1",
        time=NOW)
    assert event.key == "r1"
    assert RequestFiled.model_validate_json(event.model_dump_json()) == event


def test_an_inspection_is_keyed_by_its_own_id() -> None:
    event = new_event(InspectionDone, InspectionDoneData(
        inspection_id="i1", target="t", task_ids=["a"], units=["land"], officers=["s026", "s027"],
        findings=[], started_at=NOW, finished_at=NOW), source="enforcement",
        town_code="321003104", subject="i1", correlation_id="r-first", time=NOW)
    assert event.key == "i1"


def test_unknown_fields_are_ignored_so_minor_versions_stay_compatible() -> None:
    event = new_event(RequestFiled, RequestFiledData(
        request_id="r1", ticket_no="t", channel="window", item_code="S001", colour="red",
        description="d", village="V01", location="l", citizen_ref="x", filed_at=NOW),
        source="intake", town_code="321003104", subject="r1", correlation_id="r1", time=NOW)
    raw = event.model_dump(mode="json")
    raw["data"]["added_in_v1_1"] = "new optional field"
    raw["extra_envelope_field"] = 1
    assert RequestFiled.model_validate(raw).data.colour == "red"
