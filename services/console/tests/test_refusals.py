"""Every refusal code of every service has its Chinese line, the line asks only for params the
code carries, and no refusal — known, unknown or malformed — reaches a page in English or breaks it."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from console.errors import refusal
from console.names import CountyNames
from console.refusals import (
    GENERIC,
    GENERIC_FIELD,
    KNOWN_PARAMS,
    SAID_BY_STATUS,
    TABLES,
    WORDS,
    placeholders,
    words,
)
from townflow_shared.county import load_county
from townflow_shared.problems import Catalogue, Code, catalogues
from townflow_shared.settings import DEMO_COUNTY_DIR

ENGLISH = re.compile(r"[A-Za-z]{3,}")


def _codes() -> list[tuple[Catalogue, Code]]:
    return [(catalogue, code) for catalogue in catalogues() for code in catalogue]


def test_every_code_of_every_catalogue_has_a_chinese_line() -> None:
    missing = [f"{catalogue.service}: {code.name}" for catalogue, code in _codes() if code.name not in WORDS]
    assert not missing, f"codes with no Chinese line in console/refusals.py: {missing}"


def test_each_catalogue_has_its_own_table_and_no_line_is_stale() -> None:
    for catalogue in catalogues():
        table = TABLES[catalogue.service]
        stale = set(table) - {c.name for c in catalogue}
        assert not stale, f"{catalogue.service}: lines for codes its catalogue no longer has: {sorted(stale)}"


def test_a_chinese_line_asks_only_for_params_its_code_carries() -> None:
    for _, code in _codes():
        carried = placeholders(code.detail) | placeholders(code.title) | KNOWN_PARAMS.get(code.name, frozenset())
        asked = placeholders(WORDS[code.name])
        assert asked <= carried, f"{code.name}: the Chinese asks for {sorted(asked - carried)}, never sent"


@pytest.mark.parametrize("code", sorted(WORDS))
def test_each_line_reads_in_chinese_with_its_params_and_without_them(code: str) -> None:
    template = WORDS[code]
    assert not ENGLISH.search(re.sub(r"\{[^}]*\}", "", template)), f"{code}: English in {template!r}"
    asked = placeholders(template)
    filled = words(code, dict.fromkeys(asked, "7"))
    assert "{" not in filled
    assert filled not in (GENERIC, GENERIC_FIELD) or template in (GENERIC, GENERIC_FIELD), f"{code}: fell back"
    # Whatever comes (nothing, the wrong shapes, bulk), a line comes back.
    for shape in (None, [1, None], {"a": "b"}, "x" * 10_000, float("nan"), 10**30):
        for params in ({}, {key: shape for key in asked}):
            assert words(code, params, status=422)


@pytest.mark.parametrize("field", [None, "note"])
def test_each_code_as_its_service_sends_it_reads_in_chinese_only(field: str | None) -> None:
    for _, code in _codes():
        carried = placeholders(code.detail) | placeholders(code.title) | KNOWN_PARAMS.get(code.name, frozenset())
        params = dict.fromkeys(carried, "7")  # as the raise sites send them (KNOWN_PARAMS: beyond the English)
        sent = code(field, **params).response()
        error = refusal(httpx.Response(sent.status_code, content=bytes(sent.body), headers=dict(sent.headers)))
        assert error.code == code.name
        shown = error.page_line
        assert not ENGLISH.search(shown), f"{code.name}: {shown!r}"
        own = words(code.name, params)  # the code's own line, its params filled in
        assert own in shown or code.name in SAID_BY_STATUS, f"{code.name}: {shown!r}"
        assert own not in (GENERIC, GENERIC_FIELD) or WORDS[code.name] == GENERIC_FIELD, f"{code.name} fell back"


def test_params_read_as_staff_say_them() -> None:
    assert words("merge.not_open", {"ticket": "A", "status": "completed"}) == "A 已办结待核查，只有尚未办结的事项才能并入他件"
    assert words("auth.role_missing", {"roles": "clerk, command_centre"}) == "您的岗位不能办理这项业务（需要：窗口人员、指挥中心）"
    assert words("task.return_window_closed", {"closes_at": "2026-12-01T17:30:00+08:00"}) == (
        "退回期限已过（截至 2026-12-01 17:30），不能再退回")
    assert words("inspection.unit_absent", {"units": ["market", "police"]}, names={"market": "市场监管所"}) == (
        "所有单位都须到场，未到场：市场监管所、police")
    assert words("case.step_out_of_order", {"current": "filed", "expected": "investigated", "requested": "closed"}) == (
        "案件现在是“立案”，下一步应为“调查取证”，不能直接“结案”")


def test_a_param_never_echoes_input_in_bulk() -> None:
    said = words("merge.into_unknown", {"ticket": "9" * 10_000})
    assert len(said) < 120
    listed = words("inspection.unit_absent", {"units": [f"u{i}" for i in range(500)]})
    assert listed.endswith("u19等")


def test_an_unknown_code_reads_generically_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="console.refusals"):
        assert words("something.new", {"x": 1}, status=409) == GENERIC
        assert words("something.newer", None, status=422, field="note") == GENERIC_FIELD
    assert "something.new" in caplog.text and "something.newer" in caplog.text


def _problem(status: int, code: str, **members: object) -> httpx.Response:
    document = {"type": f"urn:townflow:problem:{code}", "title": "English title", "status": status,
                "detail": "English detail nobody reads", "code": code, **members}
    return httpx.Response(status, json=document, headers={"content-type": "application/problem+json"})


def test_several_field_errors_each_beside_its_field() -> None:
    error = refusal(_problem(422, "request.invalid", params={"count": 2}, errors=[
        {"field": "citizen.phone", "code": "citizen.phone_malformed", "detail": "English"},
        {"field": "item_code", "code": "item.unknown", "detail": "English",
         "params": {"item": "S0O1", "town": "青禾镇", "suggestions": ["S001", "S002"]}}]))
    assert error.message == "有几项填写不对，请看标出的地方。"
    assert error.fields == {"citizen.phone": "电话：格式不对（5 至 20 位数字，可含空格或短横线）",
                            "item_code": "事项：本镇事项目录中没有“S0O1”，请从目录中选择"}
    assert error.suggestions == ["S001", "S002"]
    assert error.detail is None and "English" not in error.page_line


def test_a_conflict_about_a_field_is_said_beside_it() -> None:
    error = refusal(_problem(409, "merge.primary_merged", field="into",
                             params={"ticket": "T-2", "primary": "T-1"}))
    assert error.message == "当前状态下不能这样做。"
    assert error.fields == {"into": "主件受理编号：T-2 本身已并入 T-1，请直接并入 T-1"}
    assert error.detail is None


def test_a_refusal_naming_no_field_is_said_under_the_pages_line() -> None:
    error = refusal(_problem(404, "task.not_found"))
    assert error.message == "没有找到，请核对编号（或查询码）。"
    assert error.detail == "没有这个任务" and error.fields == {} and error.code == "task.not_found"
    assert error.page_line == "没有找到，请核对编号（或查询码）。 没有这个任务"


def test_a_town_named_by_its_code_is_said_by_its_name() -> None:
    error = refusal(_problem(403, "town.not_yours", params={"town": "321003107", "yours": "321003104"}),
                    CountyNames(load_county(DEMO_COUNTY_DIR)).of("321003104"))
    assert error.detail == "这是白鹭镇的事务，您只能办理本镇的事务"


def test_a_time_in_a_refusal_is_on_the_towns_clock() -> None:
    qinghe = CountyNames(load_county(DEMO_COUNTY_DIR)).of("321003104")
    error = refusal(_problem(409, "task.return_window_closed", params={"closes_at": "2026-12-01T09:30:00+00:00"}),
                    qinghe)
    assert error.detail == "退回期限已过（截至 2026-12-01 17:30），不能再退回"


def test_an_unknown_code_shows_a_generic_chinese_line_never_the_english(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="console.refusals"):
        error = refusal(_problem(409, "task.something_new", field="note"))
        bare = refusal(_problem(409, "task.something_else"))
    assert error.fields == {"note": f"说明：{GENERIC_FIELD}"}
    assert bare.detail == GENERIC and not ENGLISH.search(bare.page_line)
    assert "task.something_new" in caplog.text and "task.something_else" in caplog.text


@pytest.mark.parametrize("body", [{"detail": "the return window closed"}, {"detail": [{"loc": ["body"]}]},
                                  ["not", "a", "document"], {"code": 7}])
def test_what_is_not_a_problem_document_shows_the_status_line_only(body: object) -> None:
    error = refusal(httpx.Response(409, json=body))
    assert error.page_line == "当前状态下不能这样做。"


def test_a_bare_status_says_the_status_line_only() -> None:
    assert refusal(_problem(409, "request.refused")).page_line == "当前状态下不能这样做。"
    assert refusal(_problem(401, "auth.token_invalid", params={"why": "expired"})).page_line == "登录已失效，请重新登录。"


def test_too_many_codes_says_how_long_to_wait() -> None:
    response = _problem(429, "ticket.too_many_wrong_codes", params={"retry_after": 1200})
    response.headers["Retry-After"] = "1200"
    error = refusal(response)
    assert error.message == "尝试次数太多，请 20 分钟后再试。" and error.detail == "从这里输错查询码的次数太多，请稍后再试"


def test_a_malformed_document_never_breaks_the_page() -> None:
    for members in ({"errors": "no"}, {"errors": [1, {"code": None}]}, {"params": [1]}, {"field": 3},
                    {"errors": [{"code": "value.too_long", "field": "note", "params": "x"}]}):
        assert refusal(_problem(422, "value.too_long", **members)).page_line
