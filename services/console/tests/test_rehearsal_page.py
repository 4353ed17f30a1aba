"""改革预演 (issue #32) without a stack, dispatch answered by a fake transport: the page prefilled with
the town's files, only the changed files sent, the comparison read by name (modules, posts, people),
rates as percentages and times on the town's clock with what got worse first, and dispatch's
refusals in Chinese beside the field they name; who sees the page."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import httpx

from console.accounts import Person
from console.names import CountyNames
from console.pages.rehearsal import last_month, worse_lines
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR
from townflow_shared.town import town_files

from .test_console_lifecycle import COMMAND, OFFICE, _console, problem

QINGHE = "321003104"
COUNTY = load_county(DEMO_COUNTY_DIR)
HERE = CountyNames(COUNTY).of(QINGHE)
FILES = town_files(COUNTY.towns[QINGHE])


def figures(handled: int, response: float | None, resolution: float, overdue: int, **more: Any) -> dict[str, Any]:
    return {"handled": handled, "busiest_day": "2026-11-23", "busiest_day_tasks": 3, "most_open": 2,
            "wait_to_accept_hours": 1.25, "response": response, "resolution": resolution, "satisfaction": None,
            "overdue": overdue, "escalated": 0, "composite": 81.5, "points": 12.0, **more}


COMPARISON = {
    "town_code": QINGHE, "from": "2026-10-31T16:00:00+00:00", "to": "2026-11-30T16:00:00+00:00", "times": "drawn",
    "seed": 7, "matters": 12, "same_assignee": 0.9583, "recorded": figures(12, 0.8, 0.6, 2),
    "subjects": [
        {"kind": "town", "id": QINGHE, "real": figures(12, 0.8, 0.6, 2), "alternative": figures(12, 0.75, 0.6, 3)},
        {"kind": "module", "id": "org", "real": figures(4, 1.0, 0.5, 0), "alternative": None},
        {"kind": "module", "id": "social", "real": figures(8, 0.7, 0.65, 2),
         "alternative": figures(12, 0.75, 0.6, 3, most_open=5)},
        {"kind": "post", "id": "party-services", "real": figures(4, 1.0, 0.5, 0),
         "alternative": figures(4, 0.5, 0.5, 1)},
        {"kind": "staff", "id": "s019", "real": figures(4, 1.0, 0.5, 0), "alternative": figures(4, 0.5, 0.5, 1)},
    ],
    "worse": [{"kind": "post", "id": "party-services", "figure": "response", "real": 1.0, "alternative": 0.5},
              {"kind": "module", "id": "social", "figure": "most_open", "real": 2, "alternative": 5},
              {"kind": "staff", "id": "s019", "figure": "overdue", "real": 0, "alternative": 1}],
}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_the_page_starts_from_the_towns_files_and_last_month() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(httpx.Response(500), seen):
        got = await browser.get("/rehearsal")
    assert got.status_code == 200 and not seen  # nothing asked of dispatch until the person submits
    assert 'href="/rehearsal"' in got.text and "改革预演" in got.text  # in the navigation
    for name in ("modules.yaml", "posts.yaml", "staff.yaml", "rules.yaml", "catalog.yaml"):
        assert f'name="{name}"' in got.text and f'name="upload.{name}"' in got.text
    assert "组织建设办公室" in got.text and "party-services" in got.text  # the town's own YAML, prefilled
    assert 'enctype="multipart/form-data"' in got.text and 'name="csrf"' in got.text
    assert "<script" not in got.text.split("<main>")[1]
    assert last_month(date(2026, 12, 7)) == (date(2026, 11, 1), date(2026, 11, 30))
    assert last_month(date(2027, 1, 1)) == (date(2026, 12, 1), date(2026, 12, 31))


async def test_only_the_changed_files_go_to_dispatch_and_the_comparison_reads_by_name() -> None:
    seen: list[httpx.Request] = []
    merged = FILES["posts.yaml"].replace("module: org", "module: social")
    form = {**FILES, "posts.yaml": merged.replace("\n", "\r\n"), "from": "2026-11-01", "to": "2026-11-30",
            "times": "drawn", "seed": "7", "town": QINGHE}
    form.pop("town.yaml")
    async for browser, csrf in _console(httpx.Response(200, json=COMPARISON), seen):
        got = await browser.post("/rehearsal", data={**form, "csrf": csrf})
    assert got.status_code == 200, got.text
    (call,) = seen
    assert (call.method, call.url.path, call.url.params.get("town")) == ("POST", "/v1/rehearsals", None)
    assert call.headers["Authorization"].startswith("Bearer ")
    body = json.loads(call.content)
    assert body == {"from": "2026-11-01", "to": "2026-11-30", "times": "drawn", "seed": 7,
                    "files": {"posts.yaml": merged}}  # the browser's line ends as YAML's; the rest stay the town's
    text = _text(got.text)
    # The period on the town's clock; the twin line; what got worse, by name, before any table.
    assert "青禾镇，2026-11-01 00:00 至 2026-12-01 00:00，共 12 件事项" in text
    assert "95.8% 的任务派给了当时实际的承办人" in text
    party_services, social, person = HERE.post("party-services"), HERE.unit("social"), HERE.staff("s019")
    assert party_services != "party-services" and person != "s019"
    worse = [f"岗位 {party_services}：响应率 100.0% → 50.0%", f"模块 {social}：同时在办 2 → 5",
             f"个人 {person}：逾期 0 → 1"]
    assert all(line in text for line in worse), text
    assert text.index(worse[0]) < text.index('按模块')
    # Side by side, by name: the merged module gone from the new layout, rates as percentages.
    assert f"{HERE.unit('org')}（撤并）" in text and "80.0% → 75.0%" in text and "2026-11-23（3件）" in text
    assert "各模块办结率（现行布局与新布局）" in got.text and 'class="b-alt"' in got.text  # a bar chart, no script
    shown = _text(got.text.split('data-testid="rehearsal-result"')[1])  # what is read, not the rows' ids
    assert not re.search(r"party-services|s019|\borg\b|\bsocial\b", shown), shown


async def test_nothing_changed_rehearses_the_towns_own_layout_and_an_upload_wins() -> None:
    seen: list[httpx.Request] = []
    form = {name: text for name, text in FILES.items() if name != "town.yaml"}
    uploaded = FILES["staff.yaml"].replace("name: ", "name: 新", 1)
    async for browser, csrf in _console(httpx.Response(200, json=COMPARISON), seen):
        await browser.post("/rehearsal", data={**form, "from": "2026-11-01", "to": "2026-11-30", "csrf": csrf})
        await browser.post("/rehearsal", data={**form, "from": "2026-11-01", "to": "2026-11-30", "csrf": csrf},
                           files={"upload.staff.yaml": ("staff.yaml", uploaded.encode(), "text/yaml")})
    assert json.loads(seen[0].content)["files"] == {"modules.yaml": FILES["modules.yaml"]}
    assert json.loads(seen[1].content)["files"] == {"staff.yaml": uploaded}


async def test_a_refusal_is_shown_in_chinese_beside_the_field_it_names() -> None:
    wrong_file = problem(422, "rehearsal.layout_invalid", field="files.posts.yaml",
                         params={"problem": "posts.yaml: field posts.3.b_holder: unknown staff id 's099'",
                                 "at": "posts.3.b_holder"})
    not_yaml = problem(422, "rehearsal.layout_invalid", field="files.staff.yaml",
                       params={"problem": "staff.yaml: not valid YAML", "at": ""})
    period = problem(422, "rehearsal.period_invalid", field="to")
    pages = []
    for answer in (wrong_file, not_yaml, period):
        async for browser, csrf in _console(answer, []):
            pages.append(await browser.post("/rehearsal", data={
                "posts.yaml": "posts: []", "from": "2026-11-30", "to": "2026-11-01", "csrf": csrf}))
    assert [p.status_code for p in pages] == [422, 422, 422]
    beside = [re.search(r'data-field="([^"]+)">([^<]+)<', p.text) for p in pages]
    assert [(m.group(1), m.group(2)) for m in beside if m] == [
        ("files.posts.yaml", "岗位文件：有误，出错位置：posts.3.b_holder"),
        ("files.staff.yaml", "人员文件：有误，出错位置：文件格式（请检查缩进、冒号和引号）"),
        ("to", "结束日期：演练时段须结束于开始之后，且不超过 62 天")]
    assert "unknown staff" not in pages[0].text and "posts: []" in pages[0].text  # what was typed stays


async def test_the_page_is_the_appraisal_offices_and_the_party_secretarys_and_posts_need_the_csrf_token() -> None:
    secretary = Person("qh-s000", COUNTY.towns[QINGHE].info.party_secretary, "书记", frozenset({"staff"}), QINGHE,
                       "青禾镇")
    clerk = Person("qh-s010", "s010", "窗口", frozenset({"staff", "clerk"}), QINGHE, "青禾镇")
    statuses = {}
    for who, person in (("office", OFFICE), ("secretary", secretary), ("command", COMMAND), ("clerk", clerk)):
        async for browser, _ in _console(httpx.Response(500), [], person):
            statuses[who] = (await browser.get("/rehearsal")).status_code
    assert statuses == {"office": 200, "secretary": 200, "command": 403, "clerk": 403}
    seen: list[httpx.Request] = []
    async for browser, _ in _console(httpx.Response(200, json=COMPARISON), seen):
        refused = await browser.post("/rehearsal", data={"posts.yaml": "posts: []", "csrf": "not the token"})
    assert refused.status_code == 403 and not seen


def test_what_got_worse_reads_by_name_and_a_new_subject_says_so() -> None:
    assert worse_lines(HERE, [{"kind": "module", "id": "social", "figure": "resolution", "real": 0.8,
                               "alternative": 0.725},
                              {"kind": "module", "id": "new", "figure": "overdue", "real": None, "alternative": 3}]) == [
        f"模块 {HERE.unit('social')}：办结率 80.0% → 72.5%", "模块 new（新设）：逾期 3"]
