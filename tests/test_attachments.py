"""Photos on a filing (issue #29) on the stack with a real S3 server (SeaweedFS): a filing with
photos is stored cleaned (read back from S3: no metadata, upright), its event carries references
whose digests match what is stored and what was uploaded, bad photos are refused with their code
and field and nothing is left in the bucket, a photo is read only by whom intake allows (each read
recorded), and the orphan sweep removes an object no record owns and nothing else."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from PIL import Image

from devstack.stack import Stack
from intake import attachments, store
from townflow_shared import db
from townflow_shared.objects import ObjectStore, object_key

from .conftest import CLERK, COMMAND, Api, eventually, filing, task_of
from .kafka_tools import about, event_of, wait_for_record

AUDITOR = ("a900", "auditor")
BAILU = "321003107"


def phone_photo(width: int = 640, height: int = 480, orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: EXIF with the camera, the time and the GPS position of where
    it was taken, and an orientation (6: to be turned 90° clockwise)."""
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = orientation, "TestPhone"
    exif.get_ifd(0x8769)[0x9003] = "2026:11:09 08:15:30"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (30.0, 49.0, 52.0), "E", (106.0, 55.0, 16.0)
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "JPEG", exif=exif)
    return out.getvalue()


def grainy_photo(width: int = 1200, height: int = 900) -> bytes:
    """A JPEG over a megabyte (random grain compresses badly): more than a JSON body may be."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "JPEG", quality=95)
    assert len(out.getvalue()) > 1_048_576
    return out.getvalue()


def clean_copy(data: bytes) -> Image.Image:
    """A stored copy as it must be: a JPEG with nothing left of the phone's metadata (model, GPS)."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and len(image.getexif()) == 0 and "exif" not in image.info
    # Metadata is in the segments before the image data: a grainy photo's compressed grain may hold
    # any three bytes ("GPS" about once in ten runs), which says nothing of metadata.
    header = data[:data.index(b"\xff\xda")]
    assert b"TestPhone" not in header and b"GPS" not in header and b"Exif" not in header
    return image


async def reads_recorded(api: Api, attachment_id: object, action: str, count: int = 2) -> list[dict[str, Any]]:
    """The service's audit records of the reads of a photo, once there are `count` of them."""
    async def recorded() -> list[dict[str, Any]] | None:
        found = (await api.call("GET", "/v1/audit", as_=AUDITOR, params={
            "target": str(attachment_id), "action": action})).json()["records"]
        return found if len(found) == count else None
    return await eventually(recorded, what=f"{count} {action} records in {api.service}'s audit trail")


def objects_of(stack: Stack) -> ObjectStore:
    assert stack.s3 is not None and stack.s3_bucket is not None
    return ObjectStore(stack.s3.endpoint, stack.s3_bucket, stack.s3.access_key, stack.s3.secret_key)


async def stored_clean(stack: Stack, rows: list[asyncpg.Record]) -> list[bytes]:
    """The stored copy of each photo row: each a clean copy whose digest is the row's."""
    objects = objects_of(stack)
    stored = [await objects.get(row["stored_key"]) for row in rows]
    for data, row in zip(stored, rows, strict=True):
        clean_copy(data)
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
    return stored


def assert_references(refs: list[dict[str, Any]], rows: list[asyncpg.Record], stored: list[bytes],
                      originals: list[bytes]) -> None:
    """An event's photo references name the rows, in order, with the digests of the stored copies
    and of the originals uploaded."""
    assert [r["attachment_id"] for r in refs] == [str(row["attachment_id"]) for row in rows]
    assert [r["sha256"] for r in refs] == [hashlib.sha256(d).hexdigest() for d in stored]
    assert [r["original_sha256"] for r in refs] == [hashlib.sha256(o).hexdigest() for o in originals]


