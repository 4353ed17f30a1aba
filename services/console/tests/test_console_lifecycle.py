"""The console without a stack, its services answered by a fake transport: intake's refusals of a
merge (problem documents with codes) in plain Chinese beside the field each names, the console's
own 404/405/422/500 pages in Chinese, and the monthly bulletin streamed on from appraisal with the
person's token, its content type and file name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from console.accounts import Accounts, Person
from console.app import Console, create_app
from console.services import Services
from console.session import COOKIE, Session
from console.settings import ConsoleSettings
from console.tokens import TokenSigner
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .fakes import FakeClock, FakeFailures, FakeRecords, FakeSessions

A, B, C = "321003104-20261201-00001", "321003104-20261201-00002", "321003104-20261201-00003"
COMMAND = Person("qh-s030", "s030", "指挥员", frozenset({"staff", "command_centre"}), "321003104", "青禾镇")


def problem(status: int, code: str, **members: Any) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "application/problem+json"}, json={
        "type": f"urn:townflow:problem:{code}", "title": "English", "status": status,
        "detail": "English detail", "code": code, **members})


OFFICE = Person("qh-s032", "s032", "方圆", frozenset({"staff", "appraisal_admin"}), "321003104", "青禾镇")
SECRET = "unit-test-secret-of-32-bytes-at-least"


async def _console(answer: httpx.Response | Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request],
                   person: Person = OFFICE) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The console app, its services answered by `answer`, signed in as `person` (the 绩效督查室 by
    default): the browser, and the session's CSRF token for its forms."""
    settings = ConsoleSettings(town_dir=DEMO_COUNTY_DIR, jwt_secret=SecretStr(SECRET))
    app = create_app(settings)
    county = load_county(DEMO_COUNTY_DIR)
    clock = FakeClock()
    sessions = FakeSessions(clock)
    session = Session(person=person)
    session_id = await sessions.begin(session)

    def fake_service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request) if callable(answer) else answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(fake_service)) as services_client:
        signer = TokenSigner(SECRET, "HS256", kid=None, issuer=None, audience_template="townflow-{service}",
                             ttl_seconds=60)
        urls = {s: f"http://{s}.test" for s in ("intake", "dispatch", "enforcement", "appraisal", "notify")}
        app.state.console = Console(settings, county, Accounts(county),
                                    Services(urls, signer, services_client, county), sessions,
                                    FakeFailures(clock).unit_of_work, FakeRecords(clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://console.test",
                                     cookies={COOKIE: session_id}) as browser:
            yield browser, session.csrf


async def test_the_bulletin_is_streamed_on_from_appraisal_with_the_persons_token() -> None:
    seen: list[httpx.Request] = []
    sheet = "\ufeff月份,模块,办结率\n2026-11,社会事务办公室,0.95\n".encode()
    answer = httpx.Response(200, content=sheet, headers={
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": 'attachment; filename="bulletin-321003104-2026-11.csv"'})
    async for browser, _ in _console(answer, seen):
        got = await browser.get("/appraisal/bulletin", params={"period": "2026-11", "format": "csv"})
    assert got.status_code == 200 and got.content == sheet
    assert got.headers["content-type"] == "text/csv; charset=utf-8"
    assert got.headers["content-disposition"] == 'attachment; filename="bulletin-321003104-2026-11.csv"'
    (call,) = seen
    assert call.url.path == "/v1/bulletin" and dict(call.url.params) == {"period": "2026-11", "format": "csv"}
    claims = jwt.decode(call.headers["Authorization"].removeprefix("Bearer "), SECRET, algorithms=["HS256"],
                        audience="townflow-appraisal")
    assert claims["sub"] == "s032" and "appraisal_admin" in claims["roles"]


async def test_a_missing_bulletin_is_a_plain_error_page() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(problem(404, "period.no_figures", params={"period": "2026-11"}), seen):
        got = await browser.get("/appraisal/bulletin", params={"period": "2026-11"})
    assert got.status_code == 404 and "没有找到2026-11的月度通报" in got.text and "Not Found" not in got.text
    assert [c.url.path for c in seen] == ["/v1/bulletin"]


def _merge_refused(refused: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    """Intake refuses the merge; the board's own reads find dispatch away (the form shows all the same)."""
    def answer(request: httpx.Request) -> httpx.Response:
        return refused if request.url.path.endswith("/merge") else problem(503, "service.database_unavailable")
    return answer


@pytest.mark.parametrize(("refused", "field", "words"), [
    (problem(409, "merge.primary_merged", field="into", params={"ticket": B, "primary": A}), "into",
     f"主件受理编号：{B} 本身已并入 {A}，请直接并入 {A}"),
    (problem(422, "merge.into_itself", field="into", errors=[
        {"field": "into", "code": "merge.into_itself", "detail": "a matter cannot be merged into itself"}]), "into",
     "主件受理编号：不能并入自身，请填写另一件的受理编号"),
    (problem(409, "merge.has_merged_matters", field="ticket_no", params={"count": 2, "ticket": C}), "ticket_no",
     f"受理编号：已有 2 件并入 {C}，请先撤销它们的合并"),
    (problem(409, "merge.not_open", field="ticket_no", params={"ticket": C, "status": "completed"}), "ticket_no",
     f"受理编号：{C} 已办结待核查，只有尚未办结的事项才能并入他件"),
])
async def test_a_refused_merge_reads_in_chinese_beside_the_field_its_code_names(
        refused: httpx.Response, field: str, words: str) -> None:
    seen: list[httpx.Request] = []
    async for browser, csrf in _console(_merge_refused(refused), seen, COMMAND):
        got = await browser.post("/board/merge", data={"csrf": csrf, "ticket_no": C, "into": B})
    assert got.status_code == refused.status_code
    assert f'<span class="field-error" role="alert" data-field="{field}">{words}</span>' in got.text
    assert "English" not in got.text
    assert seen[0].url.path == f"/v1/requests/{C}/merge"


async def test_an_unknown_console_address_is_a_chinese_page_in_the_layout() -> None:
    async for browser, _ in _console(problem(503, "service.database_unavailable"), []):
        missing = await browser.get("/no/such/page")
        static = await browser.get("/static/no-such.css")
        wrong_method = await browser.get("/board/merge")
    for answer in (missing, static):
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
        assert "找不到这个页面" in answer.text and "镇务通" in answer.text and "Not Found" not in answer.text
    assert "方圆" in missing.text  # the layout, signed in: the navigation stays
    assert wrong_method.status_code == 405 and "不能这样打开这个页面" in wrong_method.text
    assert "POST" in wrong_method.headers["allow"] and "Method Not Allowed" not in wrong_method.text


async def test_a_query_the_console_cannot_read_is_a_chinese_page() -> None:
    app = create_app(ConsoleSettings(town_dir=DEMO_COUNTY_DIR, jwt_secret=SecretStr(SECRET)))

    async def typed(n: int) -> dict[str, int]:  # a page with a typed query, as a later one may have
        return {"n": n}

    app.add_api_route("/typed", typed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as browser:
        got = await browser.get("/typed", params={"n": "many"})
    assert got.status_code == 422 and "网址有误" in got.text and "int_parsing" not in got.text


async def test_the_consoles_own_failure_is_a_chinese_500_page() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug in the console's own code")

    async for browser, _ in _console(broken, [], COMMAND):
        got = await browser.get(f"/board/tasks/{A}")
    assert got.status_code == 500 and got.headers["content-type"].startswith("text/html")
    assert "系统出错了" in got.text and "RuntimeError" not in got.text and "Internal Server Error" not in got.text
    assert "frame-ancestors 'none'" in got.headers["content-security-policy"]  # a failure's page too
    assert got.headers["x-content-type-options"] == "nosniff"


# --- the matter in front of the handler (issue #27) ----------------------------------------------
TASK_ID = "7d4c2f0e-0000-4000-8000-000000000001"
TASK = {"task_id": TASK_ID, "ticket_no": A, "town_code": "321003104", "request_id": "r-1", "item_code": "S001",
        "kind": "service", "colour": "yellow", "village": "V01", "location": "青禾村五组", "lead_module": "police",
        "post": "household", "assignee": "s049", "assigned_via": "A", "status": "accepted", "overdue": False,
        "respond_by": "2026-12-01T10:30:00+08:00", "resolve_by": "2026-12-04T17:30:00+08:00", "reopen_count": 0,
        "supervisions": [], "extensions": [], "callbacks": [], "called_back": False}
MATTER = {"ticket_no": A, "request_id": "r-1", "town_code": "321003104", "status": "in_progress", "colour": "yellow",
          "channel": "hotline", "item_code": "S001", "item_name": "新生儿落户", "village": "V01", "village_name": "青禾村",
          "description": "孩子出生一个月，想办理落户", "location": "青禾村五组", "target": None, "filed_by": "s010",
          "proxy_agent_id": None, "filed_at": "2026-12-01T00:12:00+00:00"}
CITIZEN = {"name": "赵小满", "phone": "138-0000 1234"}
HOLDER = Person("qh-s049", "s049", "户籍岗", frozenset({"staff"}), "321003104", "青禾镇")


def _task_and(matter: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/v1/tasks/{TASK_ID}":
            return httpx.Response(200, json=TASK)
        if request.url.path == f"/v1/tasks/{TASK_ID}/matter":
            return httpx.Response(200, json=matter)
        return problem(404, "task.not_found")
    return answer


@pytest.mark.parametrize(("person", "page"), [(COMMAND, f"/board/tasks/{TASK_ID}"), (HOLDER, f"/tasks/{TASK_ID}")])
async def test_the_task_page_shows_the_matter_in_words_and_the_citizen_when_intake_gives_them(
        person: Person, page: str, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[httpx.Request] = []
    caplog.set_level("DEBUG")
    async for browser, _ in _console(_task_and(MATTER | {"citizen": CITIZEN, "citizen_seen_as": "assignee"}),
                                     seen, person):
        got = await browser.get(page)
    assert got.status_code == 200
    for words in ("诉求内容", "孩子出生一个月，想办理落户", "热线", "新生儿落户", "青禾村", "2026-12-01 08:12", "赵小满",
                  '<a href="tel:13800001234">138-0000 1234</a>'):
        assert words in got.text, words
    assert "hotline" not in got.text and "citizen-hidden" not in got.text
    matter_call = next(c for c in seen if c.url.path.endswith("/matter"))
    assert matter_call.url.path == f"/v1/tasks/{TASK_ID}/matter"  # intake records which task's page read it
    claims = jwt.decode(matter_call.headers["Authorization"].removeprefix("Bearer "), SECRET, algorithms=["HS256"],
                        audience="townflow-intake")
    assert claims["sub"] == person.sub
    # The console never logs personal data.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "赵小满" not in logged and "1234" not in logged


async def test_staff_intake_gives_no_citizen_see_the_matter_without_one() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(_task_and(MATTER), seen, HOLDER):
        got = await browser.get(f"/tasks/{TASK_ID}")
    assert got.status_code == 200 and "孩子出生一个月，想办理落户" in got.text
    assert 'data-testid="citizen-hidden"' in got.text and "tel:" not in got.text


async def test_the_matter_panel_off_asks_intake_nothing() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(_task_and(MATTER | {"citizen": CITIZEN}), seen, COMMAND):
        got = await browser.get(f"/board/tasks/{TASK_ID}", params={"matter": "off"})
    assert got.status_code == 200 and "诉求内容" not in got.text and "赵小满" not in got.text
    assert [c.url.path for c in seen] == [f"/v1/tasks/{TASK_ID}"]


async def test_a_matter_intake_refuses_reads_in_chinese_on_the_task_page() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=TASK) if request.url.path == f"/v1/tasks/{TASK_ID}" else problem(
            404, "matter.not_found")
    async for browser, _ in _console(answer, seen, COMMAND):
        got = await browser.get(f"/board/tasks/{TASK_ID}")
    assert got.status_code == 200 and "没有找到这件事项（刚派出的任务请稍后刷新）" in got.text and "English" not in got.text
