"""Photos in the console (issue #29), its services answered by a fake transport: the filing form
sends photos to intake's multipart filing (and no photo to the JSON one), refusals beside the
field (`photos[1]`: the second photo; the filing's own fields under `filing.` beside their
inputs), the matter's thumbnails on the task page through the console's own address, streamed on
privately with the person's token, and the citizen's status page with its photos while the access
code stays out of every address."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jwt

from console.accounts import Person
from console.errors import label

from .test_citizen_answer import CLERK, FILED, FORM, HOLDER, QINGHE, STATUS, TICKET
from .test_console_lifecycle import COMMAND, SECRET, _console, problem

PHOTO_ID = "0b6e4d2a-7c1e-4b8e-9a43-2f5d7e9c1a10"
OTHER_ID = "5f0c2e8b-1d3a-4c6e-8b7f-9a0d1e2f3a4b"
JPEG = b"\xff\xd8\xff\xe0" + b"photo" * 100 + b"\xff\xd9"
THUMB = b"\xff\xd8\xff\xe0thumb\xff\xd9"
TASK_ID = "00000000-0000-0000-0000-0000000000bb"
SEEN = {"attachment_id": PHOTO_ID, "content_type": "image/jpeg", "size": len(JPEG), "width": 2016, "height": 1512,
        "sha256": "ab" * 32}


def _parts(request: httpx.Request) -> dict[str, list[tuple[str | None, bytes]]]:
    """A multipart body's parts by name: (file name, bytes) each."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    parts: dict[str, list[tuple[str | None, bytes]]] = {}
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, body = chunk.split(b"\r\n\r\n", 1)
        disposition = head.decode()
        name = re.search(r'name="([^"]+)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        assert name is not None
        parts.setdefault(name.group(1), []).append((filename.group(1) if filename else None, body[:-2]))
    return parts


def _filing_answer(refusal: httpx.Response | None = None) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path in ("/v1/filings", "/v1/requests"):
            return refusal or httpx.Response(201, json=FILED)
        return httpx.Response(200, json=[])  # the catalog
    return answer


async def test_the_filing_form_takes_photos_from_the_camera_made_smaller_by_its_own_script() -> None:
    async for browser, _ in _console(_filing_answer(), [], CLERK):
        page = (await browser.get("/intake?item=S001")).text
        script = await browser.get("/static/photos.js")
    assert 'enctype="multipart/form-data"' in page
    (photo_input,) = re.findall(r'<input type="file"[^>]*>', page)
    for attribute in ('name="photos"', 'accept="image/*"', 'capture="environment"', " multiple"):
        assert attribute in photo_input, attribute
    limits = json.loads(re.search(r"data-photos-max=\"([^\"]+)\"", photo_input).group(1).replace("&#34;", '"'))  # type: ignore[union-attr]
    assert limits["S001"] == 3 and set(limits) >= {"S001"}  # each item's photos_max from the town's catalog
    assert "本事项最多可附 3 张照片" in page
    assert '<script src="/static/photos.js" defer></script>' in page and "<script>" not in page  # no inline script
    assert script.status_code == 200 and "createImageBitmap" in script.text and "imageOrientation" in script.text
    assert "2048" in script.text and "0.85" in script.text and '"image/jpeg"' in script.text
    assert "0x0112" in script.text  # the original's EXIF goes on the copy, its orientation 1


async def test_a_filing_with_photos_goes_to_intakes_multipart_filing_with_its_json_and_each_photo() -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_filing_answer(), seen, CLERK):
        got = await browser.post("/intake", data={"csrf": csrf, **FORM},
                                 files=[("photos", ("a.jpg", JPEG, "image/jpeg")), ("photos", ("b.jpg", THUMB, "image/jpeg"))])
    assert got.status_code == 201, got.text
    assert '<dd data-testid="photo-count">2 张（已清除位置等信息后保存）</dd>' in got.text
    (sent,) = [r for r in seen if r.method == "POST"]
    assert sent.url.path == "/v1/filings" and sent.headers["Idempotency-Key"] == "k1"
    parts = _parts(sent)
    (filing,) = parts["filing"]
    assert json.loads(filing[1]) == {"channel": "window", "item_code": "S001", "description": "为新生儿办理户口登记",
                                     "village": "V01", "location": "青禾村五组",
                                     "citizen": {"name": "群众", "phone": "13800000000"}}
    assert parts["photos"] == [("a.jpg", JPEG), ("b.jpg", THUMB)]  # in the order chosen


