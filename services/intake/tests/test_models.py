"""The request models refuse exactly what their schemas (the OpenAPI document) do not allow: the
fuzzer sends what a schema allows and expects no 422 for it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from intake import models
from townflow_shared.types import NOT_BLANK_PATTERN


def body(**overrides: Any) -> dict[str, Any]:
    return {"channel": "window", "item_code": "S001", "description": "为新生儿办理户口登记", "village": "V01",
            "location": "青禾村五组", "citizen": {"name": "测试群众", "phone": "13800000000"}} | overrides


def refused(data: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        models.FileRequest.model_validate(data)
    except ValidationError as e:
        return [(".".join(str(p) for p in error["loc"]), error["type"]) for error in e.errors()]
    return []


@pytest.mark.parametrize(("channel", "field"), list(models.CHANNEL_FIELDS.items()))
def test_a_channels_own_field_is_required_as_the_schema_says(channel: str, field: str) -> None:
    schema = models.FileRequest.model_json_schema()
    [rule] = [r for r in schema["allOf"] if r["if"]["properties"]["channel"]["const"] == channel]
    assert rule["then"]["required"] == [field]
    assert rule["then"]["properties"][field] == {"type": "string", "pattern": NOT_BLANK_PATTERN}
    for missing in ({}, {field: None}, {field: " \t"}, {field: "\n\x85\u2028\x1e"}):
        # The pattern refuses what the model trims to nothing (\x85 and \x1e too, which \S keeps).
        assert re.search(NOT_BLANK_PATTERN, missing.get(field) or "") is None
        assert refused(body(channel=channel, **missing)) == [(field, "filing.channel_field_missing")], missing
    assert refused(body(channel=channel, **{field: " x "})) == []
    assert refused(body(**{field: " "})) == []  # another channel's field: trimmed, not required


def test_the_citizen_is_reached_by_phone_or_id_number_as_the_schema_says() -> None:
    schema = models.Citizen.model_json_schema()
    assert {tuple(branch["required"]) for branch in schema["anyOf"]} == {("phone",), ("id_number",)}
    assert refused(body(citizen={"name": "某人"})) == [("citizen", "citizen.contact_missing")]
    assert refused(body(citizen={"name": "某人", "phone": None, "id_number": None})) == [
        ("citizen", "citizen.contact_missing")]
    assert refused(body(citizen={"name": "某人", "id_number": "32100319900101123X"})) == []


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("phone", "+86 138-0000-0000", True), ("phone", "1234", False), ("phone", "12345\n", False),
    ("phone", "١٢٣٤٥٦", False), ("id_number", "32100319900101123x", True), ("id_number", "3210031990010112", False),
    ("id_number", "٣٢١٠٠٣١٩٩٠٠١٠١١٢٣X", False),  # Arabic-Indic digits are digits to Python's \d
])
def test_phone_and_id_number_are_taken_exactly_as_their_patterns_say(field: str, value: str, ok: bool) -> None:
    pattern = models.Citizen.model_json_schema()["properties"][field]["anyOf"][0]["pattern"]
    assert (re.search(pattern.removesuffix("$") + r"\Z", value) is not None) == ok  # `$` as JSON Schema reads it
    assert (refused(body(citizen={"name": "某人", field: value})) == []) == ok


def test_optional_identifiers_are_measured_as_sent_as_the_schema_says() -> None:
    assert refused(body(target=" ")) == []
    assert refused(body(target=" " + "9" * 64)) == [("target", "string_too_long")]


@pytest.mark.parametrize(("value", "ok"), [("321003104", True), ("32100310", False), ("321003104\n", False),
                                           ("３２１００３１０４", False)])
def test_a_town_code_is_nine_digits(value: str, ok: bool) -> None:
    assert (refused(body(town_code=value)) == []) == ok


@pytest.mark.parametrize(("period", "valid"), [("2027-03", True), ("2100-12", True), ("0000-01", False),
                                               ("1999-12", False), ("2027-13", False), ("2027-3", False)])
def test_a_period_of_the_record_of_reads_is_a_month_the_calendar_has(period: str, valid: bool) -> None:
    adapter = TypeAdapter(models.Period)
    if valid:
        assert adapter.validate_python(period) == period
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(period)
