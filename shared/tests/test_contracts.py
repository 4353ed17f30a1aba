"""Event contracts (SPEC §3.1, §11): published versions only ever gain optional fields, never an
enum value a closed consumer refuses; each version's snapshot holds every field it ever published;
the AsyncAPI documents checked in are the ones the code generates."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from devstack.contracts import snapshots_to_write, write_snapshot
from townflow_shared.contracts import (
    TOLERANT_ENUMS,
    breaking_changes,
    current_schemas,
    grown_snapshot,
    tolerant_enums_of,
    tolerates_unknown_value,
)
from townflow_shared.events import TOPICS

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "docs" / "contracts"


def _snapshot(topic: str) -> dict[str, Any]:
    path = SNAPSHOTS / f"{topic}.schema.json"
    assert path.exists(), f"no contract snapshot for {topic}: run python -m devstack.contracts"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("topic", sorted(current_schemas()))
def test_published_event_versions_stay_compatible(topic: str) -> None:
    problems = breaking_changes(_snapshot(topic), current_schemas()[topic], tolerant=tolerant_enums_of(topic))
    assert problems == [], f"{topic} changed incompatibly; publish a new major version instead: {problems}"


def test_every_snapshot_holds_what_the_code_publishes() -> None:
    """A field added in a minor version is in the snapshot from then on (run `make contracts`)."""
    behind = snapshots_to_write(SNAPSHOTS, current_schemas())
    assert behind == {}, f"snapshots behind the code, run `python -m devstack.contracts`: {sorted(map(str, behind))}"


def _committed_versions(path: Path) -> list[tuple[str, dict[str, Any]]]:
    log = subprocess.run(["git", "log", "--format=%H", "--", str(path.relative_to(ROOT))], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [(commit, json.loads(subprocess.run(["git", "show", f"{commit}:{path.relative_to(ROOT)}"], cwd=ROOT,
                                               capture_output=True, text=True, check=True).stdout))
            for commit in log]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("topic", sorted(current_schemas()))
def test_no_snapshot_ever_lost_a_field_it_had_published(topic: str) -> None:
    """A snapshot edited by hand cannot hide a removal: every committed version of it is still
    compatible with the code."""
    current = current_schemas()[topic]
    for commit, old in _committed_versions(SNAPSHOTS / f"{topic}.schema.json"):
        problems = breaking_changes(old, current, tolerant=tolerant_enums_of(topic))
        assert problems == [], f"{topic} breaks its snapshot of {commit[:10]}: {problems}"


def test_score_updated_holds_its_minor_additions() -> None:
    """`cause_event_ids` and `correlation_ids` came in a minor version of appraisal.score.updated.v1;
    a schema mutated to drop either fails against the snapshot."""
    topic = "appraisal.score.updated.v1"
    snapshot = _snapshot(topic)
    for field in ("cause_event_ids", "correlation_ids"):
        mutated = copy.deepcopy(current_schemas()[topic])
        del mutated["$defs"]["ScoreUpdatedData"]["properties"][field]
        assert breaking_changes(snapshot, mutated) == [f"data.{field}: removed"]


def test_a_value_added_to_a_published_enum_fails_against_the_snapshot() -> None:
    """Every consumer reads `subject_type` with a closed Literal: a new value is breaking."""
    topic = "appraisal.score.updated.v1"
    assert "data.subject_type" not in TOLERANT_ENUMS.get(topic, frozenset())
    mutated = copy.deepcopy(current_schemas()[topic])
    mutated["$defs"]["ScoreUpdatedData"]["properties"]["subject_type"]["enum"].append("department")
    problems = breaking_changes(_snapshot(topic), mutated, tolerant=tolerant_enums_of(topic))
    assert len(problems) == 1 and problems[0].startswith("data.subject_type: enum gained ['department']")
    assert not tolerates_unknown_value(TOPICS[topic], "data.subject_type")


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


def test_adding_an_optional_field_is_compatible() -> None:
    class V1b(V1):
        c: str | None = None

    assert breaking_changes(_schema(V1), _schema(V1b)) == []


class V1z(V1):
    kind: Literal["x", "y", "z"]  # type: ignore[assignment]


class TolerantConsumer(BaseModel):
    """How a consumer tolerant of new values reads `kind`: the known ones, or any other string."""
    kind: Literal["x", "y"] | str
    items: list[Inner]


def test_an_enum_value_added_to_a_closed_consumer_is_breaking() -> None:
    assert breaking_changes(_schema(V1), _schema(V1z)) == [
        "kind: enum gained ['z'], which a consumer validating with the old closed set dead-letters"]
    assert not tolerates_unknown_value(V1, "kind")


def test_an_enum_value_is_compatible_only_where_the_consumer_is_tolerant_and_proven_so() -> None:
    assert breaking_changes(_schema(V1), _schema(V1z), tolerant={"kind"}) == []
    assert tolerates_unknown_value(TolerantConsumer, "kind")


def test_every_enum_listed_as_tolerant_is_read_with_an_open_type() -> None:
    for topic, paths in TOLERANT_ENUMS.items():
        for path in paths:
            assert tolerates_unknown_value(TOPICS[topic], path), f"{topic} {path} is closed on the consumer side"


def test_a_field_added_in_a_minor_version_then_removed_fails(tmp_path: Path) -> None:
    """The snapshot pipeline end to end on a scratch folder: v1.0 written, v1.1 adds an optional
    field and the snapshot grows, v1.2 drops it again — breaking, and the snapshot is not rewritten."""
    class V11(V1):
        c: str | None = None

    write_snapshot(tmp_path / "t.v1.schema.json", _schema(V1))
    grown = snapshots_to_write(tmp_path, {"t.v1": _schema(V11)})
    assert list(grown) == [tmp_path / "t.v1.schema.json"] and "c" in grown[tmp_path / "t.v1.schema.json"]["properties"]
    for path, schema in grown.items():
        write_snapshot(path, schema)
    snapshot = json.loads((tmp_path / "t.v1.schema.json").read_text())
    assert breaking_changes(snapshot, _schema(V1)) == ["c: removed"]
    assert snapshots_to_write(tmp_path, {"t.v1": _schema(V1)}) == {}  # never rewritten by a breaking change
    assert grown_snapshot(snapshot, _schema(V1)) is None


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
