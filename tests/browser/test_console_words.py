"""Issue #27's items 4 and 5 in a real browser against the real stack: every time a person reads is
on the town's clock (a matter made at known instants of the test clock, read on every page that
shows one of its times), and no page of any role shows an English word — only ticket numbers and
other identifiers, the town's codes beside their names, and the proper nouns listed here. The crawl
runs axe-core on every page it reads too (item 9): no serious or critical violation."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from devstack.stack import Stack
from tests.conftest import QINGHE, Api, eventually, filing, set_clocks, task_of
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import CHECKED, People, assert_accessible, axe_violations, file_at_the_window

pytestmark = pytest.mark.stack
CLERK, COMMAND, OFFICER = ("s010", "clerk"), ("s030", "command_centre"), ("s026", "officer")
COUNTY_ADMIN = ("c001", "county_admin")
COUNTY = load_county(DEMO_COUNTY_DIR)
TOWN_ZONE = ZoneInfo(COUNTY.towns[QINGHE].info.timezone)  # the town's clock, from its configuration
SHOWN_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def local(instant: str) -> str:
    """An API's instant as the town's clock reads it, worked out here and not by the console."""
    return datetime.fromisoformat(instant).astimezone(TOWN_ZONE).strftime("%Y-%m-%d %H:%M")


async def _ok(response: Any) -> Any:
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


async def _times_in(page: Page, selector: str) -> list[str]:
    return SHOWN_TIME.findall(await page.locator(selector).first.inner_text())


# --- item 4: local time everywhere ----------------------------------------------------------------
# 2026-12-07 is a Monday; 00:12 UTC is 08:12 in 青禾镇 (Asia/Shanghai), before its office opens.
AT = {step: f"2026-12-07T{t}:00+00:00" for step, t in (
    ("filed", "00:12"), ("accepted", "00:20"), ("completed", "00:30"), ("verified", "00:40"), ("callback", "00:50"),
    ("started", "01:00"), ("finished", "01:10"))}


async def test_every_page_shows_a_matters_times_on_the_towns_clock(people: People, county_stack: Stack) -> None:
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    enforcement = Api(county_stack, "enforcement", QINGHE)
    await set_clocks(county_stack, AT["filed"], COUNTY_ADMIN)

    # Filed at the window at 08:12, in the browser: the receipt is a page that may show a time.
    clerk = await people.signed_in("qh-s010")
    ticket, code = await file_at_the_window(clerk, f"青禾村{uuid.uuid4().int % 10**8:08d}号")
    receipt_times = await _times_in(clerk, "section.receipt")

    matter = await _ok(await intake.call("GET", f"/v1/requests/{ticket}", params={"code": code}))
    task = await task_of(dispatch, matter["request_id"])  # dispatched at 08:12, before the clock moves
    holder = (task["assignee"], "staff")
    for step, path, body, who in (("accepted", "accept", None, holder),
                                  ("completed", "complete", {"resolution": "已办结", "reply": "已为您办理完毕。"}, holder),
                                  ("verified", "verify", {"passed": True, "note": "核查通过"}, COMMAND),
                                  ("callback", "callback", {"reached": True, "rating": "satisfied", "note": "满意"},
                                   COMMAND)):
        await set_clocks(county_stack, AT[step], COUNTY_ADMIN)
        await _ok(await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/{path}", as_=who, json=body))

    # An inspection of an enterprise, started at 09:00 and its result (a violation: a case) at 09:10.
    target = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    await _ok(await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
        channel="hotline", item_code="E003", description="消防通道堵塞", village="V02", location="东湖村工业园",
        target=target)))
    inspection = await _planned(enforcement, target)
    await set_clocks(county_stack, AT["started"], COUNTY_ADMIN)
    await _ok(await enforcement.call("POST", f"/v1/inspections/{inspection['inspection_id']}/start", as_=OFFICER,
                                     json={"officers": ["s026", "s027"]}))
    await set_clocks(county_stack, AT["finished"], COUNTY_ADMIN)
    done = await _ok(await enforcement.call(
        "POST", f"/v1/inspections/{inspection['inspection_id']}/result", as_=OFFICER, json={
            "officers": ["s026", "s027"], "present_units": inspection["units"],
            "findings": [{"task_id": n["task_id"], "outcome": "violation", "note": "消防通道堵塞"}
                         for n in inspection["needs"]]}))
    case = await _ok(await enforcement.call("GET", f"/v1/cases/{done['cases'][0]}", as_=OFFICER))

    # The citizen's timeline, once intake has every step: each on the town's clock.
    async def every_step() -> dict[str, Any] | None:
        view = await _ok(await intake.call("GET", f"/v1/requests/{ticket}", params={"code": code}))
        return view if "callback" in [s["step"] for s in view["timeline"]] else None

    timeline = (await eventually(every_step, what="the callback on the citizen's timeline"))["timeline"]
    expected = [local(s["at"]) for s in timeline]
    assert {"2026-12-07 08:12", "2026-12-07 08:20", "2026-12-07 08:30", "2026-12-07 08:40",
            "2026-12-07 08:50"} <= set(expected)
    citizen = await people.anonymous(phone=True)
    await citizen.goto("/status")
    await citizen.locator("input[name=ticket]").fill(ticket)
    await citizen.locator("input[name=code]").fill(code)
    await citizen.get_by_role("button", name="查询").click()
    assert await _times_in(citizen, "[data-testid=timeline]") == expected
    await assert_accessible(citizen, "the status of a matter called back")

    # The receipt shows the filing time and the date promised (the task's deadline, set by the same
    # rules from the same moment), and nothing else of the clock.
    assert receipt_times == ["2026-12-07 08:12", local(task["resolve_by"])], receipt_times

    # The board's 更新于 is dispatch's clock, frozen at 09:10.
    board = await people.signed_in("qh-s030")
    await board.goto("/board")
    await expect(board.get_by_test_id("board-at")).to_have_text("2026-12-07 09:10")

    # The task's page: its deadlines, its callback (08:50) and its matter's filing (08:12), and no other time.
    deadlines = {local(task["respond_by"]), local(task["resolve_by"])}
    await board.goto(f"/board/tasks/{task['task_id']}")
    await expect(board.get_by_test_id("respond-by")).to_have_text(local(task["respond_by"]))
    await expect(board.get_by_test_id("resolve-by")).to_have_text(local(task["resolve_by"]))
    await expect(board.get_by_test_id("callbacks")).to_contain_text("2026-12-07 08:50")
    await expect(board.get_by_test_id("matter-filed-at")).to_have_text("2026-12-07 08:12")
    # 短信记录: intake answered the command centre's token (this stack sends no SMS: none listed, no refusal).
    await expect(board.get_by_test_id("sms-log")).to_contain_text("无（群众选择不接收短信，或本县未开通短信）")
    assert set(await _times_in(board, "main")) <= deadlines | {"2026-12-07 08:50", "2026-12-07 08:12"}
    await assert_accessible(board, "a task called back")

    # 我的任务 of the assignee: the same deadlines (the task has ended: under 已结, item 6).
    assignee = await people.signed_in(f"qh-{task['assignee']}")
    await assignee.goto("/tasks?phase=ended")
    card = f"#task-{task['task_id']}"
    await expect(assignee.locator(f"{card} [data-testid=respond-by]")).to_have_text(local(task["respond_by"]))
    await expect(assignee.locator(f"{card} [data-testid=resolve-by]")).to_have_text(local(task["resolve_by"]))

    # The officer's inspection (09:00, 09:10), case (filed 09:10) and the list of cases.
    officer = await people.signed_in("qh-s026")
    await officer.goto(f"/enforcement/inspections/{inspection['inspection_id']}")
    assert await _times_in(officer, "main") == ["2026-12-07 09:00", "2026-12-07 09:10"]
    await officer.goto(f"/enforcement/cases/{case['case_id']}")
    case_times = {"2026-12-07 09:10", local(case["decision_due"])}
    shown = await _times_in(officer, "main")
    assert "2026-12-07 09:10" in shown and set(shown) <= case_times, shown
    await officer.goto("/enforcement")
    row = officer.locator(f"a[href='/enforcement/cases/{case['case_id']}']").locator("xpath=ancestor::tr")
    assert SHOWN_TIME.findall(await row.inner_text()) == ["2026-12-07 09:10", local(case["decision_due"])]
    # The other pages here are the crawl's (below), which runs axe-core on every page as each role.


async def _planned(enforcement: Api, target: str, task_ids: bool = True) -> dict[str, Any]:
    """The planned inspection of `target`, once its need has its task (a re-check of a rectification
    has none: `task_ids=False`)."""
    async def find() -> dict[str, Any] | None:
        rows = await _ok(await enforcement.call("GET", "/v1/inspections", as_=OFFICER,
                                                params={"target": target, "status": "planned"}))
        return rows[0] if rows and rows[0]["needs"] and (not task_ids or all(n["task_id"] for n in rows[0]["needs"])) \
            else None

    return await eventually(find, what=f"a planned inspection of {target}")


# --- item 5: words, not codes ---------------------------------------------------------------------
# Words a page may show in Latin letters: the product, the file formats it offers, the A and B posts.
PROPER_NOUNS = frozenset({"Townflow", "CSV", "Excel", "A", "B"})
LATIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")


def _town_codes() -> dict[str, set[str]]:
    """Every code of the county's configuration, with the names it may be shown beside."""
    codes: dict[str, set[str]] = {}
    for d in COUNTY.info.departments if COUNTY.info else ():
        codes.setdefault(d.code, set()).add(d.name)
    for town in COUNTY.towns.values():
        for code, name in ([(i.code, i.name) for i in town.catalog.values()]
                           + [(v.code, v.name) for v in town.info.villages]
                           + [(s.id, s.name) for s in town.staff.values()]
                           + [(p.code, p.name) for p in town.posts.values()]
                           + [(m.code, m.name) for m in town.modules.values()]):
            codes.setdefault(code, set()).add(name)
    return codes


