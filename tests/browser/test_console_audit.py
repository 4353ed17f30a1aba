"""Issue #28 items 3 and 6 in a real browser against the real stack: the county's auditor (c004)
signs in, finds a staff member's action by the person's name and a matter's filing by its ticket
number on 审计, and exports what was found as CSV — with the chain's numbers and hashes, and no
citizen's name or phone anywhere. The page reads in Chinese and passes axe-core. And the
console's own chain: wrong passwords lock an account, the auditor finds the failures, the lock, a
later sign-in and its sign-out beside the services' records, the records reach
console.audit.recorded.v1, and `python -m console audit verify` holds, then names a record
altered behind the console's back."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import expect

from devstack.stack import CONSOLE_DATABASE, Stack
from tests.conftest import QINGHE, Api, eventually, filing, task_of
from tests.kafka_tools import event_of, wait_for_record
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import People, Visitors, an_address, assert_accessible
from .test_console_sessions import sign_in
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


# An account of 石桥镇 no other test signs in with: its failures are this test's alone.
LOCKED = "sq-s014"
REPO = Path(__file__).resolve().parents[2]


def _verify(dsn: str) -> subprocess.CompletedProcess[str]:
    """`python -m console audit verify` on the console's database, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "console", "audit", "verify"], capture_output=True, text=True,
                          env={**os.environ, "TOWNFLOW_DATABASE_URL": dsn}, cwd=REPO, timeout=60)


async def test_the_auditor_finds_the_failures_the_lock_and_the_sign_in_and_out_and_verify_detects_tampering(
        people: People, visitors: Visitors, console_url: str, county_stack: Stack) -> None:
    assert county_stack.postgres is not None and county_stack.kafka is not None
    dsn = county_stack.postgres.dsn(CONSOLE_DATABASE)
    address = an_address()
    page = await visitors.at(console_url, address)
    for _ in range(5):
        await sign_in(page, LOCKED, "not-the-Password-1")
        await expect(page.get_by_role("alert")).to_have_text("账号或密码不对。")
    await sign_in(page, LOCKED)  # the right password, while the account waits
    await expect(page.get_by_role("alert")).to_contain_text("已暂停登录")
    console_db = await asyncpg.connect(dsn)
    try:
        # The wait over: the account's failures moved back past the lock, on the database's clock.
        await console_db.execute("UPDATE sign_in_failures SET failures = (SELECT coalesce(array_agg("
                                 "f - interval '16 minutes'), '{}') FROM unnest(failures) AS f) WHERE subject = $1",
                                 f"login:{LOCKED}")
        await sign_in(page, LOCKED)
        await expect(page).not_to_have_url(re.compile(r"/signin"))
        await page.get_by_role("button", name="退出").click()
        await expect(page).to_have_url(re.compile(r"/signin$"))

        # The county's auditor finds all of it by the account, beside the services' records.
        auditor = await people.signed_in("c004")
        await auditor.locator("input[name=target]").fill(LOCKED)
        await auditor.get_by_role("button", name="查询").click()
        rows = auditor.locator(f"[data-testid=audit-records] tr[data-target='{LOCKED}']")
        expected = [("session.sign_out", "ok"), ("session.sign_in", "ok"),
                    ("session.sign_in", "sign_in.account_waiting"), ("session.account_lock", "ok"),
                    *[("session.sign_in", "sign_in.wrong_password")] * 5]
        await expect(rows).to_have_count(len(expected))
        found = [(await r.get_attribute("data-action"), await r.get_attribute("data-outcome"))
                 for r in await rows.all()]
        assert sorted(found) == sorted(expected)  # newest first; a lock and its failure share a moment
        lock = rows.and_(auditor.locator("[data-action='session.account_lock']"))
        await expect(lock).to_contain_text("账号因登录失败暂停登录")
        await expect(lock).to_contain_text("工作台")
        await expect(lock).to_contain_text(address)
        await expect(rows.and_(auditor.locator("[data-outcome='sign_in.wrong_password']")).first).to_contain_text(
            "口令错误")
        signed_out = rows.and_(auditor.locator("[data-action='session.sign_out']"))
        await expect(signed_out).to_contain_text("退出登录")
        await expect(signed_out).to_contain_text("（s014）")
        assert english_on(await auditor.evaluate(READ_PAGE)) == []
        await assert_accessible(auditor, "the console's own records on 审计")
        async with auditor.expect_download() as waiting:
            await auditor.get_by_test_id("audit-export").click()
        exported = list(csv.DictReader(io.StringIO(
            (await (await waiting.value).path()).read_text(encoding="utf-8-sig"))))
        assert sorted((r["操作代码"], r["结果代码"]) for r in exported) == sorted(expected)
        assert {r["系统"] for r in exported} == {"工作台"} and {r["客户端地址"] for r in exported} == {address}

        # Sealed into the console's chain within moments, and published for the county's SIEM.
        async def sealed() -> list[asyncpg.Record]:
            rows = await console_db.fetch("SELECT seq, action, outcome FROM audit_log WHERE target_id = $1"
                                          " ORDER BY seq", LOCKED)
            return rows if len(rows) == len(expected) else []

        chain = await eventually(sealed, what=f"the records of {LOCKED} sealed")
        published = event_of(await wait_for_record(county_stack.kafka.bootstrap, "console.audit.recorded.v1",
                                                   lambda r: event_of(r)["data"]["seq"] == chain[-1]["seq"]))
        assert (published["type"], published["data"]["action"], published["data"]["target_id"]) == (
            "console.audit.recorded", "session.sign_out", LOCKED)

        # The operator's check holds; one record altered behind the console's back is named.
        holds = await asyncio.to_thread(_verify, dsn)
        assert holds.returncode == 0 and "audit chain of console holds" in holds.stdout, holds.stdout + holds.stderr
        lock_seq = next(r["seq"] for r in chain if r["action"] == "session.account_lock")
        await console_db.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")  # as the database's owner could
        try:
            await console_db.execute("UPDATE audit_log SET outcome = 'ok', action = 'session.sign_in'"
                                     " WHERE seq = $1", lock_seq)
            broken = await asyncio.to_thread(_verify, dsn)
        finally:  # the chain of the session's stack as it was, for the tests after this one
            await console_db.execute("UPDATE audit_log SET outcome = 'ok', action = 'session.account_lock'"
                                     " WHERE seq = $1", lock_seq)
            await console_db.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"broken at record {lock_seq}: altered" in broken.stdout
        assert (await asyncio.to_thread(_verify, dsn)).returncode == 0
    finally:
        await console_db.close()