async def test_a_filing_without_photos_goes_to_the_json_filing_as_before() -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_filing_answer(), seen, CLERK):
        # A file input left empty still sends one nameless, empty part.
        got = await browser.post("/intake", data={"csrf": csrf, **FORM}, files=[("photos", ("", b"", "application/octet-stream"))])
    assert got.status_code == 201, got.text
    (sent,) = [r for r in seen if r.method == "POST"]
    assert sent.url.path == "/v1/requests" and json.loads(sent.content)["item_code"] == "S001"
    assert 'data-testid="photo-count"' not in got.text


async def test_a_refused_photo_is_named_beside_the_field_and_the_filings_own_fields_beside_theirs() -> None:
    refused = problem(422, "request.invalid", errors=[
        {"code": "photo.not_a_photo", "field": "photos[1]"},
        {"code": "value.missing", "field": "filing.location"}])
    async for browser, csrf in _console(_filing_answer(refused), [], CLERK):
        got = await browser.post("/intake", data={"csrf": csrf, **FORM},
                                 files=[("photos", ("a.jpg", JPEG, "image/jpeg")), ("photos", ("x.pdf", b"%PDF", "application/pdf"))])
    assert got.status_code == 422
    assert ('<span class="field-error" role="alert" data-field="photos[1]">'
            "第2张照片：这不是照片，请用手机拍摄的照片（常见照片格式均可）</span>") in got.text
    assert '<span class="field-error" role="alert" data-field="location">地点：' in got.text
    assert "刚才选的 2 张照片没有保存，请重新选择。" in got.text  # a browser keeps no file in a page sent back
    assert "English" not in got.text


async def test_too_many_photos_is_said_beside_the_input_with_the_items_limit() -> None:
    refused = problem(422, "attachment.too_many", field="photos", params={"limit": 3})
    async for browser, csrf in _console(_filing_answer(refused), [], CLERK):
        got = await browser.post("/intake", data={"csrf": csrf, **FORM},
                                 files=[("photos", (f"{i}.jpg", JPEG, "image/jpeg")) for i in range(4)])
    assert '<span class="field-error" role="alert" data-field="photos">照片：这里最多只能附 3 张照片</span>' in got.text


def test_a_photos_field_reads_as_which_photo() -> None:
    assert label("photos[0]") == "第1张照片" and label("photos[8]") == "第9张照片" and label("photos") == "照片"


def _matter_and_photo(request: httpx.Request) -> httpx.Response:
    if request.url.path == f"/v1/tasks/{TASK_ID}":
        return httpx.Response(200, json={"task_id": TASK_ID, "ticket_no": TICKET, "town_code": QINGHE, "status": "accepted",
                                         "colour": "yellow", "item_code": "S001", "kind": "service", "post": "P01",
                                         "assignee": "s017", "assigned_via": "A", "respond_by": None,
                                         "resolve_by": None, "overdue": False, "reopen_count": 0})
    if request.url.path == f"/v1/tasks/{TASK_ID}/matter":
        return httpx.Response(200, json={
            "ticket_no": TICKET, "request_id": "r", "town_code": QINGHE, "status": "dispatched", "colour": "yellow",
            "channel": "window", "item_code": "S001", "item_name": "新生儿落户", "village": "V01", "village_name": None,
            "description": "路灯不亮", "location": "青禾村五组", "target": None, "filed_by": "s010",
            "proxy_agent_id": None, "filed_at": "2026-12-07T08:12:00+08:00", "photos": [SEEN]})
    if request.url.path == f"/v1/requests/{TICKET}/photos/{PHOTO_ID}":
        thumbnail = request.url.params.get("variant") == "thumbnail"
        return httpx.Response(200, content=THUMB if thumbnail else JPEG, headers={"content-type": "image/jpeg"})
    return problem(404, "attachment.not_found")


async def test_the_task_page_shows_the_matters_thumbnails_each_a_link_to_the_full_photo() -> None:
    async for browser, _ in _console(_matter_and_photo, [], HOLDER):
        page = (await browser.get(f"/tasks/{TASK_ID}")).text
    base = f"/photos/requests/{TICKET}/{PHOTO_ID}"
    assert f'<a href="{base}" target="_blank" rel="noopener" data-testid="photo-link"><img src="{base}?variant=thumbnail"' in page
    assert "反映问题时的照片第1张（点击查看原图）" in page  # the thumbnail's words for a screen reader
    assert "amazonaws" not in page and ":8333" not in page  # never an address of the object store


