"""Sessions and failed sign-ins (issue #28) on the console app with fakes for its database: the
cookie changes at sign-in, sign-out ends the session (a copied cookie opens nothing after), the
idle and absolute timeouts, an ended session's form goes to sign-in, the per-account and
per-address limits with their Chinese words, the password policy, the security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from pydantic import SecretStr

from console import rules
from console.accounts import Accounts
from console.app import Console, create_app
from console.services import Services
from console.session import COOKIE
from console.settings import ConsoleSettings
from console.tokens import TokenSigner
from devstack.demo_accounts import DEMO_PASSWORD, _logins
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .fakes import FakeClock, FakeFailures, FakeRecords, FakeSessions

CLERK = "qh-s010"


@dataclass
class Setup:
    clock: FakeClock
    sessions: FakeSessions
    failures: FakeFailures
    records: FakeRecords
    app: object

    def browser(self, address: str = "10.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False, client=(address, 4711))  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://console.test")


@pytest.fixture
async def console() -> AsyncIterator[Setup]:
    settings = ConsoleSettings(town_dir=DEMO_COUNTY_DIR, jwt_secret=SecretStr("unit-test-secret-of-32-bytes-at-least"),
                               console_sign_in_address_failures=8)
    app = create_app(settings)
    county = load_county(DEMO_COUNTY_DIR)
    clock = FakeClock()
    setup = Setup(clock, FakeSessions(clock), FakeFailures(clock), FakeRecords(clock), app)
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json=[]))
    async with httpx.AsyncClient(transport=answer) as client:
        signer = TokenSigner("unit-test-secret-of-32-bytes-at-least", "HS256", kid=None, issuer=None,
                             audience_template="townflow-{service}", ttl_seconds=60)
        urls = {s: f"http://{s}.test" for s in ("intake", "dispatch", "enforcement", "appraisal")}
        app.state.console = Console(settings, county, Accounts(county), Services(urls, signer, client, county),
                                    setup.sessions, setup.failures.unit_of_work, setup.records)
        yield setup


async def _csrf(browser: httpx.AsyncClient, path: str = "/signin") -> str:
    page = await browser.get(path)
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def _sign_in(browser: httpx.AsyncClient, login: str = CLERK, password: str = DEMO_PASSWORD) -> httpx.Response:
    return await browser.post("/signin", data={"csrf": await _csrf(browser), "login": login, "password": password,
                                               "next": "/intake"})


async def test_signing_in_changes_the_cookie_and_signing_out_ends_the_session_for_a_copy_too(console: Setup) -> None:
    async with console.browser() as browser:
        await browser.get("/signin")
        before = browser.cookies[COOKIE]
        signed_in = await _sign_in(browser)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/intake"
        after = browser.cookies[COOKIE]
        assert after != before and not after.startswith("a.")  # a new id: nothing of the old one
        assert all(after.encode() not in key for key in console.sessions.rows)  # only its hash is kept
        copy = after
        assert (await browser.get("/intake")).status_code == 200
        signed_out = await browser.post("/signout", data={"csrf": await _csrf(browser, "/intake")})
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/signin"
        assert browser.cookies[COOKIE].startswith("a.")
    async with console.browser("10.0.0.2") as thief:
        thief.cookies.set(COOKIE, copy)
        refused = await thief.get("/intake")
        assert refused.status_code == 303 and refused.headers["location"] == "/signin?next=/intake"


async def test_a_session_ends_after_the_idle_time_and_after_its_lifetime_whatever_happens(console: Setup) -> None:
    async with console.browser() as browser:
        await _sign_in(browser)
        console.clock.advance(minutes=29)
        assert (await browser.get("/intake")).status_code == 200  # a request: idle time starts again
        console.clock.advance(minutes=29)
        assert (await browser.get("/board/live")).status_code in (200, 403)  # a page's own refresh is not the person
        console.clock.advance(minutes=1, seconds=1)
        assert (await browser.get("/intake")).headers["location"] == "/signin?next=/intake"
        await _sign_in(browser)
        for _ in range(16):  # busy all day: 16 half-hours, 8 hours
            assert (await browser.get("/intake")).status_code == 200
            console.clock.advance(minutes=29, seconds=59)
        console.clock.advance(seconds=16)
        assert (await browser.get("/intake")).status_code == 303


async def test_a_form_posted_after_the_session_ended_goes_to_the_sign_in_page(console: Setup) -> None:
    async with console.browser() as browser:
        await _sign_in(browser)
        csrf = await _csrf(browser, "/intake")
        console.clock.advance(hours=1)
        posted = await browser.post("/intake", data={"csrf": csrf, "item_code": "S001"})
        assert posted.status_code == 303 and posted.headers["location"] == "/signin"
        signed_out = await browser.post("/signout", data={"csrf": csrf})
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/signin"


async def test_five_failures_lock_the_account_and_its_right_password_waits_too(console: Setup) -> None:
    async with console.browser() as browser:
        for _ in range(5):
            wrong = await _sign_in(browser, password="not-the-password")
            assert wrong.status_code == 401 and "账号或密码不对" in wrong.text
        locked = await _sign_in(browser)
        assert locked.status_code == 429 and "登录失败次数过多，已暂停登录，请15分钟后再试" in locked.text
        assert COOKIE not in browser.cookies or browser.cookies[COOKIE].startswith("a.")
    async with console.browser("10.0.0.9") as elsewhere:  # the account waits, from any address
        assert (await _sign_in(elsewhere)).status_code == 429
        console.clock.advance(minutes=14)
        assert "请1分钟后再试" in (await _sign_in(elsewhere)).text
        console.clock.advance(minutes=1, seconds=1)
        assert (await _sign_in(elsewhere)).status_code == 303
        # A success clears the count: one more failure does not lock it again.
        assert (await _sign_in(elsewhere, password="wrong-again")).status_code == 401
        assert (await _sign_in(elsewhere)).status_code == 303


async def test_an_address_that_fails_too_often_waits_whatever_login_it_tries(console: Setup) -> None:
    async with console.browser("10.0.0.3") as sprayer:
        for n in range(8):  # 8 for this test's setting; one each on many logins, none locked
            assert (await _sign_in(sprayer, login=f"qh-s0{n:02d}", password="spray-Password-1")).status_code == 401
        assert (await _sign_in(sprayer)).status_code == 429  # even a right password, from there
    async with console.browser("10.0.0.4") as clerk:
        assert (await _sign_in(clerk)).status_code == 303


async def test_unknown_logins_are_counted_and_answered_alike_and_never_named_in_the_log(
        console: Setup, caplog: pytest.LogCaptureFixture) -> None:
    async with console.browser() as browser:
        for _ in range(5):
            assert (await _sign_in(browser, login="Secret-Typed-In-Login-Box")).status_code == 401
        assert (await _sign_in(browser, login="Secret-Typed-In-Login-Box")).status_code == 429
        await _sign_in(browser, password="wrong-for-a-known-one")
    logged, recorded = caplog.text, repr(console.failures.records)
    for text in (logged, recorded):
        assert "Secret-Typed" not in text and "wrong-for" not in text and DEMO_PASSWORD not in text
    assert "session.account_lock ok account=-" in logged and "sign_in.account_waiting account=-" in logged
    assert f"session.sign_in sign_in.wrong_password account={CLERK}" in logged
    # The audit trail: each failure, the lock it caused, the attempt refused unchecked; the
    # unknown login named by nothing, the known account by its login and its holder's town.
    assert [(r.action, r.outcome, r.target_id, r.actor, r.town) for r in console.failures.records] == [
        *[("session.sign_in", "sign_in.unknown_account", "", "", None)] * 5, ("session.account_lock", "ok", "", "", None),
        ("session.sign_in", "sign_in.account_waiting", "", "", None),
        ("session.sign_in", "sign_in.wrong_password", CLERK, "", "321003104")]
    assert {r.client for r in console.failures.records} == {"10.0.0.1"}
    assert console.failures.records[5].detail == {"wait_seconds": 15 * 60}


async def test_a_sign_in_and_its_sign_out_are_recorded_with_who_and_from_where(console: Setup) -> None:
    async with console.browser("10.0.0.7") as browser:
        assert (await _sign_in(browser)).status_code == 303
        page = await browser.get("/intake")
        await browser.post("/signout", data={"csrf": page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]})
    signed_in, = console.failures.records
    signed_out, = console.sessions.records
    assert (signed_in.action, signed_in.outcome, signed_in.target_id, signed_in.actor, signed_in.roles,
            signed_in.client) == ("session.sign_in", "ok", CLERK, "s010", ("clerk", "staff"), "10.0.0.7")
    assert (signed_out.action, signed_out.target_id, signed_out.actor, signed_out.town, signed_out.client) == (
        "session.sign_out", CLERK, "s010", "321003104", "10.0.0.7")


def test_the_failure_wait_counts_from_the_failure_that_made_the_number() -> None:
    t0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    window = timedelta(minutes=15)
    failures = [t0 + timedelta(minutes=m) for m in (0, 1, 2, 3, 4)]
    assert rules.failure_wait(failures[:4], t0 + timedelta(minutes=4), 5, window) is None
    assert rules.failure_wait(failures, t0 + timedelta(minutes=4), 5, window) == 11 * 60
    assert rules.failure_wait(failures, t0 + timedelta(minutes=15, seconds=1), 5, window) is None
    assert rules.failures_kept(failures, t0 + timedelta(minutes=16), window) == failures[2:]


@pytest.mark.parametrize(("password", "login", "why"), [
    ("Short-1", "qh-s010", "至少12个字符"),
    ("alllowercaseletters", "qh-s010", "至少三种"),
    ("My-qh-s010-Password", "qh-s010", "不能包含登录账号"),
    ("MY-QH-S010-PASSWORD", "qh-s010", "不能包含登录账号"),
    ("1qaz@WSX3edc", "qh-s010", "常见口令"),
])
def test_a_weak_password_is_refused_with_its_reason(password: str, login: str, why: str) -> None:
    assert any(why in w for w in rules.password_weaknesses(password, login))


def test_the_demo_password_and_a_good_one_pass() -> None:
    logins = _logins(DEMO_COUNTY_DIR)
    assert "qh-s010" in logins and "c001" in logins
    assert all(rules.password_weaknesses(DEMO_PASSWORD, login) == [] for login in logins)
    assert rules.password_weaknesses("Qinghe窗口2026春", "qh-s010") == []


async def test_every_console_answer_carries_the_security_headers(console: Setup) -> None:
    async with console.browser() as browser:
        for path in ("/signin", "/static/console.css", "/no/such/page", "/intake"):
            got = await browser.get(path)
            csp = got.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
            assert got.headers["x-content-type-options"] == "nosniff", path
            assert got.headers["referrer-policy"] == "no-referrer", path
            assert "strict-transport-security" not in got.headers  # the cookie is not Secure here


async def test_a_secure_cookie_brings_strict_transport_security_and_the_cookie_is_secure() -> None:
    settings = ConsoleSettings(town_dir=DEMO_COUNTY_DIR, jwt_secret=SecretStr("unit-test-secret-of-32-bytes-at-least"),
                               console_cookie_secure=True)
    app = create_app(settings)
    app.state.console = SimpleNamespace(oidc=None)  # all the sign-in page reads of it (no database here)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as browser:
        got = await browser.get("/signin")
    assert got.headers["strict-transport-security"] == "max-age=31536000"
    assert "Secure" in got.headers["set-cookie"] and "HttpOnly" in got.headers["set-cookie"]


def test_hash_password_refuses_a_weak_password_and_hashes_a_good_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from argon2 import PasswordHasher

    from console.__main__ import main

    typed = iter(["qh-s010-Pass!"])
    monkeypatch.setattr("sys.argv", ["console", "hash-password", "qh-s010"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    with pytest.raises(SystemExit) as refused:
        main()
    assert "口令不能包含登录账号" in str(refused.value)
    typed = iter(["Qinghe窗口2026春", "Qinghe窗口2026春"])
    main()
    assert PasswordHasher().verify(capsys.readouterr().out.strip(), "Qinghe窗口2026春")
