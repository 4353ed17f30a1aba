"""Issue #27 items 2 and 3 in the console, its services answered by a fake transport: the receipt's
filing time, promised date, department, status address and QR code, printable narrow; the status
page's answer to the citizen, with rating offered only when the matter may be rated; the
completion form's reply reaching dispatch."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import httpx

from console.accounts import Person
from console.pages.intake import qr_svg, status_address
from console.settings import ConsoleSettings

from .test_console_lifecycle import _console

QINGHE = "321003104"
TICKET = f"{QINGHE}-20261207-00001"
CLERK = Person("qh-s010", "s010", "窗口员", frozenset({"staff", "clerk"}), QINGHE, "青禾镇")
HOLDER = Person("qh-s017", "s017", "承办人", frozenset({"staff"}), QINGHE, "青禾镇")
FILED = {"request_id": "00000000-0000-0000-0000-0000000000aa", "ticket_no": TICKET, "access_code": "K7QX2M",
         "colour": "yellow", "status": "filed", "possible_duplicates": [],
         "filed_at": "2026-12-07T00:12:00+00:00", "promised_by": "2026-12-10T00:12:00+00:00",
         "handling_module": "police", "department": "派出所"}
FORM = {"channel": "window", "item_code": "S001", "description": "为新生儿办理户口登记", "village": "V01",
        "location": "青禾村五组", "citizen.name": "群众", "citizen.phone": "13800000000", "idempotency_key": "k1"}


def _filed(body: dict[str, Any]) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/requests":
            return httpx.Response(201, json=body)
        return httpx.Response(200, json=[])  # the catalog
    return answer


async def test_the_receipt_shows_when_by_when_who_and_where_to_check_with_a_qr_code() -> None:
    async for browser, csrf in _console(_filed(FILED), [], CLERK):
        got = await browser.post("/intake", data={"csrf": csrf, **FORM})
        slip = await browser.post("/intake?slip=1", data={"csrf": csrf, **FORM})
    assert got.status_code == 201, got.text
    page = got.text
    assert '<dd data-testid="filed-at">2026-12-07 08:12</dd>' in page  # on the town's clock
    assert '<dd data-testid="promised-by">2026-12-10 08:12 前</dd>' in page
    assert '<dd data-testid="department">派出所</dd>' in page
    address = f"http://console.test/status?ticket={TICKET}"
    assert f'<p class="address" data-testid="status-address">{address}</p>' in page
    assert re.search(r'<svg role="img" aria-label="办事进度查询二维码" viewBox="0 0 \d+ \d+" class="qr">', page)
    assert 'class="receipt" id="receipt"' in page and 'class="receipt slip"' in slip.text  # ?slip=1: narrow


async def test_a_receipt_from_the_previous_release_names_the_department_from_the_catalog() -> None:
    old = {k: v for k, v in FILED.items() if k not in ("filed_at", "promised_by", "handling_module", "department")}
    async for browser, csrf in _console(_filed(old), [], CLERK):
        got = await browser.post("/intake", data={"csrf": csrf, **FORM})
    assert got.status_code == 201
    assert '<dd data-testid="department">派出所</dd>' in got.text  # S001's lead module, the police station
    assert 'data-testid="promised-by"' not in got.text and 'data-testid="filed-at"' not in got.text


def test_the_status_address_is_the_public_one_when_set_and_the_qr_code_holds_it() -> None:
    def request(public: str | None) -> Any:
        settings = ConsoleSettings(console_public_url=public)
        return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(console=SimpleNamespace(settings=settings))),
                               base_url="http://10.0.0.7:8000/")

    assert status_address(request(None), TICKET) == f"http://10.0.0.7:8000/status?ticket={TICKET}"
    assert status_address(request("https://zwt.county.example/"), TICKET) == \
        f"https://zwt.county.example/status?ticket={TICKET}"
    small, large = qr_svg("https://a.example/status?ticket=1"), qr_svg(f"https://zwt.county.example/status?ticket={TICKET}")
    assert str(small).startswith("<svg ") and str(small) != str(large)  # the code depends on the address


STATUS = {"ticket_no": TICKET, "request_id": "r", "town_code": QINGHE, "item_code": "S001", "item_name": "新生儿落户",
          "channel": "window", "colour": "yellow", "status": "completed", "village": "V01",
          "filed_at": "2026-12-07T00:12:00+00:00", "rating": None, "timeline": [],
          "stage": "answered", "may_rate": True, "reply": "已为您办理落户，请到派出所领取户口簿。",
          "replied_at": "2026-12-08T02:00:00+00:00", "handling_module": "police", "department": "派出所",
          "promised_by": "2026-12-10T00:12:00+00:00"}


async def _status_page(view: dict[str, Any]) -> str:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=view)

    async for browser, csrf in _console(answer, [], CLERK):
        got = await browser.post("/status", data={"csrf": csrf, "ticket": TICKET, "code": "K7QX2M"})
        assert got.status_code == 200
        return got.text
    raise AssertionError("no console")


async def test_the_status_page_tells_the_citizen_the_answer_who_handles_it_and_by_when() -> None:
    page = await _status_page(STATUS)
    assert '<dd data-testid="stage">已办结并答复，待核查</dd>' in page
    assert '<dd data-testid="department">派出所</dd>' in page
    assert '<dd data-testid="promised-by">2026-12-10 08:12 前</dd>' in page
    assert "已为您办理落户，请到派出所领取户口簿。" in page and '<time data-testid="replied-at">2026-12-08 10:00</time>' in page
    assert 'action="/status/rating"' in page and 'data-testid="rating-later"' not in page


async def test_rating_is_offered_only_when_the_matter_may_be_rated() -> None:
    page = await _status_page({**STATUS, "status": "in_progress", "stage": "handling", "may_rate": False,
                               "reply": None, "replied_at": None})
    assert '<dd data-testid="stage">正在办理</dd>' in page and 'data-testid="reply"' not in page
    assert 'action="/status/rating"' not in page and 'data-testid="rating-later"' in page


async def test_the_completion_form_sends_the_reply_to_dispatch() -> None:
    seen: list[httpx.Request] = []
    task_id = "00000000-0000-0000-0000-0000000000bb"
    async for browser, csrf in _console(httpx.Response(200, json={"task_id": task_id, "status": "completed",
                                                                  "on_time": True}), seen, HOLDER):
        got = await browser.post(f"/tasks/{task_id}/complete",
                                 data={"csrf": csrf, "resolution": "已登记", "reply": "已为您办理完毕。"})
    assert got.status_code == 303
    (sent,) = [r for r in seen if r.url.path == f"/v1/tasks/{task_id}/complete"]
    assert json.loads(sent.content) == {"resolution": "已登记", "reply": "已为您办理完毕。"}


async def test_the_receipt_says_a_nearby_duplicate_and_its_distance_in_chinese() -> None:
    """Issue #30: a hint of reason `nearby` reads as words and metres, not the reason's code."""
    hints = [{"ticket_no": f"{QINGHE}-20261207-00002", "item_code": "T001", "village": "V01", "status": "dispatched",
              "filed_at": "2026-12-07T08:00:00+08:00", "reason": "nearby", "location_similarity": 0.0,
              "distance_m": 29.6},
             {"ticket_no": f"{QINGHE}-20261207-00003", "item_code": "T001", "village": "V01", "status": "dispatched",
              "filed_at": "2026-12-07T08:00:00+08:00", "reason": "similar_location", "location_similarity": 0.75}]
    async for browser, csrf in _console(_filed({**FILED, "possible_duplicates": hints}), [], CLERK):
        got = await browser.post("/intake", data={"csrf": csrf, **FORM})
    assert got.status_code == 201, got.text
    assert "<td>同一事项、位置相近</td>" in got.text and "<td>相距 30 米</td>" in got.text
    assert "<td>75%</td>" in got.text and "nearby" not in got.text
