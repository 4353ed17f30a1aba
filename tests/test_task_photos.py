"""Photos of a task (issue #29) on the stack with a real S3 server (SeaweedFS): a completion with
after photos stores them clean under dispatch's keys and its event's references match the stored
bytes; an item that needs an after photo refuses a completion without one (its code and field, on
both routes); the command centre's photos at the closure check are kept with it; the citizen reads
the after photo through intake with the access code, another town's staff get 404 from both
services; each read is recorded."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from typing import Any

import asyncpg
from PIL import Image

from devstack.stack import Stack

from .conftest import COMMAND, Api, eventually, file_matter, status_of, task_of
from .kafka_tools import about, event_of, wait_for_record
from .test_attachments import BAILU, assert_references, phone_photo, reads_recorded, stored_clean

DONE = {"resolution": "已现场处置", "reply": "已为您处置完毕，现场照片见附件。"}


def as_assignee(task: dict[str, Any]) -> tuple[str, str]:
    return (task["assignee"], "staff")


async def complete_with_photos(dispatch: Api, task: dict[str, Any], photos: list[bytes],
                               body: dict[str, Any] | None = None, as_: tuple[str, ...] | None = None) -> Any:
    return await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/completions", as_=as_ or as_assignee(task),
                               data={"completion": json.dumps(body or DONE, ensure_ascii=False)},
                               files=[("photos", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)] or None)


async def rows_of(databases: dict[str, asyncpg.Pool], task_id: str) -> list[asyncpg.Record]:
    return list(await databases["dispatch"].fetch(
        "SELECT * FROM attachments WHERE task_id = $1 ORDER BY uploaded_at, seq", uuid.UUID(task_id)))


async def test_after_photos_are_stored_clean_and_the_citizen_reads_them_through_intake(
        stack: Stack, intake: Api, dispatch: Api, databases: dict[str, asyncpg.Pool], bootstrap: str) -> None:
    ticket = await file_matter(intake, item_code="T001", village="V04", location="南塘村村道 K3+100")
    task = await task_of(dispatch, ticket["request_id"])
    originals = [phone_photo(), phone_photo(320, 240, orientation=1)]
    done = await complete_with_photos(dispatch, task, originals)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"

    rows = await rows_of(databases, task["task_id"])
    assert [(r["stage"], r["seq"], r["uploaded_by"]) for r in rows] == [("after", 1, task["assignee"]),
                                                                         ("after", 2, task["assignee"])]
    assert rows[0]["latitude"] is not None  # what the original said stays in dispatch's database
    for row in rows:
        assert row["stored_key"] == (f"dispatch/towns/{ticket['ticket_no'][:9]}/matters/{ticket['request_id']}/"
                                     f"{row['attachment_id']}/photo.jpg")
    stored = await stored_clean(stack, rows)
    assert Image.open(io.BytesIO(stored[0])).size == (480, 640)  # turned upright

    record = await wait_for_record(bootstrap, "dispatch.task.completed.v1", about(ticket["request_id"]))
    refs = event_of(record)["data"]["attachments"]
    assert_references(refs, rows, stored, originals)
    assert "towns/" not in record.value.decode() and "latitude" not in record.value.decode()

    # The task's read lists them; dispatch serves them to whoever reads the task, each read recorded.
    detail = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert [(p["attachment_id"], p["stage"]) for p in detail["photos"]] == [(str(r["attachment_id"]), "after") for r in rows]
    assert (detail["photos_max"], detail["completion_photo_required"]) == (3, False)
    path = f"/v1/tasks/{task['task_id']}/photos/{rows[0]['attachment_id']}"
    read = await dispatch.call("GET", path, as_=COMMAND)
    assert read.status_code == 200 and read.content == stored[0] and "no-store" in read.headers["cache-control"]
    thumbnail = await dispatch.call("GET", path, as_=COMMAND, params={"variant": "thumbnail"})
    assert thumbnail.status_code == 200 and max(Image.open(io.BytesIO(thumbnail.content)).size) == 320
    other_town = await dispatch.of_town(BAILU).call("GET", path, as_=COMMAND)
    assert (other_town.status_code, other_town.json()["code"]) == (404, "task.not_found")

    await reads_recorded(dispatch, rows[0]["attachment_id"], "attachment.read")

    # The citizen sees the after photos on the status page, and reads them through intake.
    status = await status_of(intake, ticket, "completed")

    async def listed() -> list[dict[str, Any]] | None:
        view = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}", params={"code": ticket["access_code"]})).json()
        after = [p for p in view.get("photos") or [] if p["stage"] == "after"]
        return after if len(after) == 2 else None
    after = await eventually(listed, what="intake to list the after photos")
    assert status["status"] == "completed"
    assert [p["attachment_id"] for p in after] == [str(r["attachment_id"]) for r in rows]
    citizen_path = f"/v1/requests/{ticket['ticket_no']}/photos/{after[0]['attachment_id']}"
    citizen = await intake.call("GET", citizen_path, params={"code": ticket["access_code"]})
    assert citizen.status_code == 200 and hashlib.sha256(citizen.content).hexdigest() == after[0]["sha256"] == refs[0]["sha256"]
    for who, params in ((None, {}), (None, {"code": "ABCDEFGH2"}), (("s901", "clerk"), {})):
        api = intake.of_town(BAILU) if who else intake  # no code, a wrong one, another town's clerk
        refused = await api.call("GET", citizen_path, as_=who, params=params)
        assert refused.status_code == 404, (who, params, refused.text)


async def test_an_item_that_needs_an_after_photo_is_not_completed_without_one(
        intake: Api, dispatch: Api, databases: dict[str, asyncpg.Pool]) -> None:
    ticket = await file_matter(intake, item_code="J003", village="V05", location="北岗村后山滑坡点",
                               target=f"SITE-{uuid.uuid4().hex[:8]}")  # a joint visit names its site
    task = await task_of(dispatch, ticket["request_id"])
    plain = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/complete", as_=as_assignee(task), json=DONE)
    without = await complete_with_photos(dispatch, task, [])
    for refused in (plain, without):
        assert refused.status_code == 422, refused.text
        assert (refused.json()["code"], refused.json()["field"]) == ("task.completion_photo_required", "photos")
    detail = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert detail["status"] == "dispatched" and detail["completion_photo_required"] is True
    bad = await complete_with_photos(dispatch, task, [b"%PDF-1.7 not a photo"])
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (422, "photo.not_a_photo", "photos[0]")
    too_many = await complete_with_photos(dispatch, task, [phone_photo(64, 48)] * 4)
    assert (too_many.status_code, too_many.json()["code"]) == (422, "attachment.too_many")
    assert await rows_of(databases, task["task_id"]) == []
    done = await complete_with_photos(dispatch, task, [phone_photo(64, 48)])
    assert done.status_code == 200, done.text


async def test_the_command_centres_check_photos_are_kept_with_the_closure_check(
        intake: Api, dispatch: Api, databases: dict[str, asyncpg.Pool], bootstrap: str) -> None:
    ticket = await file_matter(intake, item_code="T001", village="V04", location="南塘村村道 K4+200")
    task = await task_of(dispatch, ticket["request_id"])
    assert (await complete_with_photos(dispatch, task, [phone_photo(64, 48)])).status_code == 200
    path = f"/v1/tasks/{task['task_id']}/verifications"
    form = {"verification": json.dumps({"passed": True, "note": "现场核查通过"}, ensure_ascii=False)}
    photo = [("photos", ("check.jpg", phone_photo(80, 60), "image/jpeg"))]
    holder = await dispatch.call("POST", path, as_=as_assignee(task), data=form, files=photo)
    assert holder.status_code == 403, holder.text
    checked = await dispatch.call("POST", path, as_=COMMAND, data=form, files=photo)
    assert checked.status_code == 200, checked.text
    assert checked.json()["status"] == "closed"
    rows = await rows_of(databases, task["task_id"])
    assert [(r["stage"], r["uploaded_by"]) for r in rows] == [("after", task["assignee"]), ("check", COMMAND[0])]
    record = await wait_for_record(bootstrap, "dispatch.task.verified.v1", about(ticket["request_id"]))
    assert [r["attachment_id"] for r in event_of(record)["data"]["attachments"]] == [str(rows[1]["attachment_id"])]
    again = await dispatch.call("POST", path, as_=COMMAND, data=form, files=photo)
    assert (again.status_code, again.json()["code"]) == (409, "task.status_forbids")
    assert len(await rows_of(databases, task["task_id"])) == 2  # the refused check recorded nothing
