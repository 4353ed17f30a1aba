"""Issue #29 in a real browser against the real stack (its S3 server, SeaweedFS): a clerk files with
a phone photo chosen in the form's file input (a JPEG with EXIF GPS, made here), the browser makes
it smaller and upright before it goes (what was uploaded is not the file chosen, yet intake still
reads when and where it was taken), the matter's task page shows
its thumbnail and the full photo opens, served without any metadata; a file that is no photo is
refused in Chinese beside the field; the citizen sees the photo with the access code; axe-core and
the no-English check pass on every new page."""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid

import asyncpg
import pytest
from PIL import Image
from playwright.async_api import Locator, Page, Request, expect

from devstack.stack import Stack
from tests.conftest import QINGHE, Api, eventually, filing, task_of

from .conftest import People, a_phone, assert_accessible
from .test_console_words import READ_PAGE, _planned, english_on

pytestmark = pytest.mark.stack
WIDE, HIGH = 3200, 2400  # a phone's photo, larger than the 2048 px the browser makes it


def phone_photo() -> bytes:
    """A JPEG as a phone writes it: the camera, the time and the GPS position where it was taken, and
    orientation 6 (to be turned 90° clockwise: the scene is upright as 2400 wide and 3200 high)."""
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "TestPhone"
    exif.get_ifd(0x8769)[0x9003] = "2026:11:09 08:15:30"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (30.0, 49.0, 52.0), "E", (106.0, 55.0, 16.0)
    scene = Image.linear_gradient("L").resize((WIDE, HIGH)).convert("RGB")
    grain = Image.effect_noise((WIDE, HIGH), 40).convert("RGB")  # a photo's grain: no tiny file
    out = io.BytesIO()
    Image.blend(scene, grain, 0.3).save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


async def _loaded(image: Locator) -> None:
    """Until the browser has the image's bytes: a thumbnail loads after its page, later on a busy
    machine; one that never loads fails here (the wait's timeout)."""
    handle = await image.element_handle()
    await image.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)


async def _no_english(page: Page, where: str) -> None:
    assert not (found := english_on(await page.evaluate(READ_PAGE))), f"{where}: {found}"


async def _checked(page: Page, where: str) -> None:
    await assert_accessible(page, where)
    await _no_english(page, where)


async def _fill_the_filing(clerk: Page, location: str) -> None:
    await clerk.goto("/intake?item=S001")
    await clerk.locator("textarea[name=description]").fill("村口路灯杆倾斜，附现场照片")
    await clerk.locator("select[name=village]").select_option("V01")
    await clerk.locator("input[name=location]").fill(location)
    await clerk.locator("input[name='citizen.name']").fill("拍照群众")
    await clerk.locator("input[name='citizen.phone']").fill(a_phone())


