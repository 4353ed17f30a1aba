"""The console's side of SPEC §10 without a stack: the services' refusals of a merge and a
callback in plain Chinese beside the right field (checked against the services' own rule
functions, so a reworded refusal fails here), and the monthly bulletin streamed on from appraisal
with the person's token, its content type and file name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from pydantic import SecretStr

from console.accounts import Accounts, Person
from console.app import Console, create_app
from console.errors import refusal
from console.phrases import plain
from console.services import Services
from console.session import COOKIE, SessionCodec
from console.settings import ConsoleSettings
from console.tokens import TokenSigner
from dispatch import rules as dispatch_rules
from intake import rules as intake_rules
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

A, B, C = "321003104-20261201-00001", "321003104-20261201-00002", "321003104-20261201-00003"


def side(ticket: str, status: str = "dispatched", merged_into: str | None = None, followers: int = 0,
         town: str = "321003104") -> intake_rules.MergeSide:
    return intake_rules.MergeSide(ticket, town, status, merged_into, followers)


@pytest.mark.parametrize(("merged", "into", "field", "words"), [
    (side(A), side(A), "into", "不能并入自身"),
    (side(A), side("321003107-20261201-00002", town="321003107"), "into", "其他镇"),
    (side(A, merged_into=C), side(B), "ticket_no", f"已并入 {C}"),
    (side(A, followers=2), side(B), "ticket_no", "已有 2 件并入"),
    (side(A, status="completed"), side(B), "ticket_no", "已办结待核查"),
    (side(A), side(B, merged_into=C), "into", f"请直接并入 {C}"),
    (side(A), side(B, status="closed"), "into", "已结案，主件须仍在办理中"),
])
def test_every_merge_refusal_of_intake_reads_in_chinese_beside_its_field(
        merged: intake_rules.MergeSide, into: intake_rules.MergeSide, field: str, words: str) -> None:
    found = intake_rules.merge_refusal(merged, into)
    assert found is not None
    status, _, why = found
    # As intake's api.py sends them: a 422 naming the field, a 409 with the sentence only.
    body = {"detail": [{"loc": ["body", field], "msg": why, "type": "value_error"}]} if status == 422 else {"detail": why}
    error = refusal(httpx.Response(status, json=body))
    assert words in error.fields[field] and "merge" not in error.fields[field]
    assert error.detail is None


def test_unmerge_and_unknown_primary_refusals_read_in_chinese() -> None:
    for why in (intake_rules.unmerge_refusal(None, None), intake_rules.unmerge_refusal(B, "closed")):
        assert why is not None and plain(why) is not None
    error = refusal(httpx.Response(422, json={"detail": [
        {"loc": ["body", "into"], "msg": f"no matter with ticket number {C!r}", "type": "value_error"}]}))
    assert error.fields["into"] == f"主件受理编号：没有受理编号为 {C} 的事项"


def test_every_callback_refusal_of_dispatch_reads_in_chinese() -> None:
    problems = [*dispatch_rules.callback_problems(True, None), *dispatch_rules.callback_problems(False, "satisfied")]
    assert [f for f, _ in problems] == ["rating", "rating"]
    for _, why in problems:
        assert plain(why) is not None
    for status, called_back in (("rework", False), ("closed", True)):
        why = dispatch_rules.callback_error(status, called_back)
        assert why is not None
        error = refusal(httpx.Response(409, json={"detail": why}))
        assert set(error.fields) == {"reached"}


def test_an_unknown_sentence_keeps_the_services_words() -> None:
    error = refusal(httpx.Response(409, json={"detail": "something new"}))
    assert error.detail == "something new" and error.fields == {}


OFFICE = Person("qh-s032", "s032", "方圆", frozenset({"staff", "appraisal_admin"}), "321003104", "青禾镇")
SECRET = "unit-test-secret-of-32-bytes-at-least"


async def _console(answer: httpx.Response, seen: list[httpx.Request]) -> AsyncIterator[httpx.AsyncClient]:
    """The console app, its services answered by `answer`, signed in as the 绩效督查室."""
    settings = ConsoleSettings(town_dir=DEMO_COUNTY_DIR, jwt_secret=SecretStr(SECRET),
                               console_session_secret=SecretStr("s" * 32))
    app = create_app(settings)
    county = load_county(DEMO_COUNTY_DIR)
    codec = SessionCodec(b"s" * 32, 3600)

    def fake_service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(fake_service)) as services_client:
        signer = TokenSigner(SECRET, "HS256", kid=None, issuer=None, audience_template="townflow-{service}",
                             ttl_seconds=60)
        urls = {s: f"http://{s}.test" for s in ("intake", "dispatch", "enforcement", "appraisal")}
        app.state.console = Console(settings, county, Accounts(county), Services(urls, signer, services_client), codec)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test",
                                     cookies={COOKIE: codec.encode(codec.new(OFFICE))}) as browser:
            yield browser


async def test_the_bulletin_is_streamed_on_from_appraisal_with_the_persons_token() -> None:
    seen: list[httpx.Request] = []
    sheet = "\ufeff月份,模块,办结率\n2026-11,社会事务办公室,0.95\n".encode()
    answer = httpx.Response(200, content=sheet, headers={
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": 'attachment; filename="bulletin-321003104-2026-11.csv"'})
    async for browser in _console(answer, seen):
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
    async for browser in _console(httpx.Response(404, json={"detail": "Not Found"}), seen):
        got = await browser.get("/appraisal/bulletin", params={"period": "2026-11"})
    assert got.status_code == 404 and "没有找到2026-11的月度通报" in got.text and "Not Found" not in got.text
    assert [c.url.path for c in seen] == ["/v1/bulletin"]
