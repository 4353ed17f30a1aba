"""Issue #32 item 4 in a real browser against the real stack: the appraisal office (qh-s032,
绩效督查室) rehearses a merged-module layout on 改革预演 — 组织建设办公室 folded into 社会事务办公室 —
over the day of two matters it files for the merged module's post, and reads the comparison in
words: the merged module shown as gone, its post and people by name, no code. The page passes
axe-core."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from playwright.async_api import expect

from devstack.stack import Stack
from tests.conftest import QINGHE, Api, filing, task_of
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR
from townflow_shared.town import town_files

from .conftest import People, assert_accessible
from .test_console_words import READ_PAGE, english_on

pytestmark = pytest.mark.stack
CLERK = ("s010", "clerk")
TOWN = load_county(DEMO_COUNTY_DIR).towns[QINGHE]


def merged(gone: str, into: str) -> dict[str, str]:
    """The town's layout with module `gone` folded into `into`: its posts, people and items move."""
    files = {name: yaml.safe_load(text) for name, text in town_files(TOWN).items() if name != "town.yaml"}
    files["modules.yaml"]["modules"] = [m for m in files["modules.yaml"]["modules"] if m["code"] != gone]

    def moved(codes: list[str]) -> list[str]:
        return list(dict.fromkeys(into if c == gone else c for c in codes))

    for post in files["posts.yaml"]["posts"]:
        post["module"] = into if post["module"] == gone else post["module"]
    for person in files["staff.yaml"]["staff"]:
        person["module"] = into if person["module"] == gone else person["module"]
    for item in files["catalog.yaml"]["items"]:
        item["lead_module"] = into if item["lead_module"] == gone else item["lead_module"]
        item["cooperating_modules"], item["joint_units"] = moved(item["cooperating_modules"]), moved(item["joint_units"])
    return {name: yaml.safe_dump(content, allow_unicode=True, sort_keys=False) for name, content in files.items()
            if name != "rules.yaml"}


async def test_the_appraisal_office_rehearses_a_merged_module_and_reads_it_in_words(
        people: People, county_stack: Stack) -> None:
    intake, dispatch = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    item = next(i for i in TOWN.catalog.values() if i.lead_module == "org")  # 党组织关系转接, 党群服务岗
    tasks: list[dict[str, Any]] = []
    for _ in range(2):
        filed = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(
            item_code=item.code, description="党组织关系转入", location=f"青禾村{uuid.uuid4().int % 10**8:08d}号"))
        assert filed.status_code == 201, filed.text
        tasks.append(await task_of(dispatch, filed.json()["request_id"]))
    day = datetime.fromisoformat(tasks[0]["dispatched_at"]).astimezone(ZoneInfo(TOWN.info.timezone)).date()

    office = await people.signed_in("qh-s032")
    await office.get_by_role("link", name="改革预演").click()
    await expect(office.get_by_role("heading", name="改革预演")).to_be_visible()
    await assert_accessible(office, "改革预演, the form")
    assert not (english := english_on(await office.evaluate(READ_PAGE))), english
    await office.get_by_label("开始日期").fill(day.isoformat())
    await office.get_by_label("结束日期").fill(day.isoformat())
    for name, text in merged("org", "social").items():
        await office.locator(f"textarea[name='{name}']").fill(text)
    await office.get_by_role("button", name="开始演练").click()

    result = office.get_by_test_id("rehearsal-result")
    await expect(result).to_be_visible()
    social, org, post = TOWN.modules["social"].name, TOWN.modules["org"].name, TOWN.posts[item.post].name
    await expect(office.get_by_test_id("subjects-module").get_by_role("row", name=f"{org}（撤并）")).to_be_visible()
    await expect(office.get_by_test_id("subjects-module").get_by_role("row", name=social)).to_be_visible()
    holder = TOWN.staff[tasks[0]["assignee"]].name
    await expect(office.get_by_test_id("subjects-post")).to_contain_text(post)
    await expect(office.get_by_test_id("subjects-staff")).to_contain_text(holder)
    summary = await result.locator("p").first.inner_text()
    matters = int(summary.split("共 ")[1].split(" 件")[0])
    assert matters >= 2, summary  # at least the two filed here, in the period chosen
    # The figures in words: nothing of the result is a code or an English word.
    lines = (await result.inner_text()).split("\n")
    assert not english_on(lines), english_on(lines)
    assert any("%" in line for line in lines)  # rates as percentages
    await assert_accessible(office, "改革预演, the comparison")
