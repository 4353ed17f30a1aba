"""Issue #18's console, in a real browser against the real stack (SPEC §10): duplicate hints on the
receipt, the command centre merging (the primary picked) and unmerging on the board, the merged
citizen following the primary, bulk redispatch with each task's outcome, a callback after closure
reopening the matter (重办) for the same assignee, the 多头检查 alerts with the proposed inspection,
and the monthly bulletin's download."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from devstack.stack import Stack
from tests.conftest import QINGHE, Api, eventually, filing, http_client, task_of

from .conftest import People, assert_accessible, file_at_the_window

pytestmark = pytest.mark.stack
CLERK, COMMAND, OFFICER = ("s010", "clerk"), ("s030", "command_centre"), ("s026", "officer")


async def _look_up(citizen: Page, ticket: str, code: str) -> None:
    await citizen.goto("/status")
    await citizen.locator("input[name=ticket]").fill(ticket)
    await citizen.locator("input[name=code]").fill(code)
    await citizen.get_by_role("button", name="查询").click()
    await expect(citizen.get_by_test_id("status")).to_be_visible()


async def test_a_duplicate_is_hinted_on_the_receipt_merged_on_the_board_followed_by_its_citizen_and_undone(
        people: People, county_stack: Stack) -> None:
    place = f"青禾村{uuid.uuid4().int % 10**8:08d}号桥头"  # no other test's matter is near it
    clerk = await people.signed_in("qh-s010")
    first, _ = await file_at_the_window(clerk, place)
    second, code = await file_at_the_window(clerk, f"{place}东侧")

    # The second receipt lists the first: ticket, item, village, reason, similarity — no personal data.
    hints = clerk.get_by_test_id("duplicates")
    await expect(hints.locator("tr[data-ticket]")).to_have_count(1)
    row = hints.locator(f"tr[data-ticket='{first}']")
    await expect(row.get_by_role("cell")).to_have_text(
        [first, "新生儿落户", "青禾村", "同一事项、同村、地点相近", "100%", "并入此件"])
    await expect(hints).not_to_contain_text("浏览器群众")
    link = await row.get_by_role("link", name="并入此件").get_attribute("href")
    assert link is not None

    # The command centre follows the hint to the board, its merge form filled in (once dispatch has
    # both matters' tasks: the picker offers the open matters dispatch has, found by the item and
    # village of the second's task — without it the primary is typed, board.merge_candidates).
    dispatch = Api(county_stack, "dispatch", QINGHE)

    async def dispatched() -> bool:
        for ticket in (first, second):
            found = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND, params={"q": ticket})).json()
            if not found["tasks"]:
                return False
        return True

    await eventually(dispatched, what="both matters' tasks")
    board = await people.signed_in("qh-s030")
    await board.goto(link)
    form = board.get_by_test_id("merge-form")
    await expect(form.locator("input[name=ticket_no]")).to_have_value(second)
    # The primary is picked among the open matters of the same item and village, in words.
    await expect(form.get_by_test_id("merge-picker")).to_have_value(first)
    await expect(form.get_by_test_id("merge-picker").locator(f"option[value='{first}']")).to_have_text(
        f"{first} · 新生儿落户 · 青禾村 · 待签收")
    await expect(form.locator(f"option[value='{second}']")).to_have_count(0)
    await expect(form.locator("input[name=into]")).to_have_value("")

    # A refusal first: a matter merged into itself is a 422 naming `into`, in Chinese beside it.
    await form.locator("input[name=into]").fill(second)
    await form.get_by_role("button", name="合并").click()
    await expect(board.locator("[data-testid=merge-form] .field-error[data-field=into]")).to_have_text(
        "主件受理编号：不能并入自身，请填写另一件的受理编号")
    await assert_accessible(board, "a merge refused")

    await board.get_by_test_id("merge-form").locator("input[name=into]").fill(first)
    await board.get_by_test_id("merge-form").get_by_role("button", name="合并").click()
    await expect(board.get_by_role("status")).to_have_text("已合并。")
    # Its task closes as 已合并 (dispatch follows intake's event): the live board shows it.
    merged_row = board.locator(f"[data-testid=newest] tr[data-ticket='{second}']")
    await expect(merged_row).to_contain_text("已合并", timeout=15_000)

    # Another matter merged into the merged one: a 409 about `into`, beside `into`.
    third = await Api(county_stack, "intake", QINGHE).call("POST", "/v1/requests", as_=CLERK, json=filing(
        village="V01", location=f"{place}西侧"))
    assert third.status_code == 201, third.text
    form = board.get_by_test_id("merge-form")
    await form.locator("input[name=ticket_no]").fill(third.json()["ticket_no"])
    await form.locator("input[name=into]").fill(second)
    await form.get_by_role("button", name="合并").click()
    await expect(board.locator("[data-testid=merge-form] .field-error[data-field=into]")).to_have_text(
        f"主件受理编号：{second} 本身已并入 {first}，请直接并入 {first}")

    # The task's page: 已合并, with the primary's ticket.
    await board.goto("/board")
    await board.locator(f"[data-testid=newest] tr[data-ticket='{second}'] a").click()
    await expect(board.get_by_test_id("task-status")).to_have_text("已合并")
    await expect(board.get_by_test_id("primary")).to_contain_text(first)
    await assert_accessible(board, "a merged task")

    # The merged citizen's status page follows the primary.
    citizen = await people.anonymous(phone=True)
    await _look_up(citizen, second, code)
    await expect(citizen.get_by_test_id("primary-ticket")).to_have_text(first)
    await expect(citizen.get_by_test_id("primary-timeline").locator("li").first).to_contain_text("受理")
    await assert_accessible(citizen, "a merged matter's status")

    # Undone from the task's page: the task takes back its status, the citizen their own matter.
    await board.get_by_role("button", name="撤销合并").click()
    await expect(board.get_by_role("status")).to_contain_text("已撤销合并")
    await board.goto("/board")
    await expect(board.locator(f"[data-testid=newest] tr[data-ticket='{second}']")).not_to_contain_text(
        "已合并", timeout=15_000)
    await _look_up(citizen, second, code)
    await expect(citizen.get_by_test_id("merged-into")).to_have_count(0)


async def _closed_task(county_stack: Stack) -> dict[str, Any]:
    """A matter taken through accept, complete and the closure check on the services' APIs."""
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    filed = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(location=f"青禾村{uuid.uuid4().int % 10**8:08d}"))
    assert filed.status_code == 201, filed.text
    task = await task_of(dispatch, filed.json()["request_id"])
    holder = (task["assignee"], "staff")
    for path, body in (("accept", None), ("complete", {"resolution": "已办结", "reply": "已为您办理完毕。"})):
        done = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/{path}", as_=holder, json=body)
        assert done.status_code == 200, done.text
    closed = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/verify", as_=COMMAND,
                                 json={"passed": True, "note": "核查通过"})
    assert closed.status_code == 200, closed.text
    return task


