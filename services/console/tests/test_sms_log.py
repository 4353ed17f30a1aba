"""短信记录 on a task's page (issue #31): intake's log of the SMS to the matter's citizen, for those
intake shows it to (the town's clerks and command centre), in words and on the town's clock; a
holder's page does not ask for it. Intake's answers by a fake transport."""

from __future__ import annotations

from typing import Any

import httpx

from console import labels

from .test_citizen_answer import HOLDER, TICKET
from .test_console_lifecycle import COMMAND, _console, problem
from .test_photos import TASK_ID, _matter_and_photo

# What intake's GET /v1/requests/{ticket_no}/sms answers: UTC here, so the page's times are its own.
LOGGED = [
    {"kind": "filed", "status": "sent", "created_at": "2026-12-07T00:12:00+00:00", "hold_until": None,
     "attempts": 1, "last_error": None, "sent_at": "2026-12-07T00:13:00+00:00"},
    {"kind": "completed", "status": "pending", "created_at": "2026-12-07T13:30:00+00:00",
     "hold_until": "2026-12-08T00:00:00+00:00", "attempts": 0, "last_error": "quiet hours: held until 08:00",
     "sent_at": None},
    {"kind": "callback", "status": "skipped", "created_at": "2026-12-07T13:30:00+00:00",
     "hold_until": "2026-12-08T13:30:00+00:00", "attempts": 0, "last_error": "already rated", "sent_at": None},
]


def _with_sms(request: httpx.Request) -> httpx.Response:
    if request.url.path == f"/v1/requests/{TICKET}/sms":
        return httpx.Response(200, json=LOGGED)
    return _matter_and_photo(request)


def _rows(page: str) -> list[str]:
    return [row.split("</tr>")[0] for row in page.split('<tr data-testid="sms-row-')[1:]]


async def test_the_command_centre_reads_each_sms_kind_status_and_times_in_words_on_the_towns_clock() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(_with_sms, seen, COMMAND):
        page = (await browser.get(f"/board/tasks/{TASK_ID}")).text
    assert "短信记录" in page
    filed, completed, callback = _rows(page)
    assert "受理短信" in filed and "已发送" in filed and "2026-12-07 08:12" in filed and "2026-12-07 08:13" in filed
    assert "办结短信" in completed and "静默时段暂缓" in completed and "不早于 2026-12-08 08:00" in completed
    assert "回访邀请" in callback and "未发送：群众已评价" in callback
    assert [r.url.path for r in seen if r.url.path.endswith("/sms")] == [f"/v1/requests/{TICKET}/sms"]


async def test_a_holders_page_does_not_ask_for_the_sms_log_and_a_refusal_is_said_in_its_place() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(_with_sms, seen, HOLDER):
        page = (await browser.get(f"/tasks/{TASK_ID}")).text
    assert "短信记录" not in page and not [r for r in seen if r.url.path.endswith("/sms")]

    def refused(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sms"):
            return problem(404, "sms.ticket_not_found", ticket=TICKET)
        return _matter_and_photo(request)

    async for browser, _ in _console(refused, [], COMMAND):
        page = (await browser.get(f"/board/tasks/{TASK_ID}")).text
    assert "短信记录" in page and "受理短信" not in page


def test_each_status_in_words() -> None:
    def status(**message: Any) -> str:
        return labels.sms_status({"hold_until": None, "attempts": 0, "last_error": None} | message)

    assert status(status="sent") == "已发送"
    assert status(status="pending") == "等待发送"
    assert status(status="pending", attempts=3, last_error="gateway unavailable: ConnectError") == "等待发送（已尝试 3 次）"
    assert status(status="pending", hold_until="x", last_error="quiet hours: held until 08:00") == "静默时段暂缓"
    assert status(status="pending", hold_until="x") == "等待发送"  # the callback's day: not quiet hours
    assert status(status="skipped", last_error="no mobile number") == "未发送：未留手机号码"
    assert status(status="skipped", last_error="personal data erased") == "未发送：群众个人信息已按期删除"
    assert status(status="failed", last_error="isv.MOBILE_NUMBER_ILLEGAL: 138****5678 invalid") == "未发送：号码无效"
    assert status(status="failed", last_error="isv.SOMETHING_NEW: x") == "未发送：短信平台拒收"
