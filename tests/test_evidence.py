"""Evidence photos (issue #29, 执法全过程记录) on the stack with a real S3 server (SeaweedFS): evidence
on an inspection and on a case is stored clean (read back from S3: no metadata) with what the
original said about when and where kept in enforcement's database alone; its event carries
digests a county department checks the bytes it reads back against; the object cannot be
overwritten (the store refuses the conditional write) and its row cannot change; only the team
records it, another town reads nothing, and bad photos are refused with their code and field with
nothing left in the bucket."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from devstack.stack import Stack
from townflow_shared.attachments import sweep_orphans
from townflow_shared.objects import ObjectExists, ObjectStore, object_key

from .conftest import COMMAND, Api, set_clocks
from .kafka_tools import event_of, wait_for_record
from .test_attachments import BAILU, clean_copy, phone_photo, reads_recorded
from .test_enforcement import CERTIFIED, OFFICER, file_for, inspection_with, new_target

OFF_TEAM = ("s028", "officer")  # an officer of the town, not on the inspection
LEADER = ("s006", "module_leader", "officer")  # 执法队长


def evidence_objects_of(stack: Stack) -> ObjectStore:
    """Where the stack keeps evidence, as enforcement writes it: its bucket under Object Lock with the
    stack's retention (the session's stack), else its one bucket."""
    assert stack.s3 is not None and stack.s3_bucket is not None
    return ObjectStore(stack.s3.endpoint, stack.s3_evidence_bucket or stack.s3_bucket, stack.s3.access_key,
                       stack.s3.secret_key, retention_days=stack.evidence_lock_days)


def _parts(photos: list[bytes], **fields: str) -> dict[str, Any]:
    return {"data": fields, "files": [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]}


async def _started(intake: Api, dispatch: Api, enforcement: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """A started inspection of a new target (team s026, s027) and the task it covers."""
    target = new_target()
    task = await file_for(intake, dispatch, "E003", target)
    inspection = await inspection_with(enforcement, target, 1)
    started = await enforcement.call("POST", f"/v1/inspections/{inspection['inspection_id']}/start", as_=OFFICER,
                                     json={"officers": ["s027"]})
    assert started.status_code == 200, started.text
    return started.json(), task


async def _rows(databases: dict[str, asyncpg.Pool], column: str, record_id: str) -> list[asyncpg.Record]:
    sql = {"inspection_id": "SELECT * FROM evidence WHERE inspection_id = $1 ORDER BY seq",
           "case_id": "SELECT * FROM evidence WHERE case_id = $1 ORDER BY seq"}[column]
    return list(await databases["enforcement"].fetch(sql, uuid.UUID(record_id)))


async def _checked_from_the_topic(stack: Stack, bootstrap: str, enforcement: Api, record: str, record_id: str,
                                  rows: list[asyncpg.Record]) -> dict[str, Any]:
    """What a county department does: the event's digests against the bytes it reads back, and
    the bucket's copy against both. The event, for further checks."""
    found = await wait_for_record(bootstrap, "enforcement.evidence.recorded.v1",
                                  lambda r: event_of(r)["data"][f"{record}_id"] == record_id)
    recorded = event_of(found)
    refs = recorded["data"]["evidence"]
    assert [r["attachment_id"] for r in refs] == [str(row["attachment_id"]) for row in rows]
    objects = evidence_objects_of(stack)
    for ref, row in zip(refs, rows, strict=True):
        read = await enforcement.call("GET", f"/v1/{record}s/{record_id}/evidence/{ref['attachment_id']}", as_=COMMAND)
        assert read.status_code == 200, read.text
        assert hashlib.sha256(read.content).hexdigest() == ref["sha256"] == row["sha256"]
        assert read.content == await objects.get(row["stored_key"])
        assert "no-store" in read.headers["cache-control"] and read.headers["content-type"] == "image/jpeg"
        clean_copy(read.content)
    # References only: no bytes, no key, no URL, no position, no capture time, no note on the topic.
    text = found.value.decode()
    assert len(found.value) < 4000
    for leaked in ("towns/", "X-Amz", "latitude", "30.8", "2026-11-09", "现场"):
        assert leaked not in text, leaked
    return dict(recorded)


