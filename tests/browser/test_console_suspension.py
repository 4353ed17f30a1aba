"""Issue #27 item 7 in a real browser against the real stack: a suspended task's 办结时限 reads as
stopped on 我的任务, the task's page and the command centre's task page, and as the new deadline
once resumed; 绩效考核 shows the staff member's 挂起数 and 挂起率 once appraisal counts it."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from devstack.stack import Stack
from tests.conftest import QINGHE, Api, eventually, filing, task_of

from .conftest import People, assert_accessible

pytestmark = pytest.mark.stack
CLERK, COMMAND = ("s010", "clerk"), ("s030", "command_centre")
STOPPED = re.compile(r"^已暂停计时（剩余 \d+(\.\d+)? 个工作小时）")


async def test_a_suspended_tasks_deadline_reads_stopped_and_appraisal_shows_its_suspension_rate(
        people: People, county_stack: Stack) -> None:
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    appraisal = Api(county_stack, "appraisal", QINGHE)
    filed = await intake.call("POST", "/v1/requests", as_=CLERK,
                              json=filing(location=f"青禾村{uuid.uuid4().int % 10**8:08d}号挂起"))
    assert filed.status_code == 201, filed.text
    task = await task_of(dispatch, filed.json()["request_id"])
    tid, assignee = task["task_id"], task["assignee"]

    async def counted() -> int:
        """The assignee's 挂起数 of the month as appraisal gives it (0 before a score of theirs)."""
        scores = (await appraisal.call("GET", "/v1/scores", as_=COMMAND)).json()
        return next((int(s["counts"]["suspended"]) for s in scores
                     if s["subject_type"] == "staff" and s["subject_id"] == assignee), 0)

    async def more_than_before() -> int | None:
        now = await counted()
        return now if now > before else None

    before = await counted()
    asked = await dispatch.call("POST", f"/v1/tasks/{tid}/suspend", as_=(assignee, "staff"),
                                json={"category": "awaiting_citizen", "reason": "等群众补交户口本复印件"})
    assert asked.status_code == 202, asked.text
    approved = await dispatch.call("POST", f"/v1/tasks/{tid}/suspension/approve", as_=COMMAND, json={"note": "同意"})
    assert approved.status_code == 200, approved.text

    # The holder's list (no figure in a list's read) and task page (the working time left).
    holder = await people.signed_in(f"qh-{assignee}")
    await holder.goto("/tasks")
    card = holder.locator(f"#task-{tid}")
    await expect(card.get_by_test_id("status")).to_have_text("已挂起")
    await expect(card.get_by_test_id("resolve-by")).to_have_text("已暂停计时")
    await assert_accessible(holder, "我的任务 with a suspended task")
    await holder.goto(f"/tasks/{tid}")
    await expect(holder.get_by_test_id("resolve-by")).to_contain_text(STOPPED)
    await assert_accessible(holder, "a suspended task's page")
    await holder.goto(f"/tasks/{tid}/suspension")
    await expect(holder.get_by_test_id("resolve-by")).to_contain_text(STOPPED)
    board = await people.signed_in("qh-s030")
    await board.goto(f"/board/tasks/{tid}")
    await expect(board.get_by_test_id("resolve-by")).to_contain_text(STOPPED)
    await assert_accessible(board, "a suspended task on the command centre's page")

    # 绩效考核: the assignee's 挂起数 one more, and a 挂起率 figure, once appraisal counts it.
    suspended = await eventually(more_than_before, what="appraisal to count the suspension")
    await board.goto("/appraisal")
    row = board.locator(f"#staff-{assignee}")
    await expect(board.get_by_test_id("scores-staff").get_by_role("columnheader", name="挂起率")).to_be_visible()
    await expect(row.get_by_test_id("suspended")).to_have_text(str(suspended))
    await expect(row.locator("[data-rate=suspension]")).to_have_text(re.compile(r"^\d+%$"))
    await assert_accessible(board, "绩效考核 with every rate")

    # Resumed: the new deadline shows on the town's clock, as any running deadline does.
    resumed = await dispatch.call("POST", f"/v1/tasks/{tid}/resume", as_=(assignee, "staff"))
    assert resumed.status_code == 200, resumed.text
    local = datetime.fromisoformat(resumed.json()["resolve_by"]).astimezone(ZoneInfo("Asia/Shanghai"))
    await holder.reload()
    await expect(holder.get_by_test_id("resolve-by")).to_have_text(local.strftime("%Y-%m-%d %H:%M"))
    await board.goto(f"/board/tasks/{tid}")
    await expect(board.get_by_test_id("resolve-by")).to_have_text(local.strftime("%Y-%m-%d %H:%M"))

