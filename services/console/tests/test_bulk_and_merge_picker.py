"""The board's bulk redispatch and the merge form's picker of primaries (issue #27 item 6), on fake
service answers: one redispatch per ticked task, each task's outcome beside it in Chinese (a
refusal stopping no other); the primaries offered are the open matters of the same item and
village, the matter itself left out, and what is typed wins over what is picked."""

from __future__ import annotations

import json
import re

import httpx

from console.names import CountyNames
from console.pages.board import BULK_INCOMPLETE, candidate_options, redispatch_body
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .test_console_lifecycle import COMMAND, A, B, C, _console, problem
from .test_task_lists import HOLDERS, QINGHE, TASK

ONE, TWO = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000a2"
NEW = "00000000-0000-0000-0000-0000000000b1"


def _row(page: str, task_id: str) -> str:
    """The bulk table's row of a task, as sent."""
    start = page.index(f'<tr id="bulk-{task_id}"')
    return page[start:page.index("</tr>", start)]


def _bulk_dispatch(request: httpx.Request) -> httpx.Response:
    """Two returned tasks: the first is redispatched to s050, the second was redispatched by
    someone else a moment before, so dispatch refuses it (409 task.status_forbids)."""
    path = request.url.path
    if path == "/v1/holders":
        return httpx.Response(200, json=HOLDERS)
    if path == "/v1/task-search":
        return httpx.Response(200, json={"total": 2, "offset": 0, "limit": 50, "tasks": [
            TASK | {"task_id": ONE, "post": "household", "ticket_no": A},
            TASK | {"task_id": TWO, "post": "household", "ticket_no": B}]})
    if path == f"/v1/tasks/{ONE}/redispatch":
        return httpx.Response(201, json=TASK | {"task_id": NEW, "ticket_no": A, "assignee": "s050",
                                                "status": "dispatched"})
    if path == f"/v1/tasks/{TWO}/redispatch":
        return problem(409, "task.status_forbids", params={"action": "redispatch", "status": "redispatched",
                                                             "allowed": "returned"})
    if path == f"/v1/tasks/{TWO}":
        return httpx.Response(200, json=TASK | {"task_id": TWO, "ticket_no": B, "status": "redispatched"})
    if path == "/v1/board":
        return httpx.Response(200, json={"at": "2026-12-06T00:12:00+00:00", "counts": {}, "overdue": [],
                                         "escalated": [], "returned": []})
    return httpx.Response(200, json=[])


async def test_bulk_redispatch_posts_each_ticked_task_and_shows_each_outcome_beside_it() -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_bulk_dispatch, seen, COMMAND):
        board = await browser.get("/board")
        got = await browser.post("/board/redispatch", data={"csrf": csrf, "task": [ONE, TWO],
                                                            "target": "assignee:s050"})
    # The board offers the bulk form with one picker of the town's holders, by name and load.
    form = board.text[board.text.index('data-testid="bulk-redispatch"'):]
    assert 'value="assignee:s050"' in form and "在办2/10" in form and 'value="post:household"' in form
    assert got.status_code == 200
    posted = [r for r in seen if r.url.path.endswith("/redispatch")]
    assert [r.url.path for r in posted] == [f"/v1/tasks/{ONE}/redispatch", f"/v1/tasks/{TWO}/redispatch"]
    assert all(json.loads(r.read()) == {"assignee": "s050", "return_valid": True} for r in posted)
    done, refused = _row(got.text, ONE), _row(got.text, TWO)
    assert re.search(r'data-testid="bulk-outcome"><span class="ok">已改派给\S+</span>', done)
    assert "s050" not in done.split("已改派给")[1][:10] and 'name="task"' not in done  # a name; nothing to tick
    assert '<span class="field-error">未改派：任务现在已改派，不能这样办理</span>' in refused
    assert f'name="task" value="{TWO}"' in refused and " checked>" in refused  # still ticked, to try again
    assert 'data-testid="bulk-summary">已改派 1 项，1 项未改派（原因见各项）。' in got.text
    assert "English" not in got.text
    assert 'value="assignee:s050" selected' in got.text  # the target chosen stays chosen