async def test_inspection_evidence_is_stored_clean_and_its_event_digest_is_what_is_read_back(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api, databases: dict[str, asyncpg.Pool],
        bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    inspection, task = await _started(intake, dispatch, enforcement)
    inspection_id = inspection["inspection_id"]
    path = f"/v1/inspections/{inspection_id}/evidence"
    originals = [phone_photo(), phone_photo(320, 240, orientation=1)]
    response = await enforcement.call("POST", path, as_=OFFICER, **_parts(originals, note="现场占道经营"))
    assert response.status_code == 201, response.text
    rows = await _rows(databases, "inspection_id", inspection_id)
    assert len(rows) == 2
    # Capture time and position stay in enforcement's database alone.
    assert rows[0]["latitude"] is not None and rows[0]["captured_at"] == "2026-11-09T08:15:30"
    assert [r["original_sha256"] for r in rows] == [hashlib.sha256(o).hexdigest() for o in originals]
    town = inspection["town_code"]
    assert all(r["stored_key"].startswith(f"enforcement/towns/{town}/matters/{task['request_id']}/") for r in rows)
    # The inspection's read view lists them by reference.
    view = (await enforcement.call("GET", f"/v1/inspections/{inspection_id}", as_=COMMAND)).json()
    assert [(e["attachment_id"], e["sha256"], e["original_sha256"], e["uploaded_by"], e["note"])
            for e in view["evidence"]] == [(str(r["attachment_id"]), r["sha256"], r["original_sha256"], "s026", "现场占道经营")
                                           for r in rows]
    assert view["evidence"][0]["captured_at"] == "2026-11-09T08:15:30" and "latitude" not in view["evidence"][0]

    recorded = await _checked_from_the_topic(stack, bootstrap, enforcement, "inspection", inspection_id, rows)
    assert recorded["data"]["request_id"] == task["request_id"] and recorded["data"]["recorded_by"] == "s026"
    thumbnail = await enforcement.call("GET", f"{path}/{rows[0]['attachment_id']}", as_=COMMAND,
                                       params={"variant": "thumbnail"})
    assert thumbnail.status_code == 200 and max(Image.open(io.BytesIO(thumbnail.content)).size) == 320

    reads = await reads_recorded(enforcement, rows[0]["attachment_id"], "evidence.read")
    assert {(r["actor"], r["target_type"]) for r in reads} == {(COMMAND[0], "attachment")}

    # Who records: an officer off the team, a non-officer, another town's officer are refused.
    for who, api, code in ((OFF_TEAM, enforcement, "inspection.evidence_not_officer"),
                           (("s014", "staff"), enforcement, "auth.role_missing"),
                           (("s023", "officer"), enforcement.of_town(BAILU), "town.not_yours")):
        refused = await api.call("POST", path, as_=who, **_parts([phone_photo(64, 48)]))
        assert (refused.status_code, refused.json()["code"]) == (403, code), refused.text
    # Another town reads nothing: its reader is answered as for an inspection that does not exist.
    other = await enforcement.of_town(BAILU).call("GET", f"{path}/{rows[0]['attachment_id']}", as_=("s030", "command_centre"))
    assert (other.status_code, other.json()["code"]) == (404, "inspection.not_found")
    unknown = await enforcement.call("GET", f"{path}/{uuid.uuid4()}", as_=COMMAND)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "attachment.not_found")
    assert len(await _rows(databases, "inspection_id", inspection_id)) == 2

    # Once the result is recorded, the inspection takes no more evidence (its cases do).
    done = await enforcement.call("POST", f"/v1/inspections/{inspection_id}/result", as_=OFFICER, json={
        "officers": CERTIFIED, "present_units": inspection["units"],
        "findings": [{"task_id": task["task_id"], "outcome": "compliant"}]})
    assert done.status_code == 200, done.text
    late = await enforcement.call("POST", path, as_=OFFICER, **_parts([phone_photo(64, 48)]))
    assert (late.status_code, late.json()["code"], late.json()["params"]) == (
        409, "inspection.evidence_not_open", {"status": "done"})