CODES = _town_codes()


# A web address (the receipt's, of the status page) is an identifier people type or scan, not words.
WEB_ADDRESS = re.compile(r"https?://\S+")


def english_on(lines: list[str]) -> list[str]:
    """The Latin words of a page's lines that are neither a listed proper noun, nor a code of the
    town shown on the same line as its name, nor an identifier (an access code, a credit code: letters
    with digits, and no code of the town; a web address)."""
    found = []
    for line in (WEB_ADDRESS.sub(" ", text) for text in lines):
        for word in LATIN.findall(line):
            if not re.search(r"[A-Za-z]", word) or word in PROPER_NOUNS:
                continue
            if word in CODES:
                if not any(name in line for name in CODES[word]):
                    found.append(f"{word} (a code without its name) in {line.strip()[:120]!r}")
            elif not re.search(r"\d", word):
                found.append(f"{word} in {line.strip()[:120]!r}")
    return found


# What a person reads on a page: its text with every <details> open, its title, the options of its
# lists, the words of its charts, and the placeholders, titles and labels of its fields.
READ_PAGE = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const attrs = ['placeholder', 'title', 'aria-label', 'alt'];
  return [document.title, ...document.body.innerText.split('\\n'),
          ...[...document.querySelectorAll('option, svg title, svg text')].map(e => e.textContent),
          ...[...document.querySelectorAll('[placeholder], [title], [aria-label], [alt]')].flatMap(
              e => attrs.map(a => e.getAttribute(a)).filter(Boolean))];
}"""
# The demo accounts of docs/console.md: every role of a town, and the county's three.
ROLES = ("qh-s010", "qh-s035", "qh-s036", "qh-s030", "qh-s049", "qh-s026", "qh-s032", "qh-s002", "c001", "c002",
         "c004")


async def _a_matter_in_every_state(county_stack: Stack) -> dict[str, Any]:
    """Tasks waiting, with an extension asked, to check, returned, closed with a callback, and of a
    module leader's module; a joint visit of three units finding a rectification, and its re-check;
    an inspection done with a case; an enterprise inspected by two units separately. Their ids, for
    the pages that show them."""
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    enforcement = Api(county_stack, "enforcement", QINGHE)
    tasks = []
    for _ in range(4):
        filed = await _ok(await intake.call("POST", "/v1/requests", as_=CLERK,
                                            json=filing(location=f"青禾村{uuid.uuid4().int % 10**8:08d}号")))
        tasks.append(await task_of(dispatch, filed["request_id"]))
    waiting, to_check, returned, closed = tasks

    async def step(task: dict[str, Any], path: str, body: Any = None, who: tuple[str, ...] | None = None) -> None:
        await _ok(await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/{path}",
                                      as_=who or (task["assignee"], "staff"), json=body))

    await step(waiting, "extend", {"days": 3, "reason": "需补充材料"})
    for task in (to_check, closed):
        await step(task, "accept")
        await step(task, "complete", {"resolution": "已办结", "reply": "已为您办理完毕。"})
    await step(returned, "return", {"reason": "不属于本岗位"})
    await step(closed, "verify", {"passed": True, "note": "核查通过"}, COMMAND)
    await step(closed, "callback", {"reached": True, "rating": "basically_satisfied", "note": "基本满意"}, COMMAND)

    # A matter of the 社会事务办 module, whose leader (qh-s002) sees it among the module's tasks.
    social = await _ok(await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
        item_code="S005", description="临时救助申请", location=f"东湖村{uuid.uuid4().int % 10**8:08d}号")))
    tasks.append(await task_of(dispatch, social["request_id"]))
    await step(tasks[-1], "suspend", {"category": "awaiting_third_party", "reason": "等待县民政局答复"})  # 挂起, pending

    # A joint visit of three units (国土所, 村镇规划建设站, 农业综合服务中心) that finds a rectification
    # to make: its result, and the planned re-check of the rectification.
    joint = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    await _ok(await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
        item_code="J001", description="农村建房申请", village="V03", location="西山村", target=joint)))
    joint_visit = await _planned(enforcement, joint)
    await _ok(await enforcement.call("POST", f"/v1/inspections/{joint_visit['inspection_id']}/start", as_=OFFICER,
                                     json={"officers": ["s026", "s027"]}))
    await _ok(await enforcement.call(
        "POST", f"/v1/inspections/{joint_visit['inspection_id']}/result", as_=OFFICER, json={
            "officers": ["s026", "s027"], "present_units": joint_visit["units"],
            "findings": [{"task_id": n["task_id"], "outcome": "rectify", "note": "地基退让不足",
                          "rectify_by": "2027-01-15"} for n in joint_visit["needs"]]}))
    recheck = await _planned(enforcement, joint, task_ids=False)

    enterprise = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    inspections = []
    for item in ("E003", "E004"):  # 县应急管理局, then 县市场监督管理局 separately: 多头检查
        await _ok(await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
            channel="hotline", item_code=item, description="企业检查", village="V02", location="东湖村工业园",
            target=enterprise)))
        planned = await _planned(enforcement, enterprise)
        await _ok(await enforcement.call("POST", f"/v1/inspections/{planned['inspection_id']}/start", as_=OFFICER,
                                         json={"officers": ["s026", "s027"]}))
        inspections.append(planned)
    first = inspections[0]
    done = await _ok(await enforcement.call("POST", f"/v1/inspections/{first['inspection_id']}/result", as_=OFFICER,
                                            json={"officers": ["s026", "s027"], "present_units": first["units"],
                                                  "findings": [{"task_id": n["task_id"], "outcome": "violation",
                                                                "note": "消防通道堵塞"} for n in first["needs"]]}))
    filed = await _ok(await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
        channel="hotline", item_code="E009", description="无照经营", village="V02", location="东湖村工业园",
        target=enterprise)))
    return {"tasks": [t["task_id"] for t in tasks],
            "inspections": [joint_visit["inspection_id"], recheck["inspection_id"],
                            *(i["inspection_id"] for i in inspections)],
            "case": done["cases"][0], "ticket": filed["ticket_no"], "code": filed["access_code"]}


async def test_no_page_of_any_role_shows_an_english_word(people: People, county_stack: Stack) -> None:
    made = await _a_matter_in_every_state(county_stack)
    pages = ["/board", *(f"/board/tasks/{t}" for t in made["tasks"]), "/intake", "/tasks", f"/tasks/{made['tasks'][0]}",
             "/enforcement",
             *(f"/enforcement/inspections/{i}" for i in made["inspections"]), f"/enforcement/cases/{made['case']}",
             "/enforcement/alerts", "/appraisal", "/county", "/suspensions", f"/tasks/{made['tasks'][-1]}/suspension",
             "/audit", "/map", "/hotspots", "/rehearsal", "/deliveries"]
    found: dict[str, list[str]] = {}
    inaccessible: dict[str, list[str]] = {}  # item 9: axe-core on every page as each role
    axe_seconds = 0.0
    text: list[str] = []

    async def read(page: Page, where: str, access_code: str | None = None) -> None:
        lines = await page.evaluate(READ_PAGE)
        text.extend(lines)
        nonlocal axe_seconds
        started = time.perf_counter()
        if violations := await axe_violations(page):  # once per page shape (conftest.SHAPE)
            inaccessible[where] = violations
        axe_seconds += time.perf_counter() - started
        # An access code may be letters alone (intake's alphabet): the receipt's own is no word.
        if english := [w for w in english_on(lines) if access_code is None or not w.startswith(f"{access_code} ")]:
            found[where] = english

    seen = 0
    for login in ROLES:
        person = await people.signed_in(login)
        for path in pages:
            response = await person.goto(path)
            assert response is not None and response.status in (200, 403), f"{login} {path}: {response}"
            await read(person, f"{login} {path}")
            seen += response.status == 200
        if login == "qh-s010":  # a receipt, with the duplicates it hints at
            _, code = await file_at_the_window(person)
            await read(person, f"{login} receipt", code)
    citizen = await people.anonymous(phone=True)
    for path in ("/signin", "/status", "/no/such/page"):
        await citizen.goto(path)
        await read(citizen, path)
    await citizen.goto("/status")
    await citizen.locator("input[name=ticket]").fill(made["ticket"])
    await citizen.locator("input[name=code]").fill(made["code"])
    await citizen.get_by_role("button", name="查询").click()
    await expect(citizen.get_by_test_id("status")).to_be_visible()
    await read(citizen, "status of a matter")
    assert seen >= 2 * len(ROLES), seen  # every role reads pages of its own, not only refusals
    # What was made is on the pages, by name: the crawl read them, not empty lists.
    read_all = "\n".join(text)
    for words in ("新生儿落户", "临时救助申请", "户籍办理岗", "A岗", "3个工作日", "国土所", "村镇规划建设站",
                  "农业综合服务中心", "整改复查", "限期整改", "违法立案", "县应急管理局", "县市场监督管理局",
                  "等待其他单位答复"):
        assert words in read_all, words
    assert not found, "\n".join(f"{where}: {word}" for where, words in found.items() for word in words)
    lesser = Counter(f"{v['id']} ({v['impact']})" for found in CHECKED.values() for v in found)
    print(f"axe-core: {len(CHECKED)} page shapes so far, {axe_seconds:.1f} s in the crawl; "
          f"findings by page shape: {dict(lesser)}")
    assert not inaccessible, "\n".join(f"{where}: {v}" for where, vs in inaccessible.items() for v in vs)
