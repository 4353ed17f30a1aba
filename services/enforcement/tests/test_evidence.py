"""Evidence photos (enforcement/evidence.py, issue #29) on the fake unit of work and a fake object
store with S3's conditional write: what is stored write-once and recorded with its event, who may
record and when, what is refused before anything is stored, what is forgotten when the recording
is not written, who reads a piece of evidence, and what the sweep removes. Real images made here."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from enforcement import evidence, rules
from enforcement.deps import Deps
from services.enforcement.tests.fakes import FakeObjects
from services.enforcement.tests.test_flows import BAILU, NOW, OFFICER, QINGHE, World, refused, run
from townflow_shared import attachments, events
from townflow_shared.auth import Principal
from townflow_shared.county import County

OFF_TEAM = Principal(sub="s028", roles=frozenset({"officer"}), town=QINGHE)
LEADER = Principal(sub="s006", roles=frozenset({"module_leader", "officer"}), town=QINGHE)
BAILU_OFFICER = Principal(sub="s023", roles=frozenset({"officer"}), town=BAILU)
COMMAND = Principal(sub="s030", roles=frozenset({"command_centre"}), town=QINGHE)
BAILU_COMMAND = Principal(sub="s026", roles=frozenset({"command_centre"}), town=BAILU)


def photo(width: int = 120, height: int = 90, gps: bool = True) -> bytes:
    """A JPEG as a phone writes it: the time, and where it was taken."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:11:23 08:40:00"
    if gps:
        position = exif.get_ifd(0x8825)
        position[1], position[2], position[3], position[4] = "N", (30.0, 49.0, 52.0), "E", (106.0, 55.0, 16.0)
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "JPEG", exif=exif)
    return out.getvalue()


class EvidenceWorld(World):
    def __init__(self, county: County | None = None, objects: FakeObjects | None = None) -> None:
        super().__init__(*([county] if county else []))
        self.objects = objects
        self.deps: Deps = dataclasses.replace(self.deps, objects=objects)

    def on_inspection(self, inspection_id: str, photos: list[bytes], actor: Principal = OFFICER,
                      note: str = "现场占道经营") -> Any:
        return evidence.record_inspection_evidence(self.deps, actor, evidence.RecordInspectionEvidence(
            inspection_id, tuple(photos), note))

    def on_case(self, case_id: str, photos: list[bytes], step: str | None = None, actor: Principal = OFFICER) -> Any:
        return evidence.record_case_evidence(self.deps, actor, evidence.RecordCaseEvidence(
            case_id, tuple(photos), "询问笔录现场照片", step))

    def recorded(self) -> list[events.EvidenceRecorded]:
        return [e for e in self.transactions.published if isinstance(e, events.EvidenceRecorded)]


def world_with_store() -> tuple[EvidenceWorld, FakeObjects]:
    objects = FakeObjects()
    return EvidenceWorld(objects=objects), objects


# --- recording on an inspection -----------------------------------------------------------------
def test_inspection_evidence_is_stored_clean_recorded_and_referenced_by_its_event() -> None:
    world, objects = world_with_store()
    inspection_id, task = world.started("91EVIDENCE")
    originals = [photo(), photo(90, 120)]
    answer = run(world.on_inspection(inspection_id, originals))
    rows = sorted(world.store.evidence.values(), key=lambda r: r["seq"])
    assert [r["seq"] for r in rows] == [1, 2]
    assert all(r["stored_key"].startswith(f"enforcement/towns/{QINGHE}/matters/{task.request_id}/") for r in rows)
    assert set(objects.objects) == {k for r in rows for k in (r["stored_key"], r["thumbnail_key"])}
    # What the original said stays in the row alone; the stored copy says nothing.
    assert rows[0]["latitude"] is not None and rows[0]["captured_at"] == "2026-11-23T08:40:00"
    assert all(b"GPS" not in objects.objects[r["stored_key"]] for r in rows)
    (recorded,) = world.recorded()
    data = recorded.data
    assert (data.inspection_id, data.case_id, data.step, data.request_id) == (inspection_id, None, None, task.request_id)
    assert recorded.key == task.request_id and recorded.subject == inspection_id
    assert [r.sha256 for r in data.evidence] == [hashlib.sha256(objects.objects[r["stored_key"]]).hexdigest()
                                                 for r in rows]
    assert [r.original_sha256 for r in data.evidence] == [hashlib.sha256(p).hexdigest() for p in originals]
    assert (data.recorded_by, data.recorded_at) == ("s026", NOW)
    wire = recorded.model_dump_json()
    assert not {"towns/", "latitude", "30.8", "现场占道经营", "2026-11-23T08:40"} & {
        s for s in ("towns/", "latitude", "30.8", "现场占道经营", "2026-11-23T08:40") if s in wire}
    # The inspection's view lists it by reference.
    assert [(e.attachment_id, e.sha256, e.note, e.uploaded_by) for e in answer.evidence] == [
        (r["attachment_id"], r["sha256"], "现场占道经营", "s026") for r in rows]
    assert answer.evidence[0].captured_at == "2026-11-23T08:40:00"


