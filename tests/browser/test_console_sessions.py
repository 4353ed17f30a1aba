"""Issue #28 items 2–5 in a real browser against the demo county's stack, with a second console
replica on the same database: 退出 on one replica ends the session on the other (a copied cookie
opens nothing), the cookie changes at sign-in, the idle and absolute timeouts (the session's row
moved back on the database's clock, no waiting), five wrong passwords lock the account (its right
password refused, in Chinese), an address that fails too often waits, the security headers on the
console's pages, static files and refusals and on the services' answers, and the citizen's right
code working from another address while strangers hammer the ticket.

Each test plays its own people and addresses (X-Forwarded-For, which the console believes from
loopback as it would from its ingress), and accounts no other test signs in with."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect

from devstack.demo_accounts import DEMO_PASSWORD
from devstack.stack import CONSOLE_DATABASE, ServiceProcess, Stack
from tests.conftest import CLERK, QINGHE, Api, filing, http_client

from .conftest import People, Visitors, an_address, assert_accessible, file_at_the_window

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def second_console(county_stack: Stack, console_url: str) -> Iterator[ServiceProcess]:
    """Another console replica on the same database (its own port): started from the main thread,
    so it lives as long as the module."""
    replica = county_stack.console_replica(1)
    county_stack.wait_ready_on_own_port(replica.start(wait=False))
    yield replica
    replica.stop()


@pytest.fixture
async def console_db(county_stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    assert county_stack.postgres is not None
    conn = await asyncpg.connect(county_stack.postgres.dsn(CONSOLE_DATABASE))
    yield conn
    await conn.close()


async def sign_in(page: Page, login: str, password: str = DEMO_PASSWORD) -> None:
    await page.goto("/signin")
    await page.get_by_label("账号").fill(login)
    await page.get_by_label("密码").fill(password)
    await page.get_by_role("button", name="登录").click()


async def session_cookie(page: Page) -> dict[str, Any]:
    return next(dict(c) for c in await page.context.cookies() if c["name"] == "tf_session")


async def test_sign_out_on_one_replica_ends_the_session_on_the_other(
        visitors: Visitors, console_url: str, second_console: ServiceProcess) -> None:
    one = await visitors.at(console_url)
    await one.goto("/signin")
    before = (await session_cookie(one))["value"]
    await sign_in(one, "sq-s011")
    await expect(one).to_have_url(re.compile(r"/intake$"))
    after = await session_cookie(one)
    assert after["value"] != before and after["httpOnly"] and after["sameSite"] == "Lax"  # a new id at sign-in

    # The cookie, copied before 退出, opens the page on the other replica …
    thief = await visitors.at(second_console.url)
    await thief.context.add_cookies([{"name": "tf_session", "value": after["value"], "url": second_console.url}])
    await thief.goto("/intake")
    await expect(thief).to_have_url(re.compile(r"/intake$"))
    # … until the person signs out on the first …
    await one.get_by_role("button", name="退出").click()
    await expect(one).to_have_url(re.compile(r"/signin$"))
    # … then on the second it is refused at once: no page, no form.
    await thief.goto("/intake")
    await expect(thief).to_have_url(re.compile(r"/signin\?next=/intake$"))
    posted = await thief.request.post(f"{second_console.url}/intake", form={"csrf": "x", "item_code": "S001"},
                                      max_redirects=0)
    assert posted.status == 303 and posted.headers["location"] == "/signin"


async def test_a_session_ends_when_idle_and_after_its_lifetime(
        visitors: Visitors, console_url: str, console_db: asyncpg.Connection) -> None:
    page = await visitors.at(console_url)

    moves = {"seen_at": "UPDATE sessions SET seen_at = seen_at - $2::interval WHERE id_hash = $1",
             "started_at": "UPDATE sessions SET started_at = started_at - $2::interval WHERE id_hash = $1"}

    async def move_back(column: str, by: timedelta) -> None:
        """The page's session, as if its last request (or its sign-in) were `by` earlier."""
        digest = hashlib.sha256((await session_cookie(page))["value"].encode()).digest()
        assert await console_db.execute(moves[column], digest, by) == "UPDATE 1"

    await sign_in(page, "sq-s011")
    await expect(page).to_have_url(re.compile(r"/intake$"))
    await move_back("seen_at", timedelta(minutes=29))
    await page.goto("/intake")  # 29 minutes idle: still the person's, and now idle from here
    await expect(page).to_have_url(re.compile(r"/intake$"))
    await move_back("seen_at", timedelta(minutes=30, seconds=1))
    await page.goto("/intake")
    await expect(page).to_have_url(re.compile(r"/signin\?next=/intake$"))

    await sign_in(page, "sq-s011")
    await expect(page).to_have_url(re.compile(r"/intake$"))
    await move_back("started_at", timedelta(hours=8, seconds=1))  # busy all along, but signed in 8 hours ago
    await page.goto("/intake")
    await expect(page).to_have_url(re.compile(r"/signin\?next=/intake$"))