async def test_a_photo_filed_at_the_window_is_made_smaller_shown_to_staff_and_to_the_citizen(
        people: People, county_stack: Stack) -> None:
    assert county_stack.postgres is not None
    photo = phone_photo()
    # The clerk's browser enforces the console's Content-Security-Policy: the resizing script runs
    # as a file of the console's, never inline.
    clerk = await people.signed_in("qh-s010", enforce_csp=True)
    uploads: list[Request] = []

    def sent(request: Request) -> None:
        if request.method == "POST" and request.url.split("?")[0].endswith("/intake"):
            uploads.append(request)
    clerk.on("request", sent)

    location = f"青禾村路灯{uuid.uuid4().int % 10**8:08d}号"
    await _fill_the_filing(clerk, location)
    await expect(clerk.get_by_test_id("photos-hint")).to_have_text(re.compile("本事项最多可附 3 张照片"))
    await clerk.locator("input[name=photos]").set_input_files(
        [{"name": "IMG_0001.JPG", "mimeType": "image/jpeg", "buffer": photo}])
    await clerk.get_by_role("button", name="受理并出具回执").click()
    await expect(clerk.get_by_role("heading", name=re.compile("受理回执"))).to_be_visible()
    await expect(clerk.get_by_test_id("photo-count")).to_have_text(re.compile("^1 张"))
    ticket, code = await clerk.get_by_test_id("ticket").inner_text(), await clerk.get_by_test_id("code").inner_text()

    # Made smaller in the browser: what went up is far smaller than the photo chosen, and intake's
    # digest of the file it received is not the chosen file's.
    # (the body's length as sent: the devtools protocol gives no file's bytes of a multipart post)
    (upload,) = uploads
    uploaded = int((await upload.all_headers())["content-length"])
    assert uploaded < len(photo) / 2, (uploaded, len(photo))
    intake_db = await asyncpg.connect(county_stack.postgres.dsn("intake"))
    try:
        request_id = await intake_db.fetchval("SELECT request_id FROM requests WHERE ticket_no = $1", ticket)
        (stored,) = await intake_db.fetch(
            "SELECT attachment_id, original_sha256, original_bytes, width, height, captured_at, latitude, longitude"
            " FROM attachments WHERE request_id = $1", request_id)
    finally:
        await intake_db.close()
    assert stored["original_sha256"] != hashlib.sha256(photo).hexdigest()
    assert stored["original_bytes"] < len(photo) / 2  # what intake received: the copy
    # When and where it was taken still reached intake (the EXIF carried onto the smaller copy), kept
    # in its database alone.
    assert stored["captured_at"] == "2026-11-09T08:15:30"  # as the camera wrote it, read by intake
    assert (round(stored["latitude"], 4), round(stored["longitude"], 4)) == (30.8311, 106.9211)
    # Turned upright in the browser by its orientation (6), at most 2048 px on its longer side.
    assert (stored["width"], stored["height"]) == (1536, 2048), dict(stored)

    # The command centre's task page: the thumbnail, and the full photo on a tap.
    task = await task_of(Api(county_stack, "dispatch", QINGHE), str(request_id))
    board = await people.signed_in("qh-s030")
    await board.goto(f"/board/tasks/{task['task_id']}")
    thumbnail = board.get_by_test_id("matter-photos").get_by_test_id("thumbnail")
    await expect(thumbnail).to_have_count(1)
    await _loaded(thumbnail)  # the bytes came
    await _checked(board, "the task page with the matter's photo")
    async with board.context.expect_page() as opened:
        await board.get_by_test_id("matter-photos").get_by_test_id("photo-link").click()
    full = await opened.value
    await full.wait_for_load_state()
    href = await board.get_by_test_id("matter-photos").get_by_test_id("photo-link").get_attribute("href")
    assert href == f"/photos/requests/{ticket}/{stored['attachment_id']}" and full.url.endswith(href)
    served = await board.request.get(href)
    assert served.status == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "private, no-store"
    body = await served.body()
    header = body[:body.index(b"\xff\xda")]  # metadata is in the segments before the image data
    assert b"Exif" not in header and b"TestPhone" not in header and b"GPS" not in header  # no position, no camera
    image = Image.open(io.BytesIO(body))
    assert not image.getexif() and image.size == (1536, 2048)

    # The assignee's own task page shows it too.
    holder = await people.signed_in(f"qh-{task['assignee']}")
    await holder.goto(f"/tasks/{task['task_id']}")
    await expect(holder.get_by_test_id("matter-photos").get_by_test_id("thumbnail")).to_have_count(1)
    await _checked(holder, "the assignee's task page with the matter's photo")

    # A file that is no photo: refused in Chinese beside the field, the rest of the form kept.
    await _fill_the_filing(clerk, f"{location}乙")
    await clerk.locator("input[name=photos]").set_input_files(
        [{"name": "说明.txt", "mimeType": "text/plain", "buffer": "这不是照片".encode()}])
    await clerk.get_by_role("button", name="受理并出具回执").click()
    beside = clerk.locator('.field-error[data-field="photos[0]"]')
    await expect(beside).to_have_text("第1张照片：这不是照片，请用手机拍摄的照片（常见照片格式均可）")
    await expect(clerk.get_by_test_id("photos-again")).to_be_visible()
    await expect(clerk.locator("input[name=location]")).to_have_value(f"{location}乙")
    checker = await people.signed_in("qh-s010")  # axe is injected as a script: a context that lets it
    await checker.goto("/intake?item=S001")
    await _checked(checker, "the filing form with its photo input")
    await _no_english(clerk, "the filing form with a photo refused")

    # The citizen, with the access code (the town shows citizens their photos).
    citizen = await people.anonymous(phone=True)
    await citizen.goto(f"/status?ticket={ticket}")
    await citizen.locator("input[name=code]").fill(code)
    await citizen.get_by_role("button", name="查询").click()
    shown = citizen.get_by_test_id("photos-filed").get_by_test_id("thumbnail")
    await expect(shown).to_have_count(1)
    await _loaded(shown)
    assert code not in (await shown.get_attribute("src") or "")
    await _checked(citizen, "the citizen's status page with the matter's photo")
    async with citizen.context.expect_page() as opened:
        await citizen.get_by_test_id("photo-link").click()
    tapped = await opened.value
    await tapped.wait_for_load_state()
    assert code not in tapped.url
    assert await tapped.evaluate("document.contentType") == "image/jpeg"