def test_a_second_recording_numbers_after_the_first() -> None:
    world, _ = world_with_store()
    inspection_id, _ = world.started("91TWICE")
    run(world.on_inspection(inspection_id, [photo()]))
    answer = run(world.on_inspection(inspection_id, [photo(), photo()], actor=LEADER))
    assert [e.uploaded_by for e in answer.evidence] == ["s026", "s006", "s006"]
    assert sorted(r["seq"] for r in world.store.evidence.values()) == [1, 2, 3]


def test_an_inspection_without_a_matter_keys_its_evidence_by_its_own_id() -> None:
    world, objects = world_with_store()
    inspection_id = run(world.store.create_inspection(QINGHE, "91PLANNED", ["enforcement"], NOW))
    run(world.store.set_inspection(inspection_id, status="started", started_at=NOW, assigned_officers=["s026", "s027"]))
    run(world.on_inspection(str(inspection_id), [photo()]))
    (row,) = world.store.evidence.values()
    assert row["stored_key"].startswith(f"enforcement/towns/{QINGHE}/matters/{inspection_id}/")
    assert set(objects.objects) == {row["stored_key"], row["thumbnail_key"]}
    (recorded,) = world.recorded()
    assert recorded.data.request_id is None and recorded.key == str(inspection_id)


@pytest.mark.parametrize(("actor", "code", "status"), [
    (OFF_TEAM, "inspection.evidence_not_officer", 403),  # an officer not on its team
    (BAILU_OFFICER, "town.not_yours", 403),  # another town's officer acting on it
])
def test_only_its_team_or_leader_records_an_inspections_evidence(actor: Principal, code: str, status: int) -> None:
    world, objects = world_with_store()
    inspection_id, _ = world.started("91WHO")
    refusal = refused(world.on_inspection(inspection_id, [photo()], actor=actor))
    assert (refusal.code.name, refusal.code.status) == (code, status)
    assert objects.objects == {} and world.store.evidence == {} and world.recorded() == []


def test_evidence_is_recorded_only_while_the_inspection_is_under_way() -> None:
    world, objects = world_with_store()
    world.dispatched("91PLAN")
    planned = str(world.planned("91PLAN")["inspection_id"])
    assert refused(world.on_inspection(planned, [photo()])).params == {"status": "planned"}
    case_id = world.case()
    done = str(world.store.cases[uuid.UUID(case_id)]["inspection_id"])
    refusal = refused(world.on_inspection(done, [photo()]))
    assert (refusal.code.name, refusal.params) == ("inspection.evidence_not_open", {"status": "done"})
    assert objects.objects == {}
    assert refused(world.on_inspection(str(uuid.uuid4()), [photo()])).code.name == "inspection.not_found"


