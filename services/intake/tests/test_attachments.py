"""Photos on a filing (intake/attachments.py) on the fake unit of work and a fake object store:
what is stored and recorded together, what is refused before anything is stored, what is removed
when the filing is not written, and who reads a photo. The photos are real images made here."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import uuid
from typing import Any

import pytest
from PIL import Image

from intake import attachments, flows
from services.intake.tests.fakes import FakeDatabase, FakeObjects, deps
from services.intake.tests.test_flows import BAILU, BAILU_COMMAND, CLERK, COMMAND, NOW, QINGHE, filing
from townflow_shared import events
from townflow_shared.auth import Principal
from townflow_shared.problems import Refusal


def photo(width: int = 120, height: int = 90) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "JPEG")
    return out.getvalue()


def intake_deps(db: FakeDatabase, objects: FakeObjects | None) -> flows.Deps:
    return dataclasses.replace(deps(db, NOW), objects=objects)  # type: ignore[arg-type]


async def file_with(db: FakeDatabase, objects: FakeObjects | None, photos: list[bytes], actor: Principal = CLERK,
                    key: str | None = None, **overrides: Any) -> tuple[int, dict[str, Any]]:
    return await attachments.file_with_photos(intake_deps(db, objects), actor, attachments.FileWithPhotos(
        flows.FileMatter(filing(**overrides), key), tuple(photos)))


async def refused(command: Any) -> Refusal:
    with pytest.raises(Refusal) as refusal:
        await command
    return refusal.value


async def test_photos_are_stored_recorded_and_referenced_by_the_filings_event() -> None:
    db, objects = FakeDatabase(), FakeObjects()
    originals = [photo(), photo(90, 120)]
    status, answer = await file_with(db, objects, originals)
    assert status == 201
    rows = sorted(db.tables.attachments.values(), key=lambda r: r["seq"])
    assert [r["request_id"] for r in rows] == [uuid.UUID(answer["request_id"])] * 2
    assert all(r["stored_key"].startswith(f"intake/towns/{QINGHE}/matters/{answer['request_id']}/") for r in rows)
    assert set(objects.objects) == {k for r in rows for k in (r["stored_key"], r["thumbnail_key"])}
    (filed,) = db.published
    assert isinstance(filed, events.RequestFiled)
    refs = filed.data.attachments
    assert [r.original_sha256 for r in refs] == [hashlib.sha256(p).hexdigest() for p in originals]
    assert [r.sha256 for r in refs] == [hashlib.sha256(objects.objects[r["stored_key"]]).hexdigest() for r in rows]
    assert [r.size for r in refs] == [len(objects.objects[r["stored_key"]]) for r in rows]
    assert "towns/" not in filed.model_dump_json()  # references, never where the bytes are


async def test_more_photos_than_the_item_allows_is_refused_before_anything_is_stored() -> None:
    db, objects = FakeDatabase(), FakeObjects()
    refusal = await refused(file_with(db, objects, [photo()] * 4))
    assert (refusal.code.name, refusal.field, refusal.params["limit"]) == ("attachment.too_many", "photos", 3)
    assert objects.objects == {} and db.published == []


async def test_each_bad_photo_is_named_and_nothing_is_stored() -> None:
    db, objects = FakeDatabase(), FakeObjects()
    refusal = await refused(file_with(db, objects, [photo(), b"not a photo", photo()[:200]]))
    assert [(e.field, e.code) for e in refusal.errors] == [("photos[1]", "photo.not_a_photo"),
                                                            ("photos[2]", "photo.damaged")]
    assert objects.objects == {} and db.tables.requests == {}


async def test_without_an_object_store_photos_are_refused_with_503_and_no_matter_is_filed() -> None:
    db = FakeDatabase()
    refusal = await refused(file_with(db, None, [photo()]))
    assert (refusal.code.name, refusal.status) == ("attachment.storage_unavailable", 503)
    objects = FakeObjects()
    objects.down = True
    assert (await refused(file_with(db, objects, [photo()]))).code.name == "attachment.storage_unavailable"
    assert db.tables.requests == {} and db.published == []


async def test_a_retry_answered_as_the_first_time_leaves_no_second_copy() -> None:
    db, objects = FakeDatabase(), FakeObjects()
    first = await file_with(db, objects, [photo()], key="k-1")
    kept = dict(objects.objects)
    assert await file_with(db, objects, [photo()], key="k-1") == first
    assert objects.objects == kept and len(db.tables.attachments) == 1
    # The same key with other photos is another filing: refused, and its objects removed.
    refusal = await refused(file_with(db, objects, [photo(60, 60)], key="k-1"))
    assert refusal.code.name == "idempotency.key_reused" and objects.objects == kept


async def _read(db: FakeDatabase, objects: FakeObjects, ticket_no: str, attachment_id: uuid.UUID,
                actor: Principal | None, code: str | None = None) -> tuple[bytes, str]:
    return await attachments.read_photo(intake_deps(db, objects), actor, attachments.ReadPhoto(
        ticket_no, attachment_id, "photo", code))


async def test_the_towns_staff_and_the_citizen_with_the_code_read_a_photo_others_do_not() -> None:
    db, objects = FakeDatabase(), FakeObjects()
    _, answer = await file_with(db, objects, [photo()])
    (row,) = db.tables.attachments.values()
    ticket, attachment_id = answer["ticket_no"], row["attachment_id"]
    assert await _read(db, objects, ticket, attachment_id, COMMAND) == (objects.objects[row["stored_key"]], "image/jpeg")
    assert (await _read(db, objects, ticket, attachment_id, None, answer["access_code"]))[1] == "image/jpeg"
    for actor, code in ((BAILU_COMMAND, None), (None, None), (None, "ABCDEFGH2")):
        refusal = await refused(_read(db, objects, ticket, attachment_id, actor, code))
        assert refusal.code.name in ("attachment.not_found", "ticket.not_found"), (actor, code)
    assert (await refused(_read(db, objects, ticket, uuid.uuid4(), COMMAND))).code.name == "attachment.not_found"


async def test_where_the_town_does_not_show_photos_the_citizens_code_reads_none() -> None:
    db, objects = FakeDatabase(), FakeObjects()
    bailu_clerk = Principal(sub="s110", roles=frozenset({"clerk"}), town=BAILU)
    _, answer = await file_with(db, objects, [photo()], actor=bailu_clerk, village="V01")
    (row,) = db.tables.attachments.values()
    refusal = await refused(_read(db, objects, answer["ticket_no"], row["attachment_id"], None, answer["access_code"]))
    assert refusal.code.name == "attachment.not_found"
    assert (await _read(db, objects, answer["ticket_no"], row["attachment_id"], BAILU_COMMAND))[1] == "image/jpeg"


# --- the after photos of the matter's task (issue #29): known by reference, read by their key ---------
def _after_photo(objects: FakeObjects, town: str, request_id: str) -> tuple[events.AttachmentRef, bytes]:
    """An after photo as dispatch stores it (its prefix, the bucket's layout) and references it."""
    from townflow_shared.objects import object_key

    attachment_id, data = uuid.uuid4(), photo(64, 48)
    for variant in ("photo", "thumbnail"):
        objects.objects[object_key("dispatch", town, request_id, attachment_id, f"{variant}.jpg")] = data + variant.encode()
    stored = data + b"photo"
    return events.AttachmentRef(attachment_id=str(attachment_id), kind="photo", content_type="image/jpeg",
                                size=len(stored), sha256=hashlib.sha256(stored).hexdigest(),
                                original_sha256=hashlib.sha256(data).hexdigest()), stored


def _completed_with(request_id: str, refs: list[events.AttachmentRef], town: str = QINGHE) -> events.TaskCompleted:
    from services.intake.tests.test_flows import event, minutes

    return event(events.TaskCompleted, events.TaskCompletedData(  # type: ignore[no-any-return]
        task_id="a-task", request_id=request_id, by="s017", resolution="已处置", completed_at=minutes(30), on_time=True,
        reply="已为您处置完毕。", attachments=refs), town, minutes(30))


async def test_the_after_photos_of_a_completion_are_listed_and_read_by_the_citizen_with_the_code() -> None:
    from services.intake.tests.test_flows import follow

    db, objects = FakeDatabase(), FakeObjects()
    _, answer = await file_with(db, objects, [photo()])
    ref, stored = _after_photo(objects, QINGHE, answer["request_id"])
    completed = _completed_with(answer["request_id"], [ref])
    await follow(db, flows.follow_task_completed, completed, completed)  # redelivered: recorded once
    assert len(db.tables.task_photos) == 1
    status = await flows.read_status(intake_deps(db, objects), None, flows.ReadStatus(
        answer["ticket_no"], answer["access_code"], flows.CitizenProof("10.0.0.1", None)))
    assert [(p.stage, p.attachment_id) for p in status.photos or []] == [
        ("filed", str(next(iter(db.tables.attachments)))), ("after", ref.attachment_id)]
    assert status.photos and status.photos[1].sha256 == ref.sha256 and status.photos[1].width is None
    read = await _read(db, objects, answer["ticket_no"], uuid.UUID(ref.attachment_id), None, answer["access_code"])
    assert read == (stored, "image/jpeg")
    thumbnail = await attachments.read_photo(intake_deps(db, objects), COMMAND, attachments.ReadPhoto(
        answer["ticket_no"], uuid.UUID(ref.attachment_id), "thumbnail", None))
    assert thumbnail[0].endswith(b"thumbnail")
    refusal = await refused(_read(db, objects, answer["ticket_no"], uuid.UUID(ref.attachment_id), BAILU_COMMAND))
    assert refusal.code.name == "attachment.not_found"


async def test_a_completion_of_another_towns_matter_records_no_photo_here() -> None:
    from services.intake.tests.test_flows import follow

    db, objects = FakeDatabase(), FakeObjects()
    _, answer = await file_with(db, objects, [])
    ref, _ = _after_photo(objects, BAILU, answer["request_id"])
    await follow(db, flows.follow_task_completed, _completed_with(answer["request_id"], [ref], town=BAILU))
    assert db.tables.task_photos == {}