async def file_with_photos(intake: Api, photos: list[bytes], as_: tuple[str, ...] = CLERK,
                           **overrides: Any) -> Any:
    return await intake.call("POST", "/v1/filings", as_=as_,
                             data={"filing": json.dumps(filing(**overrides), ensure_ascii=False)},
                             files=[("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)])


async def attachment_rows(databases: dict[str, asyncpg.Pool], request_id: str) -> list[asyncpg.Record]:
    return list(await databases["intake"].fetch("SELECT * FROM attachments WHERE request_id = $1 ORDER BY seq",
                                                uuid.UUID(request_id)))


async def test_photos_are_stored_clean_and_the_event_carries_their_digests(
        stack: Stack, intake: Api, databases: dict[str, asyncpg.Pool], bootstrap: str) -> None:
    originals = [phone_photo(), grainy_photo()]
    response = await file_with_photos(intake, originals)
    assert response.status_code == 201, response.text
    filed = response.json()
    rows = await attachment_rows(databases, filed["request_id"])
    assert len(rows) == 2
    # What the original said stays in intake's database alone.
    assert rows[0]["latitude"] is not None and rows[0]["captured_at"] == "2026-11-09T08:15:30"
    for row in rows:
        assert row["stored_key"].startswith(f"intake/towns/{filed['ticket_no'][:9]}/matters/{filed['request_id']}/")
    stored = await stored_clean(stack, rows)
    assert Image.open(io.BytesIO(stored[0])).size == (480, 640)  # turned upright
    record = await wait_for_record(bootstrap, "intake.request.filed.v1", about(filed["request_id"]))
    refs = event_of(record)["data"]["attachments"]
    assert_references(refs, rows, stored, originals)
    assert [(r["kind"], r["content_type"], r["size"]) for r in refs] == [
        ("photo", "image/jpeg", len(d)) for d in stored]
    # References only: no bytes, no key, no URL, no position on the topic.
    assert len(record.value) < 4000
    assert not {"towns/", "X-Amz", "latitude", "30.8"} & {s for s in ("towns/", "X-Amz", "latitude", "30.8")
                                                          if s in record.value.decode()}
    # The command centre reads the photo and its thumbnail through intake, each read recorded.
    path = f"/v1/requests/{filed['ticket_no']}/photos/{rows[0]['attachment_id']}"
    read = await intake.call("GET", path, as_=COMMAND)
    assert read.status_code == 200 and read.content == stored[0]
    assert read.headers["content-type"] == "image/jpeg" and "no-store" in read.headers["cache-control"]
    thumbnail = await intake.call("GET", path, as_=COMMAND, params={"variant": "thumbnail"})
    assert thumbnail.status_code == 200 and max(Image.open(io.BytesIO(thumbnail.content)).size) == 320

    reads = await reads_recorded(intake, rows[0]["attachment_id"], "attachment.read")
    assert {(r["actor"], r["target_type"]) for r in reads} == {(COMMAND[0], "attachment")}
    # The staff's status view lists the photos, by reference.
    status = (await intake.call("GET", f"/v1/requests/{filed['ticket_no']}", as_=COMMAND)).json()
    assert [p["attachment_id"] for p in status["photos"]] == [str(row["attachment_id"]) for row in rows]


async def _bucket_size(stack: Stack) -> int:
    return len(await objects_of(stack).listed("intake/towns/", limit=1000))


async def test_bad_photos_are_refused_with_their_code_and_field_and_nothing_is_stored(
        stack: Stack, intake: Api) -> None:
    before = await _bucket_size(stack)
    not_a_photo = await file_with_photos(intake, [phone_photo(), b"%PDF-1.7 not a photo"])
    assert not_a_photo.status_code == 422, not_a_photo.text
    assert (not_a_photo.json()["code"], not_a_photo.json()["field"]) == ("photo.not_a_photo", "photos[1]")
    truncated = phone_photo()
    cut = await file_with_photos(intake, [truncated[: len(truncated) // 2]])
    assert (cut.status_code, cut.json()["code"], cut.json()["field"]) == (422, "photo.damaged", "photos[0]")
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")  # a few KB declaring 100 million pixels
    bombed = await file_with_photos(intake, [bomb.getvalue()])
    assert (bombed.status_code, bombed.json()["code"]) == (422, "photo.too_many_pixels")
    too_many = await file_with_photos(intake, [phone_photo(64, 48)] * 4)
    assert (too_many.status_code, too_many.json()["code"], too_many.json()["field"]) == (
        422, "attachment.too_many", "photos")
    bad_filing = await file_with_photos(intake, [phone_photo()], citizen={"name": "测试群众", "phone": "12"})
    assert bad_filing.status_code == 422 and bad_filing.json()["field"].startswith("filing.citizen")
    not_json = await intake.call("POST", "/v1/filings", as_=CLERK, data={"filing": "{not json"},
                                 files=[("photos", ("p.jpg", phone_photo(64, 48), "image/jpeg"))])
    assert (not_json.status_code, not_json.json()["code"], not_json.json()["field"]) == (
        422, "value.malformed", "filing")
    assert await _bucket_size(stack) == before


async def test_a_photo_is_read_only_by_whom_intake_allows(intake: Api) -> None:
    response = await file_with_photos(intake, [phone_photo(64, 48)])
    assert response.status_code == 201, response.text
    filed = response.json()
    status = (await intake.call("GET", f"/v1/requests/{filed['ticket_no']}", params={"code": filed["access_code"]})).json()
    (photo,) = status["photos"]  # the demo town shows citizens their photos
    path = f"/v1/requests/{filed['ticket_no']}/photos/{photo['attachment_id']}"
    citizen = await intake.call("GET", path, params={"code": filed["access_code"]})
    assert citizen.status_code == 200 and hashlib.sha256(citizen.content).hexdigest() == photo["sha256"]
    for who, params in ((None, {}), (None, {"code": "ABCDEFGH2"}), (("s901", "clerk"), {})):
        api = intake.of_town(BAILU) if who else intake  # another town's clerk
        refused = await api.call("GET", path, as_=who, params=params)
        assert refused.status_code == 404, (who, params, refused.text)
        assert refused.json()["code"] in ("attachment.not_found", "ticket.not_found")
    other = await intake.call("GET", f"/v1/requests/{filed['ticket_no']}/photos/{uuid.uuid4()}", as_=COMMAND)
    assert (other.status_code, other.json()["code"]) == (404, "attachment.not_found")


async def test_the_matter_in_front_of_its_handler_lists_its_photos_which_the_handler_may_read(
        intake: Api, dispatch: Api) -> None:
    """The console's task page shows the matter's photos (issue #29): intake's matter read lists them
    to whoever reads the matter, and the task's assignee may read each."""
    response = await file_with_photos(intake, [phone_photo(64, 48), phone_photo(48, 64, orientation=1)])
    assert response.status_code == 201, response.text
    filed = response.json()
    task = await task_of(dispatch, filed["request_id"])
    holder = (task["assignee"], "staff")

    async def matter() -> Any:
        answer = await intake.call("GET", f"/v1/tasks/{task['task_id']}/matter", as_=holder)
        return answer.json() if answer.status_code == 200 else None
    photos = (await eventually(matter, what="intake to follow the dispatch"))["photos"]
    status = (await intake.call("GET", f"/v1/requests/{filed['ticket_no']}", as_=COMMAND)).json()
    # In the order filed, as the status view lists them (which leaves out what is not set).
    assert [(p["attachment_id"], p["sha256"], p["stage"]) for p in photos] == [
        (p["attachment_id"], p["sha256"], "filed") for p in status["photos"]] and len(photos) == 2
    read = await intake.call("GET", f"/v1/requests/{filed['ticket_no']}/photos/{photos[1]['attachment_id']}",
                             as_=holder, params={"variant": "thumbnail"})
    assert read.status_code == 200 and read.headers["cache-control"] == "private, no-store"
    assert Image.open(io.BytesIO(read.content)).size[0] < Image.open(io.BytesIO(read.content)).size[1]  # 48 × 64


async def test_the_sweep_removes_an_object_no_record_owns_and_keeps_the_recorded(
        stack: Stack, intake: Api) -> None:
    response = await file_with_photos(intake, [phone_photo(64, 48)])
    assert response.status_code == 201, response.text
    filed = response.json()
    objects = objects_of(stack)
    orphan = object_key("intake", filed["ticket_no"][:9], uuid.uuid4(), uuid.uuid4(), "photo.jpg")
    await objects.put(orphan, b"left by a filing that never committed", "image/jpeg")
    assert stack.postgres is not None
    database = db.Database()
    database.use(await db.create_pool(stack.postgres.dsn("intake"), 1, 2, service="intake"))
    try:
        # Everything counts as old: only the record decides.
        await attachments.sweep_orphans(objects, store.unit_of_work(database), datetime.now(UTC) + timedelta(minutes=5))
    finally:
        await database.pool.close()
    left = {o.key for o in await objects.listed(f"intake/towns/{filed['ticket_no'][:9]}/matters/", limit=1000)}
    assert orphan not in left
    assert any(key.startswith(f"intake/towns/{filed['ticket_no'][:9]}/matters/{filed['request_id']}/") for key in left)