def test_bad_photos_are_named_and_nothing_is_stored() -> None:
    world, objects = world_with_store()
    inspection_id, _ = world.started("91BAD")
    refusal = refused(world.on_inspection(inspection_id, [photo(), b"not a photo", photo()[:200]]))
    assert [(e.field, e.code) for e in refusal.errors] == [("photos[1]", "photo.not_a_photo"),
                                                            ("photos[2]", "photo.damaged")]
    too_many = refused(world.on_inspection(inspection_id, [photo(16, 16)] * 10))
    assert (too_many.code.name, too_many.field, too_many.params["limit"]) == ("attachment.too_many", "photos", 9)
    assert objects.objects == {} and world.store.evidence == {}


def test_without_an_object_store_evidence_is_refused_with_503_after_the_callers_check() -> None:
    world = EvidenceWorld(objects=None)
    inspection_id, _ = world.started("91NOSTORE")
    refusal = refused(world.on_inspection(inspection_id, [photo()]))
    assert (refusal.code.name, refusal.code.status) == ("attachment.storage_unavailable", 503)
    assert refused(world.on_inspection(inspection_id, [photo()], actor=OFF_TEAM)).code.status == 403
    assert world.store.evidence == {}


def test_a_store_that_fails_mid_put_leaves_nothing_and_records_nothing() -> None:
    world, objects = world_with_store()
    inspection_id, _ = world.started("91DOWN")
    objects.down = True
    assert refused(world.on_inspection(inspection_id, [photo()])).code.status == 503
    objects.down = False
    assert objects.objects == {} and world.store.evidence == {}


def test_a_record_that_moved_on_between_the_put_and_the_recording_forgets_the_objects() -> None:
    world, objects = world_with_store()
    inspection_id, _ = world.started("91RACE")

    def result_posted_meanwhile() -> None:
        world.store.inspections[uuid.UUID(inspection_id)]["status"] = "done"
    objects.after_put = result_posted_meanwhile
    assert refused(world.on_inspection(inspection_id, [photo()])).code.name == "inspection.evidence_not_open"
    assert objects.objects == {} and world.store.evidence == {} and world.recorded() == []


# --- write-once ---------------------------------------------------------------------------------
def test_a_put_to_a_key_that_has_an_object_is_refused_and_that_object_is_left_alone() -> None:
    objects = FakeObjects()
    (first,) = attachments.placed("enforcement", QINGHE, "m1", [run(attachments.cleaned([photo()], _limits()))[0]])
    run(attachments.put(objects, [first], once=True))
    recorded = dict(objects.objects)
    # Another photo placed under the same keys (no code does: ids are random; the store holds anyway).
    (other,) = attachments.placed("enforcement", QINGHE, "m1", run(attachments.cleaned([photo(64, 64)], _limits())))
    clash = dataclasses.replace(other, attachment_id=first.attachment_id, stored_key=first.stored_key,
                                thumbnail_key=first.thumbnail_key)
    refusal = refused(attachments.put(objects, [clash], once=True))
    assert refusal.code.name == "attachment.storage_unavailable"
    assert objects.objects == recorded  # the recorded bytes and their digest hold
    assert hashlib.sha256(objects.objects[first.stored_key]).hexdigest() == first.sha256


def _limits() -> Any:
    from enforcement.settings import EnforcementSettings
    from townflow_shared.photos import PhotoLimits
    return PhotoLimits.of(EnforcementSettings())


# --- recording on a case ------------------------------------------------------------------------
def test_case_evidence_documents_its_current_step_or_a_named_one() -> None:
    world, _ = world_with_store()
    case_id = world.case()
    answer = run(world.on_case(case_id, [photo()]))
    assert [e.step for e in answer.evidence] == ["filed"]
    answer = run(world.on_case(case_id, [photo()], step="investigated", actor=LEADER))
    assert [e.step for e in answer.evidence] == ["filed", "investigated"]
    recorded = world.recorded()
    case = world.store.cases[uuid.UUID(case_id)]
    assert [(e.data.case_id, e.data.step, e.data.request_id, e.data.inspection_id) for e in recorded] == [
        (case_id, "filed", case["request_id"], None), (case_id, "investigated", case["request_id"], None)]
    rows = sorted(world.store.evidence.values(), key=lambda r: r["seq"])
    assert all(r["stored_key"].startswith(f"enforcement/towns/{QINGHE}/matters/{case['request_id']}/") for r in rows)
    assert [e.data.evidence[0].sha256 for e in recorded] == [r["sha256"] for r in rows]