async def test_an_unsatisfied_callback_reopens_the_task_for_its_assignee(people: People, county_stack: Stack) -> None:
    task = await _closed_task(county_stack)
    board = await people.signed_in("qh-s030")
    await board.goto(f"/board/tasks/{task['task_id']}")
    await expect(board.get_by_test_id("task-status")).to_have_text("已结案")
    callback = board.get_by_test_id("callback-form")

    # Reached without a rating: dispatch's 422 naming `rating`, in Chinese beside it.
    await callback.get_by_label("已联系上群众").check()
    await callback.get_by_role("button", name="记录回访").click()
    await expect(board.locator(".field-error[data-field=rating]")).to_have_text("评价：联系上群众时，请选择群众的评价")
    await assert_accessible(board, "a callback refused")

    callback = board.get_by_test_id("callback-form")
    await callback.get_by_label("不满意", exact=True).check()
    await callback.get_by_label("回访记录").fill("群众反映户口本信息有误")
    await callback.get_by_role("button", name="记录回访").click()
    await expect(board.get_by_role("status")).to_have_text("已提交。")
    await expect(board.get_by_test_id("task-status")).to_have_text("返工")
    await expect(board.get_by_role("heading", level=1).get_by_test_id("reopened")).to_have_text("重办")
    await expect(board.get_by_test_id("callbacks").locator("li")).to_have_count(1)
    await expect(board.get_by_test_id("callbacks")).to_contain_text("不满意")
    await expect(board.get_by_test_id("callback-form")).to_have_count(0)  # open again: no callback now
    await assert_accessible(board, "a reopened task")

    # The assignee has it again in 我的任务, marked 重办.
    holder = await people.signed_in(f"qh-{task['assignee']}", phone=True)
    await holder.goto("/tasks")
    card = holder.locator(f"#task-{task['task_id']}")
    await expect(card.get_by_test_id("status")).to_have_text("返工")
    await expect(card.get_by_test_id("reopened")).to_have_text("重办")
    await expect(card.get_by_role("button", name="办结")).to_be_visible()
    await assert_accessible(holder, "a reopened task in 我的任务")


