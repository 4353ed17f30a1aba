"""The console's task lists (issue #27) on fake service answers: the address's search and filters
reach dispatch's task search as its parameters, pages follow in the address, 我的任务 is the
person's own, and the spreadsheet is UTF-8 with BOM and Chinese headers."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlparse

import httpx

from console.accounts import Person
from console.task_lists import cell

from .test_console_lifecycle import COMMAND, _console, problem

QINGHE = "321003104"
STAFF = Person("qh-s049", "s049", "廖凡", frozenset({"staff"}), QINGHE, "青禾镇")
TASK = {"task_id": "00000000-0000-0000-0000-0000000000aa", "town_code": QINGHE, "ticket_no": f"{QINGHE}202612060001",
        "item_code": "S001", "colour": "red", "village": "V01", "location": "=青禾村五组", "target": None,
        "lead_module": "service", "assignee": "s049", "status": "returned", "dispatched_at": "2026-12-06T00:12:00+00:00",
        "resolve_by": "2026-12-09T00:12:00+00:00", "completed_at": None, "overdue": True, "reopen_count": 1,
        "return_reason": "不属本岗职责", "respond_by": "2026-12-06T01:12:00+00:00", "task_id_": None}


def dispatch(total: int) -> object:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/task-search":
            offset = int(request.url.params.get("offset", "0"))
            limit = int(request.url.params.get("limit", "50"))
            return httpx.Response(200, json={"total": total, "offset": offset, "limit": limit,
                                             "tasks": [TASK] * max(0, min(limit, total - offset))})
        if request.url.path == "/v1/board":
            return httpx.Response(200, json={"at": "2026-12-06T00:12:00+00:00", "counts": {}, "overdue": [],
                                             "escalated": [], "returned": []})
        return httpx.Response(200, json=[])
    return answer


def searches(seen: list[httpx.Request]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(str(r.url)).query) for r in seen if r.url.path == "/v1/task-search"]


async def test_the_boards_address_is_the_search_dispatch_is_asked() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(dispatch(45), seen, COMMAND):  # type: ignore[arg-type]
        got = await browser.get("/board", params={"q": " 五组 ", "colour": "red", "village": "V01", "overdue": "yes",
                                                  "phase": "ended", "page": "2", "status": ""})
    assert got.status_code == 200
    assert {"q": ["五组"], "colour": ["red"], "village": ["V01"], "overdue": ["true"], "phase": ["ended"],
            "offset": ["20"], "limit": ["20"]} in searches(seen)
    assert "共 <span data-testid=\"found-total\">45</span> 条 · 第 2 / 3 页" in got.text
    assert 'href="/board?q=%E4%BA%94%E7%BB%84&amp;village=V01&amp;colour=red&amp;overdue=yes&amp;phase=ended"' \
           ' rel="prev"' in got.text  # page 1 has no page in its address
    assert "page=3" in got.text and "/board/export.csv?" in got.text
    assert "新生儿落户" in got.text and "青禾村" in got.text and "不属本岗职责" in got.text  # names and the reason


async def test_an_unknown_phase_or_page_is_the_first_page_of_the_open_tasks() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(dispatch(1), seen, COMMAND):  # type: ignore[arg-type]
        await browser.get("/board", params={"phase": "everything", "page": "-3"})
    assert {"phase": ["open"], "offset": ["0"], "limit": ["20"]} in searches(seen)


async def test_dispatchs_refusal_of_a_filter_reads_in_chinese_on_the_page() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/task-search":
            return problem(422, "value.not_allowed", field="colour", errors=[
                {"field": "colour", "code": "value.not_allowed", "detail": "not one of the allowed values"}])
        return dispatch(0)(request)  # type: ignore[operator, no-any-return]

    async for browser, _ in _console(answer, [], COMMAND):
        got = await browser.get("/board", params={"colour": "purple"})
    assert got.status_code == 200 and 'data-code="value.not_allowed"' in got.text


async def test_my_tasks_are_my_own_whatever_the_address_says() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(dispatch(3), seen, STAFF):  # type: ignore[arg-type]
        got = await browser.get("/tasks", params={"assignee": "s030", "scope": "module"})
    assert got.status_code == 200
    [asked] = searches(seen)
    assert asked["assignee"] == ["s049"] and "module" not in asked and asked["phase"] == ["open"]


async def test_the_spreadsheet_opens_in_excel_with_every_page_of_the_list() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(dispatch(450), seen, COMMAND):  # type: ignore[arg-type]
        got = await browser.get("/board/export.csv", params={"colour": "red"})
    assert got.status_code == 200 and got.headers["content-type"] == "text/csv; charset=utf-8"
    assert got.headers["content-disposition"] == f'attachment; filename="tasks-{QINGHE}.csv"'
    assert got.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert lines[0][:4] == ["受理编号", "颜色", "事项", "村（社区）"] and len(lines) == 451
    assert lines[1][:5] == [TASK["ticket_no"], "红", "新生儿落户", "青禾村", "'=青禾村五组"]  # no formula
    assert [q["offset"] for q in searches(seen)] == [["0"], ["200"], ["400"]]
    assert all(q["colour"] == ["red"] for q in searches(seen))


def refusing_from(offset_refused: int, total: int) -> object:
    """dispatch's task search answering its pages until `offset_refused`, then 503."""
    answer = dispatch(total)

    def refusing(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/task-search" and int(request.url.params.get("offset", "0")) >= offset_refused:
            return problem(503, "service.unavailable")
        return answer(request)  # type: ignore[operator]
    return refusing


async def test_a_refusal_after_the_first_page_ends_the_streamed_spreadsheet_saying_it_is_incomplete() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(refusing_from(200, 450), seen, COMMAND):  # type: ignore[arg-type]
        got = await browser.get("/board/export.csv")
    assert got.status_code == 200  # under way when dispatch refused: the file says so at its end
    lines = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert len(lines) == 1 + 200 + 1 and lines[-1][0].startswith("（导出未完成：")
    assert [q["offset"] for q in searches(seen)] == [["0"], ["200"]]


async def test_a_refusal_of_the_first_page_is_the_refusal_page_not_a_spreadsheet() -> None:
    async for browser, _ in _console(refusing_from(0, 450), [], COMMAND):  # type: ignore[arg-type]
        got = await browser.get("/board/export.csv")
    assert got.status_code == 503 and got.headers["content-type"].startswith("text/html")


def test_a_cell_that_excel_would_run_stays_text() -> None:
    assert [cell(t) for t in ("=1+1", "+86", "-", "@x", "青禾", "")] == ["'=1+1", "'+86", "'-", "'@x", "青禾", ""]


HOLDERS = [
    {"town_code": QINGHE, "post": "household", "slot": "A", "staff_id": "s049", "open_tasks": 10, "cap": 10,
     "off_post": False, "takes_next": False},
    {"town_code": QINGHE, "post": "household", "slot": "B", "staff_id": "s050", "open_tasks": 2, "cap": 10,
     "off_post": False, "takes_next": True},
    {"town_code": QINGHE, "post": "household", "slot": "leader", "staff_id": "s048", "open_tasks": 0, "cap": None,
     "off_post": True, "takes_next": False},
]


async def test_a_returned_task_is_redispatched_from_a_picker_of_its_holders_with_their_load() -> None:
    returned = TASK | {"post": "household"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/holders":
            return httpx.Response(200, json=HOLDERS)
        if request.url.path == "/v1/task-search":
            return httpx.Response(200, json={"total": 1, "offset": 0, "limit": 50, "tasks": [returned]})
        if request.url.path.endswith("/redispatch"):
            return httpx.Response(201, json=returned)
        return dispatch(0)(request)  # type: ignore[operator, no-any-return]

    seen: list[httpx.Request] = []
    async for browser, csrf in _console(answer, seen, COMMAND):
        board = await browser.get("/board/live")
        posted = await browser.post(f"/board/tasks/{TASK['task_id']}/redispatch",
                                    data={"csrf": csrf, "target": "assignee:s050", "return_valid": "no"})
    assert board.status_code == 200
    picker = board.text[board.text.index('data-testid="redispatch-picker"'):]
    picker = picker[:picker.index("</select>")]
    assert "在办10/10" in picker and "在办2/10" in picker and "离岗" in picker
    assert 'value="post:household"' in picker and 'value="assignee:s050"' in picker
    assert "将派给" in picker and "s050" not in picker.split('value="assignee:s050">')[1][:20]  # a name, not an id
    assert posted.status_code == 303
    [call] = [r for r in seen if r.url.path.endswith("/redispatch")]
    assert call.read() == b'{"assignee":"s050","return_valid":false}'