async def test_five_wrong_passwords_lock_the_account_and_its_right_password_waits(
        visitors: Visitors, console_url: str) -> None:
    page = await visitors.at(console_url)
    for _ in range(5):
        await sign_in(page, "sq-s012", "not-the-Password-1")
        await expect(page.get_by_role("alert")).to_have_text("账号或密码不对。")
    await sign_in(page, "sq-s012")
    await expect(page.get_by_role("alert")).to_contain_text("登录失败次数过多，已暂停登录，请15分钟后再试")
    await assert_accessible(page, "a locked account's sign-in")
    elsewhere = await visitors.at(console_url)  # the account waits from every address
    await sign_in(elsewhere, "sq-s012")
    await expect(elsewhere.get_by_role("alert")).to_contain_text("已暂停登录")


async def test_an_address_that_fails_too_often_waits_whatever_login_it_tries(
        visitors: Visitors, console_url: str) -> None:
    sprayer = await visitors.at(console_url)
    await sprayer.goto("/signin")
    csrf = await sprayer.locator("input[name=csrf]").get_attribute("value")
    for n in range(20):  # one wrong password on each of 20 logins: none of them locked
        refused = await sprayer.request.post("/signin", form={"csrf": csrf or "", "login": f"sq-s0{30 + n}",
                                                              "password": "spray-Password-1", "next": "/"})
        assert refused.status == 401
    await sign_in(sprayer, "sq-s013")
    await expect(sprayer.get_by_role("alert")).to_contain_text("已暂停登录")
    clerk = await visitors.at(console_url)
    await sign_in(clerk, "sq-s013")
    await expect(clerk).to_have_url(re.compile(r"/tasks"))


SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")


def _has_security_headers(headers: dict[str, str], what: str, page: bool) -> None:
    for name in SECURITY_HEADERS:
        assert name in headers, (what, name)
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, what
    assert ("script-src 'self'" in csp) if page else ("default-src 'none'" in csp), what
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer", what


async def test_every_answer_carries_the_security_headers(county_stack: Stack, console_url: str) -> None:
    async with http_client(base_url=console_url, timeout=20) as console:
        for what, answer in (("a page", await console.get("/signin")),
                             ("a static file", await console.get("/static/board.js")),
                             ("a page not found", await console.get("/no/such/page")),
                             ("an over-long address", await console.get("/status?ticket=" + "9" * 9000))):
            assert answer.status_code in (200, 404, 414), (what, answer.status_code)
            _has_security_headers(dict(answer.headers), f"console: {what}", page=True)
    for name, process in county_stack.services.items():
        async with http_client(base_url=process.url, timeout=20) as service:
            for what, answer in (("health", await service.get("/healthz")),
                                 ("a refusal", await service.get("/v1/no-such-route")),
                                 ("no token", await service.get("/v1/tasks" if name == "dispatch" else "/metrics"))):
                _has_security_headers(dict(answer.headers), f"{name}: {what}", page=False)
    intake = Api(county_stack, "intake", town=QINGHE)
    refused = await intake.call("GET", f"/v1/requests/{QINGHE}-20000101-00001", params={"code": "ABC234"},
                                headers={"X-Forwarded-For": an_address()})
    assert refused.status_code == 404
    _has_security_headers(dict(refused.headers), "intake: a citizen refused", page=False)