async def test_a_photo_is_streamed_on_from_intake_with_the_persons_token_and_kept_in_no_cache() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(_matter_and_photo, seen, COMMAND):
        full = await browser.get(f"/photos/requests/{TICKET}/{PHOTO_ID}")
        thumb = await browser.get(f"/photos/requests/{TICKET}/{PHOTO_ID}?variant=thumbnail")
        missing = await browser.get(f"/photos/requests/{TICKET}/{OTHER_ID}")
        bad = await browser.get(f"/photos/requests/{TICKET}/not-an-id")
    assert full.status_code == 200 and full.content == JPEG and thumb.content == THUMB
    for answer in (full, thumb):
        assert answer.headers["content-type"] == "image/jpeg"
        assert answer.headers["cache-control"] == "private, no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
    asked = [r for r in seen if "/photos/" in r.url.path]
    assert [dict(r.url.params) for r in asked[:2]] == [{"variant": "photo"}, {"variant": "thumbnail"}]
    claims = jwt.decode(asked[0].headers["Authorization"].removeprefix("Bearer "), SECRET, algorithms=["HS256"],
                        audience="townflow-intake")
    assert claims["sub"] == "s030"
    assert missing.status_code == 404 and "没有找到这张照片" in missing.text
    assert missing.headers["cache-control"] == "private, no-store"
    assert bad.status_code == 422 and len(asked) == 3  # an id that is none is not asked for


async def test_a_photo_needs_a_signed_in_person() -> None:
    async for browser, _ in _console(_matter_and_photo, [], COMMAND):
        browser.cookies.clear()
        got = await browser.get(f"/photos/requests/{TICKET}/{PHOTO_ID}")
    assert got.status_code == 303 and got.headers["location"].startswith("/signin")


def _citizens_matter(request: httpx.Request) -> httpx.Response:
    if request.url.path == f"/v1/requests/{TICKET}":
        return httpx.Response(200, json={**STATUS, "photos": [SEEN, {**SEEN, "attachment_id": OTHER_ID, "stage": "after"}]})
    if request.url.path.startswith(f"/v1/requests/{TICKET}/photos/"):
        if request.url.params.get("code") != "K7QX2M":
            return problem(404, "attachment.not_found")
        thumbnail = request.url.params.get("variant") == "thumbnail"
        return httpx.Response(200, content=THUMB if thumbnail else JPEG, headers={"content-type": "image/jpeg"})
    return problem(404, "ticket.not_found")


async def test_the_citizen_sees_the_photos_with_the_access_code_never_in_an_address() -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_citizens_matter, seen, CLERK):
        browser.cookies.clear()
        browser.cookies.set("tf_session", f"a.{csrf}")  # a citizen: no one signed in
        page = (await browser.post("/status", data={"csrf": csrf, "ticket": TICKET, "code": "K7QX2M"})).text
        full = await browser.post("/status/photo", data={"csrf": csrf, "ticket": TICKET, "code": "K7QX2M",
                                                         "photo": PHOTO_ID})
        wrong = await browser.post("/status/photo", data={"csrf": csrf, "ticket": TICKET, "code": "WRONG1",
                                                          "photo": PHOTO_ID})
        forged = await browser.post("/status/photo", data={"ticket": TICKET, "code": "K7QX2M", "photo": PHOTO_ID})
    assert page.count('data-testid="thumbnail"') == 2
    assert page.count('src="data:image/jpeg;base64,') == 2  # inline: an <img> address would carry the code
    assert 'data-testid="photos-filed"' in page and 'data-testid="photos-after"' in page
    assert "反映问题时的照片" in page and "办理后的照片" in page
    assert not re.search(r'(src|href|action)="[^"]*K7QX2M', page)
    assert full.status_code == 200 and full.content == JPEG and full.headers["cache-control"] == "private, no-store"
    assert wrong.status_code == 404 and "没有找到这张照片" in wrong.text
    assert forged.status_code == 403  # the form's CSRF token, as every form's
    # No address the console called on the citizen's behalf is logged with the code? It is a query to
    # intake (as the status read's), never a page's address.
    assert all(r.headers.get("Authorization") is None for r in seen)


# --- against dispatch's and enforcement's photo routes (dispatch-photos, enforcement-evidence) ------
AFTER_ID = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
INSPECTION_ID = "11111111-2222-4333-8444-555555555555"
TASK = {"task_id": TASK_ID, "ticket_no": TICKET, "town_code": QINGHE, "status": "accepted", "colour": "yellow",
        "item_code": "S001", "kind": "service", "post": "P01", "assignee": "s017", "assigned_via": "A",
        "respond_by": None, "resolve_by": None, "overdue": False, "reopen_count": 0, "village": "V01",
        "location": "青禾村五组", "supervisions": [], "extensions": [], "callbacks": []}