async def _visited(county_stack: Stack, item: str, target: str) -> str:
    """A matter about `target` whose inspection goes out on its own (started): its id."""
    intake, enforcement = Api(county_stack, "intake", QINGHE), Api(county_stack, "enforcement", QINGHE)
    filed = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
        channel="hotline", item_code=item, description="企业检查", village="V02", location="东湖村工业园", target=target))
    assert filed.status_code == 201, filed.text
    inspection = await _planned(enforcement, target)
    started = await enforcement.call("POST", f"/v1/inspections/{inspection}/start", as_=OFFICER,
                                     json={"officers": ["s026", "s027"]})
    assert started.status_code == 200, started.text
    return inspection


async def _planned(enforcement: Api, target: str) -> str:
    async def find() -> str | None:
        rows = (await enforcement.call("GET", "/v1/inspections", as_=OFFICER,
                                       params={"target": target, "status": "planned"})).json()
        return str(rows[0]["inspection_id"]) if rows else None

    return await eventually(find, what=f"a planned inspection of {target}")


async def test_officers_see_an_enterprise_inspected_by_two_units_with_the_proposed_inspection(
        people: People, county_stack: Stack) -> None:
    target = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    visits = [await _visited(county_stack, "E003", target),   # 县应急管理局
              await _visited(county_stack, "E004", target)]   # 县市场监督管理局, separately
    intake = Api(county_stack, "intake", QINGHE)
    assert (await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
        channel="hotline", item_code="E009", description="无照经营", village="V02", location="东湖村工业园",
        target=target))).status_code == 201
    proposed = await _planned(Api(county_stack, "enforcement", QINGHE), target)

    officer = await people.followed("qh-s026", "/enforcement", "多头检查提醒")
    alert = officer.locator(f"[data-target='{target}']")
    await expect(alert).to_contain_text("县应急管理局")
    await expect(alert).to_contain_text("县市场监督管理局")
    await expect(alert.get_by_test_id("visits").locator("li")).to_have_count(2)
    await assert_accessible(officer, "the alerts")
    for inspection in visits:
        await expect(alert.locator(f"a[href='/enforcement/inspections/{inspection}']")).to_have_count(1)
    await alert.get_by_test_id("proposed").click()
    await expect(officer).to_have_url(re.compile(rf"/enforcement/inspections/{proposed}$"))
    await expect(officer.get_by_test_id("inspection-status")).to_have_text("待检查")

    # Only for the page's roles: a clerk gets no alerts.
    clerk = await people.signed_in("qh-s010")
    refused = await clerk.goto("/enforcement/alerts")
    assert refused is not None and refused.status == 403


async def test_the_monthly_bulletin_link_asks_appraisal(people: People, county_stack: Stack) -> None:
    """The console's route calls appraisal's `GET /v1/bulletin` with the person's token. While that
    route is not on appraisal yet (it is being built beside this), and only then — appraisal's own
    OpenAPI document lacks it — the console must show its plain 404 page; once it exists, the file
    must come through with appraisal's type and name."""
    office = await people.signed_in("qh-s032")
    await office.goto("/appraisal")
    link = office.get_by_role("link", name="下载月度通报")
    await expect(link).to_be_visible()
    async with http_client(base_url=county_stack.services["appraisal"].url) as client:
        routes = (await client.get("/openapi.json")).json()["paths"]
    if "/v1/bulletin" in routes:
        async with office.expect_download() as waiting:
            await link.click()
        download = await waiting.value
        assert download.suggested_filename.endswith(".xlsx"), download.suggested_filename
        assert (await download.path()).stat().st_size > 0
    else:
        async with office.expect_response(lambda r: "/appraisal/bulletin" in r.url) as waiting:
            await link.click()
        assert (await waiting.value).status == 404
        await expect(office.get_by_role("alert")).to_contain_text("的月度通报")
        await expect(office.get_by_role("heading", name="月度通报")).to_be_visible()
        await assert_accessible(office, "a bulletin not there")


