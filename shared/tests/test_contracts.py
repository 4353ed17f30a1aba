"""Event contracts: published versions only ever gain optional fields, and the AsyncAPI documents
checked in are the ones the code generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from townflow_shared.contracts import breaking_changes, current_schemas

SNAPSHOTS = Path(__file__).resolve().parents[2] / "docs" / "contracts"


@pytest.mark.parametrize("topic", sorted(current_schemas()))
def test_published_event_versions_stay_compatible(topic: str) -> None:
    snapshot = SNAPSHOTS / f"{topic}.schema.json"
    assert snapshot.exists(), f"no contract snapshot for {topic}: run python -m devstack.contracts"
    problems = breaking_changes(json.loads(snapshot.read_text(encoding="utf-8")), current_schemas()[topic])
    assert problems == [], f"{topic} changed incompatibly; publish a new major version instead: {problems}"


class Inner(BaseModel):
    code: str


class V1(BaseModel):
    a: str
    b: int
    kind: Literal["x", "y"]
    inner: Inner
    items: list[Inner]


def _schema(model: type[BaseModel]) -> dict:  # type: ignore[type-arg]
    return model.model_json_schema(mode="serialization")


def test_adding_an_optional_field_or_an_enum_value_is_compatible() -> None:
    class V1b(V1):
        c: str | None = None
        kind: Literal["x", "y", "z"]  # type: ignore[assignment]

    assert breaking_changes(_schema(V1), _schema(V1b)) == []


def test_removing_retyping_or_requiring_a_field_is_breaking() -> None:
    class Removed(BaseModel):
        a: str
        kind: Literal["x", "y"]
        inner: Inner
        items: list[Inner]

    class Retyped(BaseModel):
        a: str
        b: str
        kind: Literal["x"]
        inner: Inner
        items: list[Inner]

    class InnerChanged(BaseModel):
        number: int

    class Nested(BaseModel):
        a: str
        b: int
        kind: Literal["x", "y"]
        inner: InnerChanged
        items: list[Inner]

    class Required(V1):
        c: str

    assert breaking_changes(_schema(V1), _schema(Removed)) == ["b: removed"]
    retyped = breaking_changes(_schema(V1), _schema(Retyped))
    assert any(p.startswith("b: type changed") for p in retyped) and any(p.startswith("kind:") for p in retyped)
    assert breaking_changes(_schema(V1), _schema(Nested))[0].startswith("inner.")
    assert breaking_changes(_schema(V1), _schema(Required)) == ["c: now required"]