AFTER = {**SEEN, "attachment_id": AFTER_ID, "stage": "after", "uploaded_by": "s017",
         "uploaded_at": "2026-12-08T10:00:00+08:00"}


def _dispatch_with_photos(task: dict[str, Any], answer_post: httpx.Response | None = None) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return answer_post or httpx.Response(200, json={"task_id": TASK_ID, "status": "completed"})
        if request.url.path == f"/v1/tasks/{TASK_ID}":
            return httpx.Response(200, json=task)
        return _matter_and_photo(request)
    return answer


async def test_the_task_page_completes_with_after_photos_when_dispatch_takes_them() -> None:
    seen: list[httpx.Request] = []
    task = {**TASK, "photos": [], "photos_max": 3, "completion_photo_required": True}
    async for browser, csrf in _console(_dispatch_with_photos(task), seen, HOLDER):
        page = (await browser.get(f"/tasks/{TASK_ID}")).text
        done = await browser.post(f"/tasks/{TASK_ID}/complete", files=[("photos", ("after.jpg", JPEG, "image/jpeg"))],
                                  data={"csrf": csrf, "from": "task", "resolution": "已扶正", "reply": "路灯杆已扶正加固。"})
    form = page[page.index('data-testid="complete-form"'):]
    assert 'enctype="multipart/form-data"' in page and re.search(r'<input type="file" name="photos"[^>]* required>', form)
    assert "本事项办结须附至少 1 张处置后照片，最多 3 张" in form
    assert done.status_code == 303 and done.headers["location"] == f"/tasks/{TASK_ID}?done=complete"
    (sent,) = [r for r in seen if r.method == "POST"]
    assert sent.url.path == f"/v1/tasks/{TASK_ID}/completions"
    parts = _parts(sent)
    assert json.loads(parts["completion"][0][1]) == {"resolution": "已扶正", "reply": "路灯杆已扶正加固。"}
    assert parts["photos"] == [("after.jpg", JPEG)]


async def test_a_refused_completion_shows_beside_its_fields_on_the_task_page() -> None:
    refused = problem(422, "request.invalid", errors=[{"code": "photo.damaged", "field": "photos[0]"},
                                                      {"code": "task.reply_blank", "field": "completion.reply"}])
    task = {**TASK, "photos": [], "photos_max": 3}
    async for browser, csrf in _console(_dispatch_with_photos(task, refused), [], HOLDER):
        got = await browser.post(f"/tasks/{TASK_ID}/complete", files=[("photos", ("after.jpg", JPEG, "image/jpeg"))],
                                 data={"csrf": csrf, "from": "task", "resolution": "已扶正", "reply": " "})
    assert got.status_code == 422
    assert '<span class="field-error" role="alert" data-field="photos[0]">第1张照片：照片已损坏' in got.text
    assert '<span class="field-error" role="alert" data-field="reply">给群众的答复：' in got.text
    assert ">已扶正</textarea>" in got.text  # what was typed is kept


async def test_without_dispatchs_photos_the_task_page_completes_as_before() -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_dispatch_with_photos(TASK), seen, HOLDER):
        page = (await browser.get(f"/tasks/{TASK_ID}")).text
        await browser.post(f"/tasks/{TASK_ID}/complete", data={"csrf": csrf, "from": "task", "resolution": "已办",
                                                                "reply": "已办理。"})
    assert 'data-testid="complete-form"' in page and 'name="photos"' not in page
    (sent,) = [r for r in seen if r.method == "POST"]
    assert sent.url.path == f"/v1/tasks/{TASK_ID}/complete" and json.loads(sent.content)["reply"] == "已办理。"


