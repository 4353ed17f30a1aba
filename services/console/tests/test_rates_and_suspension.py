"""Issue #27 item 7 on the console: 绩效考核 shows every rate appraisal gives (named as the bulletin
names them, 挂起率 among them) and the suspended count; a suspended task's 办结时限 reads as
stopped (已暂停计时, with the working time left when dispatch's task read gives it), never as
the old deadline still running. Pages rendered from fake service answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from appraisal import bulletin
from appraisal.rules import Counts, rates
from console import labels
from console.pages.appraisal import rate_cells

from .test_console_lifecycle import COMMAND, HOLDER, MATTER, TASK, TASK_ID, _console

QINGHE = "321003104"


def test_the_page_names_every_rate_appraisal_gives_as_the_bulletin_does() -> None:
    assert tuple(labels.APPRAISAL_RATES) == bulletin.RATES
    assert tuple(labels.APPRAISAL_RATES.values()) == bulletin.RATE_NAMES
    assert set(labels.APPRAISAL_RATES) == set(rates(Counts()))  # a new rate in appraisal fails here
    assert labels.APPRAISAL_RATES["suspension"] == "挂起率"


def test_rate_cells_follow_the_columns_and_a_rate_not_given_is_none() -> None:
    full = {key: 0.25 for key in labels.APPRAISAL_RATES}
    assert rate_cells({"rates": full}) == [(key, 0.25) for key in labels.APPRAISAL_RATES]
    older = rate_cells({"rates": {"response": 1.0, "resolution": 0.5, "satisfaction": None}})  # v1.1.0's three
    assert dict(older) == {"response": 1.0, "resolution": 0.5, "satisfaction": None, "rework": None,
                           "extension": None, "reopen": None, "suspension": None}
    assert rate_cells({}) == [(key, None) for key in labels.APPRAISAL_RATES]


def _suspension(status: str, hours: float | None) -> dict[str, Any]:
    return {"status": status, "working_left_hours": hours, "category": "awaiting_citizen", "reason": "等材料"}


@pytest.mark.parametrize(("task", "words"), [
    ({"status": "accepted"}, None),                                            # the deadline runs
    ({"status": "accepted", "suspensions": [_suspension("resumed", 16.0)]}, None),   # resumed: runs again
    ({"status": "suspended", "suspensions": [_suspension("suspended", 16.0)]}, "已暂停计时（剩余 16 个工作小时）"),
    ({"status": "suspended", "suspensions": [_suspension("resumed", 3.0), _suspension("refused", None),
                                             _suspension("suspended", 2.5)]}, "已暂停计时（剩余 2.5 个工作小时）"),
    ({"status": "suspended", "suspensions": [_suspension("suspended", 0.333333)]}, "已暂停计时（剩余 0.33 个工作小时）"),
    ({"status": "suspended", "suspensions": [_suspension("suspended", 0.0)]}, "已暂停计时（剩余 0 个工作小时）"),
    ({"status": "suspended"}, "已暂停计时"),                                    # a list's task: no figure read
    ({"status": "suspended", "suspensions": [_suspension("suspended", None)]}, "已暂停计时"),
    ({"status": "suspended", "suspensions": [_suspension("resumed", 5.0)]}, "已暂停计时"),  # none in force
])
def test_a_suspended_tasks_deadline_reads_as_stopped_with_no_figure_invented(
        task: dict[str, Any], words: str | None) -> None:
    assert labels.stopped_deadline(task) == words


SCORE = {"subject_type": "staff", "subject_id": "s049", "period": "2026-12", "rank": 1, "composite": 80.0,
         "points": 12.0, "town_code": QINGHE,
         "rates": {"response": 1.0, "resolution": 0.5, "satisfaction": None, "rework": 0.0, "extension": 0.25,
                   "reopen": None, "suspension": 0.75},
         "counts": {"dispatched": 4, "rated": 2, "satisfied": 1, "overdue": 0, "escalated_red": 0, "suspended": 3}}


async def test_the_appraisal_page_shows_every_rate_and_the_suspended_count() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "/v1/rankings": {"period": "2026-12", "staff": {"red": [SCORE], "black": []}},
            "/v1/scores": [SCORE, {**SCORE, "subject_type": "module", "subject_id": "police",  # an older release's
                                   "rates": {"response": 1.0, "resolution": 0.5, "satisfaction": None},
                                   "counts": {"dispatched": 4, "rated": 2}}],
            "/v1/alerts": []}.get(request.url.path, []))

    async for browser, _ in _console(answer, []):
        got = await browser.get("/appraisal")
    assert got.status_code == 200
    for words in (*bulletin.RATE_NAMES, "挂起数"):
        assert f">{words}</th>" in got.text, words
    staff = got.text.split('id="staff-s049"')[1].split("</tr>")[0]
    assert '<td class="num" data-testid="suspended">3</td>' in staff
    assert '<td class="num" data-rate="suspension">75%</td>' in staff
    assert '<td class="num" data-rate="extension">25%</td>' in staff
    assert '<td class="num" data-rate="reopen">—</td>' in staff
    older = got.text.split('id="module-police"')[1].split("</tr>")[0]
    assert '<td class="num" data-testid="suspended">—</td>' in older
    assert '<td class="num" data-rate="suspension">—</td>' in older


SUSPENDED = TASK | {"status": "suspended", "suspensions": [
    {"category": "awaiting_citizen", "reason": "等待补正户口本", "status": "suspended", "requested_by": "s049",
     "requested_at": "2026-12-02T09:00:00+08:00", "decided_by": "s030", "decided_at": "2026-12-02T10:00:00+08:00",
     "note": None, "resolve_by_then": TASK["resolve_by"], "working_left_hours": 14.5, "resumed_by": None,
     "resumed_at": None, "resolve_by_after": None}]}


@pytest.mark.parametrize(("person", "page"), [(COMMAND, f"/board/tasks/{TASK_ID}"), (HOLDER, f"/tasks/{TASK_ID}"),
                                            (HOLDER, f"/tasks/{TASK_ID}/suspension")])
async def test_a_suspended_tasks_page_shows_its_deadline_stopped_not_the_old_date(person: Any, page: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/v1/tasks/{TASK_ID}":
            return httpx.Response(200, json=SUSPENDED)
        if request.url.path.endswith("/sms"):  # the matter's SMS log, on the command centre's page
            return httpx.Response(200, json=[])
        return httpx.Response(200, json=MATTER)

    async for browser, _ in _console(answer, [], person):
        got = await browser.get(page)
    assert got.status_code == 200
    deadline = got.text.split('<dd data-testid="resolve-by">')[1].split("</dd>")[0]
    assert "已暂停计时（剩余 14.5 个工作小时）" in deadline
    assert "2026-12-04" not in deadline and "已挂起" in got.text


async def test_my_tasks_list_shows_a_suspended_tasks_deadline_stopped_and_a_running_one_as_a_time() -> None:
    other = TASK | {"task_id": "7d4c2f0e-0000-4000-8000-000000000002", "ticket_no": "321003104-20261201-00009"}

    def answer(request: httpx.Request) -> httpx.Response:
        tasks = [TASK | {"status": "suspended"}, other]
        if request.url.path == "/v1/task-search":
            return httpx.Response(200, json={"total": 2, "offset": 0, "limit": 20, "tasks": tasks})
        return httpx.Response(200, json=[])

    async for browser, _ in _console(answer, [], HOLDER):
        got = await browser.get("/tasks")
    assert got.status_code == 200
    suspended = got.text.split(f'id="task-{TASK_ID}"')[1].split("</article>")[0]
    assert '<strong class="stopped" data-testid="resolve-by">已暂停计时</strong>' in suspended
    assert "2026-12-04" not in suspended
    running = got.text.split(f'id="task-{other["task_id"]}"')[1].split("</article>")[0]
    assert '<time data-testid="resolve-by">2026-12-04 17:30</time>' in running
