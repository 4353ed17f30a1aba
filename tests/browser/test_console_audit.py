"""Issue #28 item 6 in a real browser against the real stack: the county's auditor (c004) signs in,
finds a staff member's action by the person's name and a matter's filing by its ticket number on
审计, and exports what was found as CSV — with the chain's numbers and hashes, and no citizen's
name or phone anywhere. The page reads in Chinese and passes axe-core."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from playwright.async_api import expect

from devstack.stack import Stack
from tests.conftest import QINGHE, Api, filing, task_of
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import People, assert_accessible
from .test_console_words import READ_PAGE, english_on

pytestmark = pytest.mark.stack
CLERK = ("s010", "clerk")
NAME = "审计浏览器群众"


async def test_the_auditor_finds_an_action_by_person_and_by_matter_and_exports_it(
        people: People, county_stack: Stack) -> None:
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    phone = f"136{uuid.uuid4().int % 10**8:08d}"
    filed = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
        citizen={"name": NAME, "phone": phone}, location=f"青禾村{uuid.uuid4().int % 10**8:08d}号审计"))
    assert filed.status_code == 201, filed.text
    ticket = filed.json()["ticket_no"]
    task = await task_of(dispatch, filed.json()["request_id"])
    accepted = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/accept", as_=(task["assignee"], "staff"))
    assert accepted.status_code == 200, accepted.text
    holder = load_county(DEMO_COUNTY_DIR).towns[QINGHE].staff[task["assignee"]].name

    auditor = await people.signed_in("c004")
    await expect(auditor.get_by_role("heading", name="审计")).to_be_visible()
    # By person (the name, as the auditor knows them) and action: the acceptance of the task.
    await auditor.locator("input[name=actor]").fill(holder)
    await auditor.locator("select[name=action]").select_option("task.accept")
    await auditor.get_by_role("button", name="查询").click()
    row = auditor.locator(f"[data-testid=audit-records] tr[data-target='{task['task_id']}']")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("签收")
    await expect(row).to_contain_text(holder)
    await expect(row).to_contain_text("成功")
    assert english_on(await auditor.evaluate(READ_PAGE)) == []
    await assert_accessible(auditor, "the audit trail searched")

    # By matter: its ticket number finds its filing (受理登记) by the clerk.
    await auditor.goto("/audit")
    await auditor.locator("input[name=target]").fill(ticket)
    await auditor.get_by_role("button", name="查询").click()
    filing_row = auditor.locator(f"[data-testid=audit-records] tr[data-target='{ticket}']")
    await expect(filing_row).to_have_count(1)
    await expect(filing_row).to_contain_text("受理登记")

    # And what was found, as CSV.
    async with auditor.expect_download() as waiting:
        await auditor.get_by_test_id("audit-export").click()
    download = await waiting.value
    text = (await download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["操作代码"], r["对象"], r["结果"], r["人员"]) for r in rows] == [
        ("request.create", ticket, "成功", CLERK[0])]
    assert len(rows[0]["哈希"]) == 64 and rows[0]["序号"].isdigit()
    assert NAME not in text and phone not in text
    # Nobody else finds the page.
    clerk = await people.signed_in("qh-s010")
    assert (await clerk.goto("/audit")).status == 403  # type: ignore[union-attr]
    # The post's holder gets their load back as the test found it (other tests count on the A post).
    done = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/complete", as_=(task["assignee"], "staff"),
                               json={"resolution": "已办结", "reply": "已为您办理完毕。"})
    assert done.status_code == 200, done.text
