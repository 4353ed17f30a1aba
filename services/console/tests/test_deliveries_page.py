"""消息记录 (issue #31): the command centre's page of notify's delivery log, rendered from fake
answers of notify — names, not codes; statuses and reasons in words; times on the town's clock;
filtered by status and paged as notify is asked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from console import labels

from .test_console_lifecycle import COMMAND, HOLDER, _console

QINGHE = "321003104"


def entry(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": n, "event_id": "0b8e5c2a-5d0e-4a53-9a64-1f0c2a7f9d11", "event_type": "dispatch.task.dispatched",
            "town_code": QINGHE, "recipient": "s049", "channel": f"robot:{QINGHE}/command-group",
            "title": "新任务：新生儿落户", "status": "sent", "attempts": 1, "last_error": None,
            "created_at": "2026-12-07T01:00:00+00:00", "next_attempt_at": "2026-12-07T01:00:00+00:00",
            "sent_at": "2026-12-07T01:00:02+00:00", "in_digest": False} | fields


@pytest.mark.parametrize(("given", "words"), [
    ("errcode 310000: sign not match", "机器人拒收（错误码 310000）"),
    ("HTTP 503", "接收方返回错误（503）"),
    ("ConnectError: All connection attempts failed", "无法连接接收方"),
    ("ReadTimeout: ", "接收方无应答（超时）"),
    ("no SMTP server is set (TOWNFLOW_SMTP_HOST)", "未配置邮件服务器"),
    ("ConnectionRefusedError: [Errno 111] Connection refused", "无法连接接收方"),
    ("SMTPRecipientsRefused: {}", "邮件服务器拒收"),
    ("something new", "发送失败，将自动重试"),
])
def test_why_a_message_waits_is_said_in_words(given: str, words: str) -> None:
    assert labels.wait_reason(given) == words


def test_a_deliverys_status_and_channel_in_words() -> None:
    assert [labels.delivery_status(entry(1, **f)) for f in (
        {}, {"in_digest": True}, {"status": "pending", "attempts": 2}, {"status": "pending", "attempts": 0})] == [
        "已发送", "并入汇总", "等待重试", "等待发送"]
    assert labels.delivery_channel("email:s030@qinghe.example.cn") == "电子邮件"
    assert labels.delivery_channel(f"robot:{QINGHE}/duty") == "工作群机器人"


async def test_the_command_centre_reads_the_log_in_words_and_town_time() -> None:
    seen: list[httpx.Request] = []
    rows = [entry(3, status="pending", attempts=2, last_error="HTTP 503", sent_at=None,
                  next_attempt_at="2026-12-07T01:05:00+00:00", channel="email:s049@qinghe.example.cn"),
            entry(2, event_type="dispatch.extension.requested", recipient="s030", title="延期申请：新生儿落户"),
            entry(1, in_digest=True, event_type="notify.digest.daily", title="每日待办：廖凡 2 项")]
    async for browser, _ in _console(httpx.Response(200, json=rows), seen, COMMAND):
        got = await browser.get("/deliveries")
    assert got.status_code == 200
    [call] = seen
    assert call.url.host == "notify.test" and call.url.path == "/v1/deliveries"
    assert call.headers["authorization"].startswith("Bearer ")
    assert dict(call.url.params) == {"limit": "51", "offset": "0"}
    table = got.text.split('data-testid="deliveries"')[1]
    assert "廖凡" in table and "s049" not in table and "command-group" not in table  # names, not codes
    assert "等待重试" in table and "接收方返回错误（503）（2026-12-07 09:05 重试）" in table
    assert "已发送" in table and "并入汇总" in table and "延期申请" in table and "每日待办" in table
    assert "2026-12-07 09:00" in table  # created, on the town's clock (UTC+8)
    assert '<a href="/deliveries">消息记录</a>' in got.text or 'href="/deliveries" class="here"' in got.text


async def test_the_log_is_filtered_and_paged_as_notify_is_asked() -> None:
    seen: list[httpx.Request] = []
    rows = [entry(n, status="pending", attempts=0, sent_at=None) for n in range(51, 0, -1)]  # one more than a page
    async for browser, _ in _console(httpx.Response(200, json=rows), seen, COMMAND):
        got = await browser.get("/deliveries", params={"status": "pending", "page": "2"})
    assert dict(seen[0].url.params) == {"status": "pending", "limit": "51", "offset": "50"}
    assert got.text.count('data-testid="delivery"') == 50
    assert 'href="/deliveries?status=pending" rel="prev"' in got.text
    assert 'href="/deliveries?status=pending&amp;page=3" rel="next"' in got.text


async def test_notify_unreachable_is_said_and_a_holder_is_not_shown_the_page() -> None:
    async for browser, _ in _console(httpx.Response(503, json={"code": "service.unavailable"}), [], COMMAND):
        got = await browser.get("/deliveries")
    assert "消息记录" in got.text and 'data-testid="deliveries"' not in got.text
    async for browser, _ in _console(httpx.Response(200, json=[]), [], HOLDER):
        refused = await browser.get("/deliveries")
    assert refused.status_code == 403
