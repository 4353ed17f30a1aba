"""消息记录 (issue #31) in a real browser against the real stack: a matter filed, notify tells its
assignee on the town's robot, and the command centre reads that message in its delivery log — the
assignee's name, the channel and status in words, the times on the town's clock, filtered by
status; no English word, no serious accessibility finding."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from devstack.stack import Stack
from tests.conftest import QINGHE, Api, eventually, filing, task_of

from .conftest import People, assert_accessible
from .test_console_words import COUNTY, READ_PAGE, english_on

pytestmark = pytest.mark.stack
CLERK, COMMAND = ("s010", "clerk"), ("s030", "command_centre")
TOWN_ZONE = ZoneInfo(COUNTY.towns[QINGHE].info.timezone)


async def test_the_command_centre_reads_what_notify_sent_in_words_on_the_towns_clock(
        people: People, county_stack: Stack) -> None:
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    notify = Api(county_stack, "notify", QINGHE)

    async def log_of_s049() -> list[dict[str, Any]]:
        answer = await notify.call("GET", "/v1/deliveries", as_=COMMAND, params={"recipient": "s049"})
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    before = max((d["id"] for d in await log_of_s049()), default=0)
    filed = await intake.call("POST", "/v1/requests", as_=CLERK,
                              json=filing(location=f"青禾村{uuid.uuid4().int % 10**8:08d}号"))
    assert filed.status_code == 201, filed.text
    task = await task_of(dispatch, filed.json()["request_id"])
    assert task["assignee"] == "s049"  # 廖凡, on the town's default robot (demo_county/qinghe/notify.yaml)

    async def sent() -> dict[str, Any] | None:
        return next((d for d in await log_of_s049() if d["id"] > before and d["status"] == "sent"
                     and d["event_type"] == "dispatch.task.dispatched"), None)

    delivery = await eventually(sent, what="the assignee's message, sent")
    board = await people.followed("qh-s030", "/board", "消息记录")
    row = board.locator(f"#delivery-{delivery['id']}")
    await expect(row).to_contain_text("新任务：新生儿落户")
    await expect(row).to_contain_text("派单")
    await expect(row).to_contain_text("工作群机器人")
    await expect(row.get_by_test_id("delivery-status")).to_have_text("已发送")
    created = datetime.fromisoformat(delivery["created_at"]).astimezone(TOWN_ZONE).strftime("%Y-%m-%d %H:%M")
    sent_at = datetime.fromisoformat(delivery["sent_at"]).astimezone(TOWN_ZONE).strftime("%Y-%m-%d %H:%M")
    await expect(row).to_contain_text(created)
    await expect(row).to_contain_text(sent_at)
    assert "s049" not in await row.inner_text()
    lines = await board.evaluate(READ_PAGE)
    assert not english_on(lines), english_on(lines)
    await assert_accessible(board, "消息记录")

    # Filtered by status: the address says which, and every row shown is of it.
    await board.get_by_role("link", name="未发送").click()
    await expect(board).to_have_url(f"{board.url.split('?')[0]}?status=pending")
    for status in await board.get_by_test_id("delivery-status").all_inner_texts():
        assert status in ("等待发送", "等待重试"), status
    await board.get_by_role("link", name="已发送").click()
    await expect(board.get_by_test_id("delivery-status").first).to_have_text("已发送")

    # A holder has no such page.
    holder = await people.signed_in("qh-s049")
    response = await holder.goto("/deliveries")
    assert response is not None and response.status == 403