def small_photo(shade: int) -> bytes:
    """A small JPEG of one shade (the after and check photos need no size of their own)."""
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (shade, 120, 60)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def test_the_after_photo_is_taken_on_the_task_page_and_checked_beside_the_filings(
        people: People, county_stack: Stack) -> None:
    """Dispatch's photos (after photos on completion, the command centre's at the check) in the
    console: the assignee completes from the task page with a photo, the command centre sees the
    filing's and the after photo side by side and checks with one of its own, the citizen sees the
    after photo too."""
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    filed = await intake.call("POST", "/v1/filings", as_=("s010", "clerk"), files=[
        ("photos", ("before.jpg", small_photo(30), "image/jpeg"))], data={"filing": json.dumps(
            filing(location=f"青禾村{uuid.uuid4().int % 10**8:08d}号路灯"), ensure_ascii=False)})
    assert filed.status_code == 201, filed.text
    ticket, code = filed.json()["ticket_no"], filed.json()["access_code"]
    task = await task_of(dispatch, filed.json()["request_id"])
    tid, assignee = task["task_id"], task["assignee"]
    accepted = await dispatch.call("POST", f"/v1/tasks/{tid}/accept", as_=(assignee, "staff"))
    assert accepted.status_code == 200, accepted.text

    holder = await people.signed_in(f"qh-{assignee}")
    # 我的任务: the matter's photo beside its row (dispatch's list read names it), opening the task.
    await holder.goto(f"/tasks?q={ticket}")
    listed = holder.locator(f"#task-{tid}").get_by_test_id("list-thumbnail-filed")
    await expect(listed).to_have_count(1)
    await _loaded(listed)
    assert "反映问题时的照片" in (await listed.get_attribute("alt") or "")
    assert await holder.locator(f"#task-{tid}").get_by_test_id("list-thumbnail-after").count() == 0
    await listed.click()
    await holder.wait_for_url(re.compile(rf".*/tasks/{tid}$"))
    form = holder.get_by_test_id("complete-form")
    await form.locator("textarea[name=resolution]").fill("已更换灯泡")
    await form.locator("textarea[name=reply]").fill("路灯已修好，请您查看。")
    await form.locator("input[name=photos]").set_input_files(
        [{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": small_photo(200)}])
    await _checked(holder, "the task page's completion form with its photo input")
    await form.get_by_role("button", name="办结").click()
    await holder.wait_for_url(re.compile(rf".*/tasks/{tid}\?done=complete$"))
    after = holder.get_by_test_id("photos-after").get_by_test_id("thumbnail")
    await expect(after).to_have_count(1)
    await _loaded(after)

    board = await people.signed_in("qh-s030")
    # The board's closure checks: before and after beside the ticket, each read once although the
    # live part is swapped in every 2 s (photos are no-store and each read is audited): the browser
    # keeps the images of its page by address (HTML's list of available images), measured here.
    reads: list[str] = []
    board.on("request", lambda r: reads.append(r.url) if "/photos/" in r.url else None)
    await board.goto("/board")
    row = board.locator(f"#check-{tid}")
    for stage in ("filed", "after"):
        shown = row.get_by_test_id(f"list-thumbnail-{stage}")
        await expect(shown).to_have_count(1)
        await _loaded(shown)
        assert await shown.locator("xpath=..").get_attribute("href") == f"/board/tasks/{tid}"
    await _checked(board, "the board with the closure check's thumbnails")
    read_before = len(reads)
    for _ in range(2):  # two swaps of the live part: the row is a new element each time
        await row.evaluate("e => { e.dataset.swapped = 'not yet'; }")
        await board.wait_for_function(
            "id => { const r = document.getElementById(id); return r !== null && r.dataset.swapped === undefined; }",
            arg=f"check-{tid}", timeout=15_000)
    for stage in ("filed", "after"):
        await _loaded(row.get_by_test_id(f"list-thumbnail-{stage}"))
    assert len(reads) == read_before, reads[read_before:]
    # The task search's list too, and a thumbnail opens the task.
    await board.goto(f"/board?q={ticket}")
    found = board.locator(f"#found-{tid}").get_by_test_id("list-thumbnail-after")
    await _loaded(found)
    await found.click()
    await board.wait_for_url(re.compile(rf".*/board/tasks/{tid}$"))
    compared = board.get_by_test_id("photo-comparison")
    for side in ("compare-filed", "compare-after"):
        shown = compared.get_by_test_id(side).get_by_test_id("thumbnail")
        await expect(shown).to_have_count(1)
        await _loaded(shown)
    await _checked(board, "the closure check with before and after side by side")
    verify = board.get_by_test_id("verify-form")
    await verify.locator("input[name=note]").fill("现场核实，路灯正常")
    await verify.locator("input[name=photos]").set_input_files(
        [{"name": "check.jpg", "mimeType": "image/jpeg", "buffer": small_photo(120)}])
    await verify.get_by_role("button", name="提交核查").click()
    await expect(board.get_by_test_id("task-status")).to_have_text("已结案")
    await expect(board.get_by_test_id("photos-check").get_by_test_id("thumbnail")).to_have_count(1)
    await _checked(board, "a closed task with its check photo")

    citizen = await people.anonymous(phone=True)

    async def after_photo_shown() -> bool | None:
        await citizen.goto(f"/status?ticket={ticket}")
        await citizen.locator("input[name=code]").fill(code)
        await citizen.get_by_role("button", name="查询").click()
        await expect(citizen.get_by_test_id("status")).to_be_visible()
        return await citizen.get_by_test_id("photos-after").count() == 1 or None
    await eventually(after_photo_shown, what="intake to list the after photo")
    await expect(citizen.get_by_test_id("photos-filed").get_by_test_id("thumbnail")).to_have_count(1)
    await _checked(citizen, "the citizen's status page with the filing's and the after photo")


async def test_an_officer_records_evidence_on_the_inspection_page(people: People, county_stack: Stack) -> None:
    """Enforcement's evidence (执法全过程记录) in the console: on a started inspection's page an officer
    of its team uploads a photo with a note; it is listed with who took it, and opens in full."""
    intake, enforcement = Api(county_stack, "intake", QINGHE), Api(county_stack, "enforcement", QINGHE)
    target = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    filed = await intake.call("POST", "/v1/requests", as_=("s010", "clerk"), json=filing(
        channel="hotline", item_code="E003", description="消防通道堵塞", village="V02", location="东湖村工业园",
        target=target))
    assert filed.status_code == 201, filed.text
    inspection = await _planned(enforcement, target)
    iid = inspection["inspection_id"]
    started = await enforcement.call("POST", f"/v1/inspections/{iid}/start", as_=("s026", "officer"),
                                     json={"officers": ["s026", "s027"]})
    assert started.status_code == 200, started.text

    officer = await people.signed_in("qh-s026", phone=True)
    await officer.goto(f"/enforcement/inspections/{iid}")
    await expect(officer.get_by_test_id("evidence")).to_contain_text("尚无证据照片")
    form = officer.get_by_test_id("evidence-form")
    await form.locator("input[name=photos]").set_input_files(
        [{"name": "scene.jpg", "mimeType": "image/jpeg", "buffer": small_photo(90)}])
    await form.locator("input[name=note]").fill("北侧消防通道堆放纸箱")
    await _checked(officer, "the inspection page's evidence form")
    await form.get_by_role("button", name="上传证据").click()
    shown = officer.get_by_test_id("evidence-photos").get_by_test_id("thumbnail")
    await expect(shown).to_have_count(1)
    await _loaded(shown)
    await expect(officer.get_by_test_id("evidence-notes")).to_contain_text("北侧消防通道堆放纸箱")
    await expect(officer.get_by_test_id("evidence-notes")).to_contain_text("程刚")
    await _checked(officer, "the inspection page with its evidence")
    href = await officer.get_by_test_id("evidence-photos").get_by_test_id("photo-link").get_attribute("href")
    assert href is not None and href.startswith(f"/photos/inspections/{iid}/")
    served = await officer.request.get(href)
    assert served.status == 200 and served.headers["cache-control"] == "private, no-store"
    assert Image.open(io.BytesIO(await served.body())).size == (640, 480)