async def test_the_citizens_right_code_works_from_another_address_while_strangers_hammer_the_ticket(
        county_stack: Stack, visitors: Visitors, console_url: str) -> None:
    intake = Api(county_stack, "intake", town=QINGHE)
    body = filing()
    body["citizen"]["phone"] = "139 0000 " + f"{uuid.uuid4().int % 10_000:04d}"
    filed = await intake.call("POST", "/v1/requests", as_=CLERK, json=body)
    assert filed.status_code == 201, filed.text
    ticket, code = filed.json()["ticket_no"], filed.json()["access_code"]
    tail = body["citizen"]["phone"][-4:]
    wrong = ("2" if code[0] != "2" else "3") + code[1:]
    status = f"/v1/requests/{ticket}"

    async def guess(address: str, given: str = wrong) -> int:
        answer = await intake.call("GET", status, params={"code": given}, headers={"X-Forwarded-For": address})
        return answer.status_code

    # One stranger alone: after its 10 wrong codes it waits; the citizen elsewhere does not, code alone.
    stranger = an_address()
    assert [await guess(stranger) for _ in range(11)] == [404] * 10 + [429]
    assert await guess(stranger, code) == 429  # even the right code, from the stranger's address
    citizen = await visitors.at(console_url, address=f"203.0.113.{uuid.uuid4().int % 250 + 1}")
    await citizen.goto(f"/status?ticket={ticket}")
    await citizen.locator("input[name=code]").fill(code.lower())
    await citizen.get_by_role("button", name="查询").click()
    await expect(citizen.get_by_test_id("timeline")).to_be_visible()  # the matter, whatever its step

    # Many strangers: the ticket is under attack, and the citizen is asked for a little more, never refused.
    answers = await asyncio.gather(*(guess(f"192.0.2.{n}") for n in range(1, 31)))
    assert set(answers) <= {404, 403}
    await citizen.goto(f"/status?ticket={ticket}")
    await citizen.locator("input[name=code]").fill(code)
    await citizen.get_by_role("button", name="查询").click()
    await expect(citizen.get_by_role("alert").first).to_contain_text("手机号的后四位")
    await assert_accessible(citizen, "the status page asking for more")
    await citizen.get_by_label("手机号后四位").fill(tail)
    await citizen.get_by_role("button", name="查询").click()
    await expect(citizen.get_by_test_id("timeline")).to_be_visible()  # the matter, whatever its step


# Every violation of the Content-Security-Policy the page reports, kept on the window.
WATCH_CSP = """window.cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"""


async def test_the_pages_scripts_run_under_the_content_security_policy(people: People) -> None:
    """With the policy enforced (no bypass), the receipt's print buttons and the board's live
    refresh work and nothing on the pages is refused."""
    clerk = await people.signed_in("qh-s010", enforce_csp=True)
    await clerk.context.add_init_script(script=WATCH_CSP)
    await file_at_the_window(clerk)
    await clerk.evaluate("() => { window.print = () => { window.printed = (window.printed || 0) + 1 }; }")
    await clerk.get_by_test_id("print-slip").click()
    assert await clerk.evaluate("window.printed") == 1  # receipt.js ran: no inline handler any more
    assert await clerk.locator("#receipt.slip").count() == 1
    assert await clerk.evaluate("window.cspViolations") == []
    board = await people.signed_in("qh-s030", enforce_csp=True)
    await board.context.add_init_script(script=WATCH_CSP)
    await board.goto("/board")
    async with board.expect_response(lambda r: "/board/live" in r.url):  # board.js ran and refreshed
        pass
    assert await board.evaluate("window.cspViolations") == []