async def test_bulk_redispatch_with_nothing_ticked_or_no_target_sends_nothing() -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_bulk_dispatch, seen, COMMAND):
        unticked = await browser.post("/board/redispatch", data={"csrf": csrf, "target": "post:household"})
        untargeted = await browser.post("/board/redispatch", data={"csrf": csrf, "task": [ONE], "target": ""})
        forged = await browser.post("/board/redispatch", data={"task": [ONE], "target": "post:household"})
    assert unticked.status_code == untargeted.status_code == 422
    assert BULK_INCOMPLETE in unticked.text and BULK_INCOMPLETE in untargeted.text
    assert f'name="task" value="{ONE}" aria-label="选择 {A}" checked>' in untargeted.text  # the ticks stay
    assert forged.status_code == 403
    assert not [r for r in seen if r.method == "POST"]


def test_the_redispatch_body_is_the_pickers_choice_or_what_is_typed() -> None:
    assert redispatch_body({"target": "post:household"}) == {"post": "household", "return_valid": True}
    assert redispatch_body({"target": "assignee:s050", "return_valid": "no"}) == {"assignee": "s050",
                                                                                 "return_valid": False}
    assert redispatch_body({"by": "post", "to": " planning "}) == {"post": "planning", "return_valid": True}
    assert redispatch_body({}) == {"assignee": "", "return_valid": True}


def _candidates_answer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/task-search" and request.url.params.get("q") == C:
        return httpx.Response(200, json={"total": 1, "offset": 0, "limit": 5, "tasks": [TASK | {"ticket_no": C}]})
    if request.url.path == "/v1/task-search" and request.url.params.get("item") == "S001":
        return httpx.Response(200, json={"total": 3, "offset": 0, "limit": 50, "tasks": [
            TASK | {"ticket_no": C, "status": "dispatched"}, TASK | {"ticket_no": B, "status": "accepted"},
            TASK | {"ticket_no": A, "status": "dispatched"}]})
    if request.url.path.endswith("/merge"):
        return httpx.Response(200, json={"ticket_no": C, "merged_into": json.loads(request.read())["into"]})
    return _bulk_dispatch(request)


async def test_the_merge_form_offers_the_open_matters_of_the_same_item_and_village_as_primaries() -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_candidates_answer, seen, COMMAND):
        board = await browser.get("/board", params={"merge": C, "into": B})
        picked = await browser.post("/board/merge", data={"csrf": csrf, "ticket_no": C, "into_pick": A, "into": ""})
        typed = await browser.post("/board/merge", data={"csrf": csrf, "ticket_no": C, "into_pick": A, "into": B})
    [search] = [r for r in seen if r.url.path == "/v1/task-search" and r.url.params.get("item")]
    assert dict(search.url.params) == {"item": "S001", "village": "V01", "phase": "open", "limit": "50"}
    picker = board.text[board.text.index('data-testid="merge-picker"'):]
    picker = picker[:picker.index("</select>")]
    assert f'<option value="{B}" selected>{B} · 新生儿落户 · 青禾村 · 办理中</option>' in picker
    assert f'value="{A}"' in picker and f'value="{C}"' not in picker  # not into itself
    assert re.search(r'<input name="into" value="" ', board.text)  # the hint's primary is picked, not typed
    assert picked.status_code == typed.status_code == 303
    assert not [r for r in seen if r.url.path == f"/v1/requests/{C}"]  # no read of the citizen's data
    merges = [json.loads(r.read()) for r in seen if r.url.path.endswith("/merge")]
    assert merges == [{"into": A}, {"into": B}]  # what is typed wins


async def test_a_matter_dispatch_cannot_find_leaves_the_merge_form_typed() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(problem(404, "request.not_found"), seen, COMMAND):
        board = await browser.get("/board", params={"merge": C})
    assert 'data-testid="merge-picker"' not in board.text
    assert 'data-testid="merge-no-candidates"' in board.text and "English" not in board.text


def test_the_candidates_are_one_per_matter_in_words_without_the_matter_itself() -> None:
    here = CountyNames(load_county(DEMO_COUNTY_DIR)).of(QINGHE)
    tasks = [TASK | {"ticket_no": C}, TASK | {"ticket_no": A, "status": "rework"}, TASK | {"ticket_no": A}]
    assert candidate_options(here, C, tasks) == [(A, f"{A} · 新生儿落户 · 青禾村 · 返工")]