async def test_the_closure_check_shows_before_and_after_side_by_side_and_takes_its_own_photos() -> None:
    seen: list[httpx.Request] = []
    task = {**TASK, "status": "completed", "photos": [AFTER], "photos_max": 3, "reply": "路灯杆已扶正加固。"}
    async for browser, csrf in _console(_dispatch_with_photos(task), seen, COMMAND):
        page = (await browser.get(f"/board/tasks/{TASK_ID}")).text
        thumb = await browser.get(f"/photos/tasks/{TASK_ID}/{AFTER_ID}?variant=thumbnail")
        checked = await browser.post(f"/board/tasks/{TASK_ID}/verify", files=[("photos", ("check.jpg", JPEG, "image/jpeg"))],
                                     data={"csrf": csrf, "from": "task", "passed": "yes", "note": "现场已核实"})
    compared = page[page.index('data-testid="photo-comparison"'):page.index('data-testid="verify-form"')]
    assert compared.index('data-testid="compare-filed"') < compared.index('data-testid="compare-after"')
    assert f'src="/photos/requests/{TICKET}/{PHOTO_ID}?variant=thumbnail"' in compared
    assert f'src="/photos/tasks/{TASK_ID}/{AFTER_ID}?variant=thumbnail"' in compared
    assert "反映问题时的照片" in compared and "办理后的照片" in compared
    assert thumb.status_code == 404  # the fake dispatch has no such photo: shown as a page, asked of dispatch
    asked = [r for r in seen if r.url.path == f"/v1/tasks/{TASK_ID}/photos/{AFTER_ID}"]
    assert len(asked) == 1 and asked[0].url.params["variant"] == "thumbnail" and asked[0].url.host == "dispatch.test"
    assert checked.status_code == 303
    (sent,) = [r for r in seen if r.method == "POST"]
    assert sent.url.path == f"/v1/tasks/{TASK_ID}/verifications"
    parts = _parts(sent)
    assert json.loads(parts["verification"][0][1]) == {"passed": True, "note": "现场已核实"}
    assert parts["photos"] == [("check.jpg", JPEG)]


def _inspection(evidence: list[dict[str, Any]] | None) -> Any:
    inspection = {"inspection_id": INSPECTION_ID, "town_code": QINGHE, "target": "91320000MA1TEST01X",
                  "status": "started", "units": [], "created_at": "2026-12-07T08:00:00+08:00", "started_at": None,
                  "started_by": None, "finished_at": None, "officers": [], "present_units": [], "findings": [],
                  "visits_saved": 0, "assigned_officers": [], "needs": []}
    if evidence is not None:
        inspection["evidence"] = evidence

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"evidence": []})
        return httpx.Response(200, json=inspection)
    return answer


async def test_an_inspection_takes_evidence_photos_with_a_note_where_enforcement_lists_them() -> None:
    officer = Person("qh-s026", "s026", "执法员", frozenset({"staff", "officer"}), QINGHE, "青禾镇")
    seen: list[httpx.Request] = []
    evidence = {**SEEN, "note": "消防通道堆放杂物", "step": None, "uploaded_by": "s026",
                "uploaded_at": "2026-12-07T01:30:00+00:00"}
    async for browser, csrf in _console(_inspection([evidence]), seen, officer):
        page = (await browser.get(f"/enforcement/inspections/{INSPECTION_ID}")).text
        sent = await browser.post(f"/enforcement/inspections/{INSPECTION_ID}/evidence",
                                  files=[("photos", ("e.jpg", JPEG, "image/jpeg"))], data={"csrf": csrf, "note": "北侧"})
    assert f'src="/photos/inspections/{INSPECTION_ID}/{PHOTO_ID}?variant=thumbnail"' in page
    assert 'data-testid="evidence-form"' in page and "2026-12-07 09:30：消防通道堆放杂物" in page
    assert sent.status_code == 303
    (posted,) = [r for r in seen if r.method == "POST"]
    assert posted.url.path == f"/v1/inspections/{INSPECTION_ID}/evidence"
    assert _parts(posted) == {"note": [(None, "北侧".encode())], "photos": [("e.jpg", JPEG)]}
    async for browser, _ in _console(_inspection(None), [], officer):
        before = (await browser.get(f"/enforcement/inspections/{INSPECTION_ID}")).text
    assert 'data-testid="evidence"' not in before  # an enforcement without evidence: nothing shown


async def test_the_filing_forms_no_sms_box_sends_sms_opt_out_and_leaves_it_out_unticked() -> None:
    """不接收短信 (issue #31): ticked, the filing carries `sms_opt_out: true`; unticked, no such
    field at all (the body a previous release of intake takes too)."""
    async for browser, _csrf in _console(_filing_answer(), [], CLERK):
        page = (await browser.get("/intake")).text
    assert '<input type="checkbox" name="sms_opt_out" value="1"> 不接收短信' in page
    for ticked, expected in (({"sms_opt_out": "1"}, True), ({}, None)):
        seen: list[httpx.Request] = []
        async for browser, csrf in _console(_filing_answer(), seen, CLERK):
            got = await browser.post("/intake", data={"csrf": csrf, **FORM, **ticked})
        assert got.status_code == 201, got.text
        (sent,) = [r for r in seen if r.method == "POST"]
        assert json.loads(sent.content).get("sms_opt_out") is expected