async def test_the_board_finds_tasks_by_place_and_colour_pages_them_in_the_address_and_exports_them(
        people: People, county_stack: Stack) -> None:
    """任务查询 (issue #27): 21 matters at a place no other test uses are found by a part of it and
    their colour, in two pages whose addresses are the list's; the spreadsheet holds all 21."""
    place = f"青禾村{uuid.uuid4().int % 10**8:08d}号路灯"
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    filed = await asyncio.gather(*(intake.call("POST", "/v1/requests", as_=CLERK, json=filing(location=f"{place}{n}米"))
                                   for n in range(21)))
    assert [f.status_code for f in filed] == [201] * 21, [f.text for f in filed if f.status_code != 201]

    async def dispatched() -> dict[str, Any] | None:
        found = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND, params={"q": place})).json()
        return found if found["total"] == 21 else None

    colour = (await eventually(dispatched, what="the 21 tasks dispatched"))["tasks"][0]["colour"]
    board = await people.signed_in("qh-s030")
    await board.goto("/board")
    search = board.get_by_test_id("task-search")
    await search.get_by_label("查找").fill(place)
    await search.get_by_label("颜色").select_option(label={"red": "红", "orange": "橙", "yellow": "黄"}[colour])
    await search.get_by_role("button", name="查询").click()
    await expect(board).to_have_url(re.compile(rf"/board\?.*colour={colour}"))
    await expect(board.get_by_test_id("found-total")).to_have_text("21")
    await expect(board.get_by_test_id("found").locator("tr[data-ticket]")).to_have_count(20)
    await expect(board.get_by_test_id("found")).to_contain_text("新生儿落户")  # the item by its name
    await assert_accessible(board, "the board's search found")

    await board.get_by_test_id("pager").get_by_role("link", name="下一页").click()
    await expect(board).to_have_url(re.compile(r"page=2"))
    await expect(board.get_by_test_id("found").locator("tr[data-ticket]")).to_have_count(1)
    await board.reload()  # the address is the list
    await expect(board.get_by_test_id("found").locator("tr[data-ticket]")).to_have_count(1)

    async with board.expect_download() as downloading:
        await board.get_by_test_id("export").click()
    download = await downloading.value
    content = (await download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and download.suggested_filename == f"tasks-{QINGHE}.csv"
    lines = content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("受理编号,颜色,事项,村（社区）") and len(lines) == 22
    assert all(place in line for line in lines[1:])


async def returned_task(intake: Api, dispatch: Api, reason: str) -> dict[str, Any]:
    """A matter filed at a place of its own, and its task as its assignee returned it with `reason`."""
    filed = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(location=f"青禾村{uuid.uuid4().int % 10**8:08d}号"))
    assert filed.status_code == 201, filed.text
    task = await task_of(dispatch, filed.json()["request_id"])
    returned = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/return", as_=(task["assignee"], "staff"),
                                   json={"reason": reason})
    assert returned.status_code == 200, returned.text
    return task


async def b_holder_of(dispatch: Api, post: str) -> str:
    """The staff id of the post's B holder, as the command centre's picker knows them."""
    holders = (await dispatch.call("GET", "/v1/holders", as_=COMMAND)).json()
    return str(next(h for h in holders if h["post"] == post and h["slot"] == "B")["staff_id"])


async def test_a_returned_task_shows_its_reason_and_is_redispatched_from_the_picker(
        people: People, county_stack: Stack) -> None:
    """The board lists a returned task with its reason; the command centre picks the post's B
    holder by name (with their load) instead of typing an id, and the task is theirs. The board's
    refresh never sweeps the choice away before 改派 is pressed."""
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    task = await returned_task(intake, dispatch, "不属本岗职责，应由村镇规划建设站办理")
    b_holder = await b_holder_of(dispatch, task["post"])

    board = await people.signed_in("qh-s030")
    await board.goto("/board")
    row = board.locator(f"#returned-{task['task_id']}")
    await expect(row.get_by_test_id("return-reason")).to_have_text("不属本岗职责，应由村镇规划建设站办理")
    picker = row.get_by_test_id("redispatch-picker")
    await expect(picker.locator(f"option[value='assignee:{b_holder}']")).to_contain_text(re.compile(r"B岗 · 在办\d+"))
    await assert_accessible(board, "a returned task and its picker")
    await picker.select_option(f"assignee:{b_holder}")
    # The live part refreshes every 2 s; the choice stays until 改派 is pressed, even once focus left it.
    await board.get_by_role("heading", name="指挥中心 · 实时看板").click()
    for _ in range(2):  # the second fetch starts only after the first's answer was swapped in or kept out
        async with board.expect_response(lambda r: "/board/live" in r.url):
            pass
    await expect(picker).to_have_value(f"assignee:{b_holder}")
    await row.get_by_role("button", name="改派").click()
    await expect(board.get_by_role("status")).to_have_text("已提交。")
    await expect(board.locator(f"#returned-{task['task_id']}")).to_have_count(0)
    found = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND, params={"q": task["ticket_no"]})).json()
    assert {(t["status"], t["assignee"]) for t in found["tasks"]} == {("redispatched", task["assignee"]),
                                                                      ("dispatched", b_holder)}


