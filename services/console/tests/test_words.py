"""What a person reads instead of what the services send: instants on the town's clock (times.py),
codes by the town's names (names.py) and fixed codes in words (labels.py), on pages rendered
from fake service answers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from console import labels
from console.names import CountyNames
from console.times import shown
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .test_console_lifecycle import COMMAND, _console

SHANGHAI = ZoneInfo("Asia/Shanghai")
QINGHE = "321003104"


@pytest.mark.parametrize(("value", "seen"), [
    ("2026-12-06T00:12:00+00:00", "2026-12-06 08:12"),       # UTC, as intake's timeline sends it
    ("2026-12-06T00:12:00Z", "2026-12-06 08:12"),
    ("2026-12-06T08:12:59+08:00", "2026-12-06 08:12"),       # already local, as dispatch's deadlines
    ("2026-12-05T17:30:00-05:00", "2026-12-06 06:30"),       # another offset, across midnight
    (datetime(2026, 12, 6, 0, 12, tzinfo=UTC), "2026-12-06 08:12"),
    ("2026-12-06", "2026-12-06"),                             # a date stays a date
    (date(2026, 12, 6), "2026-12-06"),
    (None, ""),
    ("", ""),
    ("2026-12-06T08:12", "2026-12-06T08:12"),                # no offset: no instant, shown as given
    ("soon", "soon"),                                         # malformed: shown as given, never a failure
    ("2026-13-45T99:00:00+00:00", "2026-13-45T99:00:00+00:00"),
    (20261206, "20261206"),
])
def test_an_instant_is_shown_on_the_towns_clock_and_anything_else_as_given(value: object, seen: str) -> None:
    assert shown(value, SHANGHAI) == seen


def test_without_a_zone_an_instant_keeps_its_own_offset() -> None:
    assert shown("2026-12-06T00:12:00+00:00", None) == "2026-12-06 00:12"


def test_time_limits_read_in_words() -> None:
    assert [labels.time_limit(t) for t in ("3wd", "24h", "2wh", "15wd", "soon")] == [
        "3个工作日", "24小时", "2个工作小时", "15个工作日", "soon"]


def test_a_towns_codes_read_by_their_names_and_a_county_role_never_guesses_a_person() -> None:
    names = CountyNames(load_county(DEMO_COUNTY_DIR))
    qinghe = names.of(QINGHE)
    assert (qinghe.item("S001"), qinghe.village("V01"), qinghe.staff("s049")) == ("新生儿落户", "青禾村", "廖凡")
    assert (qinghe.unit("land"), qinghe.unit("planning"), qinghe.unit("agri")) == ("国土所", "村镇规划建设站",
                                                                                  "农业综合服务中心")
    assert qinghe.unit("natural-resources") == "县自然资源和规划局"
    assert qinghe.post("household") != "household" and qinghe.limit("S001") == "3个工作日"
    assert qinghe.subject("seconded_unit", "police") == "派出所" and qinghe.subject("staff", "s049") == "廖凡"
    assert qinghe.staff("s999") == "s999"  # unknown: as it came
    county = names.of(None)
    assert county.staff("s049") == "s049" and county.village("V01") == "V01"  # a different person in each town
    assert county.town(QINGHE) == "青禾镇" and county.zone == SHANGHAI


BOARD_AT = "2026-12-06T00:12:00+00:00"
TASK = {"task_id": "00000000-0000-0000-0000-0000000000aa", "town_code": QINGHE, "ticket_no": f"{QINGHE}-20261206-00001",
        "colour": "yellow", "assignee": "s049", "status": "dispatched", "resolve_by": "2026-12-09T00:12:00+00:00"}


def _board(at: str) -> httpx.Response:
    return httpx.Response(200, json={"at": at, "counts": {}, "overdue": [], "escalated": [], "returned": [TASK]})


def _lists(request: httpx.Request, tasks: list[dict[str, str]]) -> httpx.Response:
    """Dispatch's task lists: the search's page, no extension waiting, the plain list."""
    if request.url.path == "/v1/task-search":
        return httpx.Response(200, json={"total": len(tasks), "offset": 0, "limit": 50, "tasks": tasks})
    return httpx.Response(200, json=[] if request.url.path in ("/v1/extensions", "/v1/holders") else tasks)


async def test_the_board_shows_its_times_on_the_towns_clock_and_its_staff_by_name() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _board(BOARD_AT) if request.url.path == "/v1/board" else _lists(request, [TASK])

    async for browser, _ in _console(answer, [], COMMAND):
        got = await browser.get("/board/live")
    assert got.status_code == 200
    assert '<time data-testid="board-at">2026-12-06 08:12</time>' in got.text
    assert "2026-12-09 08:12" in got.text and "00:12" not in got.text
    assert "廖凡" in got.text and ">s049<" not in got.text


async def test_a_time_the_console_cannot_read_is_shown_as_given_not_a_failure() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _board("not a time") if request.url.path == "/v1/board" else _lists(request, [])

    async for browser, _ in _console(answer, [], COMMAND):
        got = await browser.get("/board/live")
    assert got.status_code == 200 and '<time data-testid="board-at">not a time</time>' in got.text


SCORE = {"subject_type": "staff", "subject_id": "s049", "period": "2026-12", "rank": 1, "composite": 80.0,
         "points": 12.0, "town_code": QINGHE,
         "rates": {"response": 1.0, "resolution": 0.5, "satisfaction": None},
         "counts": {"dispatched": 4, "rated": 2, "satisfied": 1, "overdue": 3, "escalated_red": 0}}
ALERT = {"staff_id": "s049", "period": "2026-12", "level": "reminder", "raised_at": "2026-12-06T00:12:00+00:00",
         "reasons": ["3 overdue tasks this month (threshold 3)"], "cause_event_id": "e1"}


async def test_an_alert_reads_by_the_staff_members_name_and_figures_not_appraisals_english() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "/v1/rankings": {"period": "2026-12", "staff": {"red": [SCORE], "black": []}},
            "/v1/scores": [SCORE, {**SCORE, "subject_type": "seconded_unit", "subject_id": "police"}],
            "/v1/alerts": [ALERT],
            "/v1/bonus": {"period": "2026-12", "town_code": QINGHE, "total": "100.00", "shares": [
                {"staff_id": "s049", "module": "police", "post_coefficient": 1.0, "points": 12.0, "weight": 12.0,
                 "share": "100.00"}]},
        }.get(request.url.path, []))

    async for browser, _ in _console(answer, []):
        got = await browser.get("/appraisal")
    assert got.status_code == 200
    assert "廖凡：本月超期 3 件，红色任务升级督办 0 件，评价 2 次（满意 1 次）" in got.text
    assert "overdue" not in got.text and ">s049<" not in got.text and ">police<" not in got.text
    assert "<td>派出所</td>" in got.text  # the seconded unit's score and the bonus's module by name