async def test_case_evidence_documents_a_step_and_cannot_be_overwritten(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api, databases: dict[str, asyncpg.Pool],
        bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    inspection, task = await _started(intake, dispatch, enforcement)
    done = await enforcement.call("POST", f"/v1/inspections/{inspection['inspection_id']}/result", as_=OFFICER, json={
        "officers": CERTIFIED, "present_units": inspection["units"],
        "findings": [{"task_id": task["task_id"], "outcome": "violation", "note": "占道经营属实"}]})
    assert done.status_code == 200, done.text
    case_id = done.json()["cases"][0]
    path = f"/v1/cases/{case_id}/evidence"
    response = await enforcement.call("POST", path, as_=LEADER,
                                      **_parts([phone_photo()], note="现场询问照片", step="investigated"))
    assert response.status_code == 201, response.text
    answer = response.json()
    (row,) = await _rows(databases, "case_id", case_id)
    assert [(e["attachment_id"], e["step"], e["sha256"]) for e in answer["evidence"]] == [
        (str(row["attachment_id"]), "investigated", row["sha256"])]
    assert row["latitude"] is not None and row["captured_at"] == "2026-11-09T08:15:30"
    recorded = await _checked_from_the_topic(stack, bootstrap, enforcement, "case", case_id, [row])
    assert (recorded["data"]["step"], recorded["data"]["request_id"]) == ("investigated", task["request_id"])
    view = (await enforcement.call("GET", f"/v1/cases/{case_id}", as_=COMMAND)).json()
    assert [e["sha256"] for e in view["evidence"]] == [row["sha256"]]

    # Write-once: the store refuses a second put to the evidence's key, the bytes and their
    # recorded digest hold; the row cannot be changed or removed either.
    objects = evidence_objects_of(stack)
    with pytest.raises(ObjectExists):
        await objects.put_once(row["stored_key"], phone_photo(64, 48), "image/jpeg")
    assert hashlib.sha256(await objects.get(row["stored_key"])).hexdigest() == row["sha256"]
    for change in ("UPDATE evidence SET sha256 = 'x' WHERE attachment_id = $1",
                   "DELETE FROM evidence WHERE attachment_id = $1"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await databases["enforcement"].execute(change, row["attachment_id"])

    ahead = await enforcement.call("POST", path, as_=OFFICER, **_parts([phone_photo(64, 48)], step="decided"))
    assert (ahead.status_code, ahead.json()["code"], ahead.json()["field"]) == (
        409, "case.evidence_step_not_reached", "step")
    other = await enforcement.of_town(BAILU).call("GET", f"{path}/{row['attachment_id']}", as_=("s030", "command_centre"))
    assert (other.status_code, other.json()["code"]) == (404, "case.not_found")


async def _enforcement_objects(stack: Stack) -> int:
    return len(await evidence_objects_of(stack).listed("enforcement/towns/", limit=1000))


async def test_bad_photos_are_refused_with_their_code_and_field_and_nothing_is_stored(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api, databases: dict[str, asyncpg.Pool]) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    inspection, _ = await _started(intake, dispatch, enforcement)
    path = f"/v1/inspections/{inspection['inspection_id']}/evidence"
    before = await _enforcement_objects(stack)
    not_a_photo = await enforcement.call("POST", path, as_=OFFICER, **_parts([phone_photo(), b"%PDF-1.7 not a photo"]))
    assert (not_a_photo.status_code, not_a_photo.json()["code"], not_a_photo.json()["field"]) == (
        422, "photo.not_a_photo", "photos[1]")
    truncated = phone_photo()
    cut = await enforcement.call("POST", path, as_=OFFICER, **_parts([truncated[: len(truncated) // 2]]))
    assert (cut.status_code, cut.json()["code"], cut.json()["field"]) == (422, "photo.damaged", "photos[0]")
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")  # a few KB declaring 100 million pixels
    bombed = await enforcement.call("POST", path, as_=OFFICER, **_parts([bomb.getvalue()]))
    assert (bombed.status_code, bombed.json()["code"], bombed.json()["field"]) == (422, "photo.too_many_pixels", "photos[0]")
    too_many = await enforcement.call("POST", path, as_=OFFICER, **_parts([phone_photo(32, 24)] * 10))
    assert (too_many.status_code, too_many.json()["code"], too_many.json()["field"]) == (
        422, "attachment.too_many", "photos")
    none = await enforcement.call("POST", path, as_=OFFICER, data={"note": "没有照片"})
    assert (none.status_code, none.json()["field"]) == (422, "photos")
    assert await _enforcement_objects(stack) == before
    assert await _rows(databases, "inspection_id", inspection["inspection_id"]) == []


def _s3_client(stack: Stack) -> Any:
    """A plain boto3 client with the bucket's own credentials (an owner of it): what someone holding
    them could do outside Townflow."""
    assert stack.s3 is not None
    return boto3.session.Session().client(
        "s3", endpoint_url=stack.s3.endpoint, aws_access_key_id=stack.s3.access_key,
        aws_secret_access_key=stack.s3.secret_key, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))


async def test_evidence_under_object_lock_cannot_be_deleted_by_the_buckets_owner_and_orphans_are_only_hidden(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api, databases: dict[str, asyncpg.Pool]) -> None:
    """The session's stack keeps evidence in a bucket of its own under Object Lock (issue #29 item
    4): each object is retained in COMPLIANCE mode, so the store itself refuses to delete its
    version or shorten its retention, even to the bucket's owner; a delete without a version only
    hides it behind a marker, and the recorded bytes stay. The orphan sweep's delete is such a
    marker: an orphan leaves the listing, its bytes stay until the retention ends."""
    assert stack.s3_evidence_bucket is not None and stack.evidence_lock_days == 1
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    inspection, _ = await _started(intake, dispatch, enforcement)
    response = await enforcement.call("POST", f"/v1/inspections/{inspection['inspection_id']}/evidence",
                                      as_=OFFICER, **_parts([phone_photo(320, 240)], note="现场照片"))
    assert response.status_code == 201, response.text
    (row,) = await _rows(databases, "inspection_id", inspection["inspection_id"])
    key, bucket, s3 = row["stored_key"], stack.s3_evidence_bucket, _s3_client(stack)
    assert stack.s3_bucket is not None
    with pytest.raises(KeyError):  # in the evidence bucket, not the deployment's
        await ObjectStore(stack.s3.endpoint, stack.s3_bucket, stack.s3.access_key, stack.s3.secret_key).get(key)
    for stored in (key, row["thumbnail_key"]):
        retention = await asyncio.to_thread(s3.get_object_retention, Bucket=bucket, Key=stored)
        until = retention["Retention"]["RetainUntilDate"]
        assert retention["Retention"]["Mode"] == "COMPLIANCE"
        assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(days=1), until
    (version,) = (await asyncio.to_thread(s3.list_object_versions, Bucket=bucket, Prefix=key))["Versions"]

    def refused(call: Callable[..., Any], key: str = key, **params: Any) -> str:
        with pytest.raises(ClientError) as caught:
            call(Bucket=bucket, Key=key, **params)
        return str(caught.value.response["Error"]["Code"])

    # The store refuses: deleting the version (with or without the governance bypass), shortening
    # its retention or turning it into governance mode.
    assert await asyncio.to_thread(refused, s3.delete_object, VersionId=version["VersionId"]) == "AccessDenied"
    assert await asyncio.to_thread(refused, s3.delete_object, VersionId=version["VersionId"],
                                   BypassGovernanceRetention=True) == "AccessDenied"
    soon = {"Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(minutes=1)}
    assert await asyncio.to_thread(refused, s3.put_object_retention, VersionId=version["VersionId"],
                                   Retention=soon) == "AccessDenied"
    batch = await asyncio.to_thread(s3.delete_objects, Bucket=bucket, Delete={
        "Objects": [{"Key": key, "VersionId": version["VersionId"]}]})
    assert [e["Code"] for e in batch.get("Errors", [])] == ["AccessDenied"]
    # Written once there too: a second conditional put is refused.
    with pytest.raises(ObjectExists):
        await evidence_objects_of(stack).put_once(key, phone_photo(64, 48), "image/jpeg")
    # A delete without a version is a marker: the key reads as gone, the version's bytes are the
    # recorded ones (a county restores it by removing the marker).
    await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=key)
    kept = await asyncio.to_thread(s3.get_object, Bucket=bucket, Key=key, VersionId=version["VersionId"])
    assert hashlib.sha256(await asyncio.to_thread(kept["Body"].read)).hexdigest() == row["sha256"]

    # The orphan sweep in that bucket: an object no row records (a recording whose transaction
    # failed) is hidden behind a marker; its version stays, locked, until its retention ends.
    orphan = object_key("enforcement", inspection["town_code"], uuid.uuid4(), uuid.uuid4(), "photo.jpg")
    await evidence_objects_of(stack).put_once(orphan, phone_photo(64, 48), "image/jpeg")

    async def known(ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return {r["attachment_id"] for r in await databases["enforcement"].fetch(
            "SELECT attachment_id FROM evidence WHERE attachment_id = ANY($1)", ids)}
    await sweep_orphans(evidence_objects_of(stack), "enforcement", known, datetime.now(UTC) + timedelta(minutes=1))
    listed = [o.key for o in await evidence_objects_of(stack).listed("enforcement/towns/", limit=1000)]
    assert orphan not in listed and row["thumbnail_key"] in listed  # the recorded thumbnail was no orphan
    (locked,) = (await asyncio.to_thread(s3.list_object_versions, Bucket=bucket, Prefix=orphan))["Versions"]
    assert await asyncio.to_thread(refused, s3.delete_object, orphan, VersionId=locked["VersionId"]) == "AccessDenied"