def test_case_evidence_is_refused_for_a_step_not_reached_or_a_closed_case() -> None:
    world, objects = world_with_store()
    case_id = world.case()
    refusal = refused(world.on_case(case_id, [photo()], step="decided"))
    assert (refusal.code.name, refusal.field, refusal.params["steps"]) == (
        "case.evidence_step_not_reached", "step", ["filed", "investigated"])
    world.store.cases[uuid.UUID(case_id)]["step"] = "closed"
    assert refused(world.on_case(case_id, [photo()])).code.name == "case.closed"
    transferred = world.case("criminal")
    assert refused(world.on_case(transferred, [photo()])).code.name == "case.transferred"
    assert refused(world.on_case(case_id, [photo()], actor=BAILU_OFFICER)).code.name == "town.not_yours"
    assert objects.objects == {} and world.store.evidence == {}


def test_the_step_evidence_documents() -> None:
    assert rules.evidence_step("filed", ["filed"], None) == ("filed", None)
    assert rules.evidence_step("reviewed", ["filed", "investigated", "reviewed"], "investigated") == ("investigated", None)
    assert rules.evidence_step("decided", ["filed", "investigated", "reviewed", "decided"], "closed") == ("closed", None)
    assert rules.evidence_step("filed", ["filed"], "reviewed")[1] is not None
    assert rules.evidence_step("filed", ["filed"], "transferred")[1].code.name == "case.step_unknown"  # type: ignore[union-attr]


# --- reading ------------------------------------------------------------------------------------
def test_evidence_is_read_by_whoever_reads_the_record_and_each_read_is_its_own() -> None:
    world, objects = world_with_store()
    inspection_id, _ = world.started("91READ")
    answer = run(world.on_inspection(inspection_id, [photo()]))
    attachment_id = answer.evidence[0].attachment_id
    row = world.store.evidence[attachment_id]

    def read(actor: Principal, record: str = inspection_id, kind: Any = "inspection", variant: Any = "photo") -> Any:
        return evidence.read_evidence(world.deps, actor, evidence.ReadEvidence(kind, record, attachment_id, variant))

    assert run(read(COMMAND)) == (objects.objects[row["stored_key"]], "image/jpeg")
    assert run(read(COMMAND, variant="thumbnail"))[0] == objects.objects[row["thumbnail_key"]]
    assert refused(read(BAILU_COMMAND)).code.name == "inspection.not_found"  # another town's: as if none
    other_id, _ = world.started("91OTHER")
    assert refused(read(COMMAND, record=other_id)).code.name == "attachment.not_found"  # not that record's
    case_id = world.case()
    assert refused(read(COMMAND, record=case_id, kind="case")).code.name == "attachment.not_found"


# --- the orphan sweep ---------------------------------------------------------------------------
def test_the_sweep_removes_only_old_objects_no_evidence_records() -> None:
    world, objects = world_with_store()
    inspection_id, _ = world.started("91SWEEP")
    run(world.on_inspection(inspection_id, [photo()]))
    kept = dict(objects.objects)
    orphan = f"enforcement/towns/{QINGHE}/matters/m/{uuid.uuid4()}/photo.jpg"
    intakes = f"intake/towns/{QINGHE}/matters/m/{uuid.uuid4()}/photo.jpg"
    for key in (orphan, intakes):
        run(objects.put(key, b"x", "image/jpeg"))
    later = datetime.now(UTC) + timedelta(hours=2)
    assert run(evidence.sweep_orphans(objects, world.deps, later)) == 1  # type: ignore[arg-type]
    assert set(objects.objects) == set(kept) | {intakes}
    assert run(evidence.sweep_orphans(objects, world.deps, datetime.now(UTC) - timedelta(hours=1))) == 0  # type: ignore[arg-type]
