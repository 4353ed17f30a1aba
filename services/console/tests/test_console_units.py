"""The console's own pieces without a stack: the signed session, CSRF, chart geometry, sign-in
against argon2 hashes (refusals in words: test_refusals.py)."""

from __future__ import annotations

import json
import time

import pytest

from console.accounts import Accounts, Person
from console.charts import grouped_bars, line_chart, stacked_bars
from console.session import (
    Session,
    anonymous_cookie,
    anonymous_from,
    csrf_matches,
    session_data,
    session_from,
)
from console.settings import ConsoleSettings
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR, ServiceSettings

CLERK = Person("qh-s010", "s010", "刘明", frozenset({"staff", "clerk"}), "321003104", "青禾镇")


def test_the_csrf_token_must_be_the_sessions_own() -> None:
    session = Session()
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, Session().csrf)
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")


def test_a_session_is_stored_as_json_and_read_back_whole() -> None:
    session = Session(person=CLERK)
    assert session_from(json.loads(json.dumps(session_data(session)))) == session
    assert session_from(session_data(Session())).person is None


def test_an_anonymous_cookie_is_its_csrf_token_and_nothing_else_passes_for_one() -> None:
    session = Session()
    assert anonymous_from(anonymous_cookie(session)) == session
    for cookie in ("", "a.", "a.short", "a." + "x" * 31 + "!", session.csrf, "eyJjc3JmIjoi.sig"):
        assert anonymous_from(cookie) is None, cookie


def test_stacked_bars_are_proportional_to_the_largest_row() -> None:
    chart = stacked_bars([("红色", [("待签收", 2, "a"), ("办理中", 2, "b")]), ("黄色", [("待签收", 1, "a")])], "t")
    widths = [r.width for r in chart.rects]
    assert widths[0] == widths[1] == pytest.approx(2 * widths[2])
    assert [w for _, w in chart.legend] == ["待签收", "办理中"]


def test_a_missing_rate_breaks_the_line_instead_of_dropping_to_zero() -> None:
    chart = line_chart(["01", "02", "03", "04"], [("办结率", "r", [1.0, 0.5, None, 0.0])], "t")
    assert len(chart.paths) == 1 and chart.paths[0][0].count(",") == 2  # two points joined, the last alone
    assert len(chart.dots) == 3


def test_grouped_bars_leave_no_bar_for_a_town_without_a_rate() -> None:
    chart = grouped_bars([("青禾镇", [("满意率", "s", 0.5)]), ("白鹭镇", [("满意率", "s", None)])], "t")
    assert len(chart.rects) == 1


async def test_sign_in_with_the_demo_password_and_only_with_it() -> None:
    accounts = Accounts(load_county(DEMO_COUNTY_DIR))
    person = await accounts.sign_in("qh-s010", "hechuan-2026")
    assert person is not None and person.sub == "s010" and person.town == "321003104" and "clerk" in person.roles
    county = await accounts.sign_in("c002", "hechuan-2026")
    assert county is not None and county.town is None and county.county_wide
    started = time.perf_counter()
    assert await accounts.sign_in("qh-s010", "wrong") is None
    assert await accounts.sign_in("nobody", "hechuan-2026") is None  # checked against a dummy hash all the same
    assert time.perf_counter() - started > 0.01


def test_the_console_drops_an_idle_connection_to_a_service_before_the_service_does() -> None:
    """The console's pool lets an idle connection go before a service closes it (settings.py), or a
    page's request may be sent on a connection the service is closing: a 502 nobody caused."""
    assert ConsoleSettings().service_keep_alive_seconds < ServiceSettings().http_keep_alive_seconds