async def test_two_returned_tasks_are_redispatched_at_once_and_each_row_says_its_own_outcome(
        people: People, county_stack: Stack) -> None:
    """批量改派 (issue #27): two returned tasks ticked and sent to one holder picked by name; the
    second is redispatched by someone else after the board was drawn, so dispatch's rules refuse
    it. Each row says its own outcome in Chinese; the refused one stays ticked."""
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    first, second = await asyncio.gather(*(returned_task(intake, dispatch, "不属本岗职责") for _ in range(2)))
    b_holder = await b_holder_of(dispatch, first["post"])

    board = await people.signed_in("qh-s030")
    await board.goto("/board")
    bulk = board.get_by_test_id("bulk-redispatch")
    for task in (first, second):
        await bulk.locator(f"#bulk-{task['task_id']}").get_by_role("checkbox").check()
    picked = bulk.get_by_test_id("bulk-picker").locator(f"option[value='assignee:{b_holder}']")
    name = (await picked.inner_text()).split(" · ")[0]
    await bulk.get_by_test_id("bulk-picker").select_option(f"assignee:{b_holder}")
    taken = await dispatch.call("POST", f"/v1/tasks/{second['task_id']}/redispatch", as_=COMMAND,
                                json={"post": second["post"]})
    assert taken.status_code == 201, taken.text
    await bulk.get_by_role("button", name="批量改派").click()

    await expect(board.get_by_test_id("bulk-summary")).to_have_text("已改派 1 项，1 项未改派（原因见各项）。")
    await expect(board.locator(f"#bulk-{first['task_id']}").get_by_test_id("bulk-outcome")).to_have_text(f"已改派给{name}")
    refused = board.locator(f"#bulk-{second['task_id']}")
    await expect(refused.get_by_test_id("bulk-outcome")).to_have_text("未改派：任务现在已改派，不能这样办理")
    await expect(refused.get_by_role("checkbox")).to_be_checked()
    await assert_accessible(board, "a bulk redispatch, one task refused")
    found = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND, params={"q": first["ticket_no"]})).json()
    assert {(t["status"], t["assignee"]) for t in found["tasks"]} == {("redispatched", first["assignee"]),
                                                                      ("dispatched", b_holder)}


async def test_a_holder_asks_to_suspend_the_command_centre_approves_and_the_holder_resumes(
        people: People, county_stack: Stack) -> None:
    """挂起 (issue #27) through the pages: asked on the task's own page linked from 我的任务, approved
    on the command centre's list, resumed by the holder, who reads the new deadline."""
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    filed = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(location=f"青禾村{uuid.uuid4().int % 10**8:08d}号"))
    assert filed.status_code == 201, filed.text
    task = await task_of(dispatch, filed.json()["request_id"])
    holder = await people.signed_in(f"qh-{task['assignee']}")
    await holder.goto("/tasks")
    await holder.locator(f"#task-{task['task_id']}").get_by_test_id("suspension-link").click()
    form = holder.get_by_test_id("suspension-form")
    await form.get_by_label("等待申请人补正材料").check()
    await form.get_by_label("具体说明").fill("户口本复印件不清晰，等群众补交")
    await form.get_by_role("button", name="申请挂起").click()
    await expect(holder.get_by_role("status")).to_have_text("已提交。")
    await expect(holder.get_by_test_id("suspension-status")).to_have_text("待审批")
    await assert_accessible(holder, "a suspension asked")

    board = await people.signed_in("qh-s030")
    await board.goto("/suspensions")
    row = board.locator(f"#suspension-{task['task_id']}")
    await expect(row).to_contain_text("户口本复印件不清晰")
    await assert_accessible(board, "the pending suspensions")
    await row.get_by_role("button", name="批准挂起").click()
    await expect(board.get_by_role("status")).to_have_text("已提交。")
    await expect(board.locator(f"#suspension-{task['task_id']}")).to_have_count(0)

    await holder.reload()
    await expect(holder.get_by_test_id("task-status")).to_have_text("已挂起")
    await holder.get_by_role("button", name="恢复办理").click()
    await expect(holder.get_by_test_id("suspension-status")).to_have_text("已恢复办理")
    resumed = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert resumed["status"] == task["status"] == "dispatched"
    town_clock = datetime.fromisoformat(resumed["resolve_by"]).astimezone(ZoneInfo("Asia/Shanghai"))
    await expect(holder.get_by_test_id("resumed-resolve-by")).to_have_text(town_clock.strftime("%Y-%m-%d %H:%M"))
    await assert_accessible(holder, "a task resumed")
