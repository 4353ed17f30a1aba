"""The console in a real browser: Debian's Chromium driven by Playwright (never `playwright
install`), against the session's demo-county stack with the console started beside it."""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from devstack.demo_accounts import DEMO_PASSWORD
from devstack.receivers import Receivers
from devstack.stack import Stack

CHROMIUM = Path("/usr/bin/chromium-headless-shell")  # Debian's; `make chromium` says why this one
# Deque's axe-core from npm at the version of axe/package-lock.json (`make axe-core`: npm ci).
AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# What fails a page: WCAG 2.1 A and AA (contrast 4.5:1 for text) and axe's best practices, at impact
# serious or critical. Moderate and minor findings are not failures (a crawl counts them).
FAILING = ("serious", "critical")
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\\s+/g, " "))}));
}"""
# Without the networking flags Chromium keeps calling hosts this machine cannot reach.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
# How long an action or an expectation waits for the page (playwright's `expect` alone would give up
# after 5 s; a CI machine running two other lanes beside this one has taken longer for a form post).
PATIENCE_MS = 15_000
expect.set_options(timeout=PATIENCE_MS)


@pytest.fixture(scope="session")
def console_url(county_stack: Stack) -> Iterator[str]:
    """The console, started once notify runs beside the services (issue #31: the command centre's
    消息记录 reads notify's log, so the console is given notify's address), sending to the local
    receivers with the secret the demo county's notify.yaml names, as `make up` does."""
    secret = "SEC" + secrets.token_hex(16)
    county_stack.extra_env["QINGHE_COMMAND_ROBOT_SECRET"] = secret
    receivers = Receivers(county_stack.workdir, dingtalk={"qinghe-command": secret}, wecom=["qinghe-staff"]).start()
    county_stack.use_receivers(receivers)
    try:
        county_stack.start_services(["notify"])
        yield county_stack.start_console().url
    finally:
        receivers.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Missing is a failure, not a skip: `make install` installs it (as root: apt-get install chromium)."""
    assert CHROMIUM.exists(), "Debian's chromium-headless-shell is not installed: apt-get install chromium-headless-shell fonts-noto-cjk"
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def axe_core() -> Path:
    """Missing is a failure, not a skip: `make install` installs it (npm ci in tests/browser/axe)."""
    assert AXE.exists(), "axe-core is not installed: make axe-core (npm ci --prefix tests/browser/axe)"
    return AXE


# A page's shape: every element with its attributes (numbers and ids folded, links and values left
# out), whether it holds text of its own, and its children's shapes, a run of alike siblings (rows,
# links, options) once. Two pages of one shape get the same axe findings (the words and the
# lengths of lists differ, not what axe checks), so a crawl runs axe once per shape.
SHAPE = r"""() => {
  const skip = ["href", "action", "value", "content", "datetime"];
  const shape = e => {
    const attributes = [...e.attributes].filter(a => !skip.includes(a.name) && !a.name.startsWith("data-"))
      .map(a => a.name + "=" + a.value.replace(/[0-9a-f]{8,}(-[0-9a-f]{4,})*|\d+/gi, "#")).sort().join(",");
    const text = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) ? "T" : "";
    const children = [];
    for (const child of e.children) {
      const s = shape(child);
      if (children[children.length - 1] !== s) children.push(s);
    }
    return e.tagName + "[" + attributes + "]" + text + "(" + children.join(",") + ")";
  };
  return shape(document.documentElement);
}"""


# axe's findings by page shape, for the session: a shape one test checked is not checked again.
CHECKED: dict[str, list[dict[str, Any]]] = {}


async def axe_findings(page: Page) -> list[dict[str, Any]]:
    """Every violation axe-core finds on the page (rule `id`, `impact`, `help`, the first `nodes`
    at fault); a page of a shape already checked is answered from `CHECKED`."""
    shape = await page.evaluate(SHAPE)
    if shape in CHECKED:
        return CHECKED[shape]
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate(AXE_RUN)
    CHECKED[shape] = found
    return found


async def axe_violations(page: Page) -> list[str]:
    """The page's serious and critical violations, one line each (rule, impact, the first elements
    at fault); [] when there are none."""
    return [f"{v['id']} ({v['impact']}: {v['help']}) at " + " | ".join(v["nodes"])
            for v in await axe_findings(page) if v["impact"] in FAILING]


async def assert_accessible(page: Page, where: str = "") -> None:
    """Fail on any serious or critical axe-core violation of the page as it is now."""
    if violations := await axe_violations(page):
        raise AssertionError(f"{where or page.url}: " + "\n  ".join(["", *violations]))


def a_phone() -> str:
    """A citizen's phone of the test's own, so the repeat-filing rule applies only on purpose."""
    return f"137{uuid.uuid4().int % 10**8:08d}"


async def file_at_the_window(clerk: Page, location: str = "青禾村五组", phone: str | None = None) -> tuple[str, str]:
    """A 户口登记 matter in 青禾村 filed in the clerk's form (窗口受理): its ticket and access code,
    read off the receipt the page then shows."""
    await clerk.goto("/intake")
    await clerk.locator("input[name=item_code]").fill("S001")
    await clerk.locator("textarea[name=description]").fill("为新生儿办理户口登记")
    await clerk.locator("select[name=village]").select_option("V01")
    await clerk.locator("input[name=location]").fill(location)
    await clerk.locator("input[name='citizen.name']").fill("浏览器群众")
    await clerk.locator("input[name='citizen.phone']").fill(phone or a_phone())
    await clerk.get_by_role("button", name="受理并出具回执").click()
    await expect(clerk.get_by_role("heading", name=re.compile("受理回执"))).to_be_visible()
    return await clerk.get_by_test_id("ticket").inner_text(), await clerk.get_by_test_id("code").inner_text()


@pytest.fixture(scope="session")
async def browser(chromium: str, axe_core: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


class People:
    """Browser contexts of their own (a cookie jar each), one per person the test plays."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[BrowserContext] = []

    async def anonymous(self, phone: bool = False, enforce_csp: bool = False) -> Page:
        # The console's Content-Security-Policy runs no inline script, and axe-core is injected as
        # one: its contexts bypass the policy. `enforce_csp` for a test of the policy itself.
        context = await self.browser.new_context(
            base_url=self.base_url, locale="zh-CN", bypass_csp=not enforce_csp,
            **({"viewport": {"width": 390, "height": 844}, "is_mobile": True} if phone else {}))
        context.set_default_timeout(PATIENCE_MS)
        self.contexts.append(context)
        return await context.new_page()

    async def signed_in(self, login: str, phone: bool = False, enforce_csp: bool = False) -> Page:
        page = await self.anonymous(phone, enforce_csp)
        await page.goto("/signin")
        await page.get_by_label("账号").fill(login)
        await page.get_by_label("密码").fill(DEMO_PASSWORD)
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_url(re.compile(r".*/(board|intake|tasks|enforcement|appraisal|county|audit)\b.*"))
        return page

    async def followed(self, login: str, start: str, link: str) -> Page:
        """`login` signed in, on a page reached as its readers reach it: the link named `link` of
        the page `start`, followed."""
        page = await self.signed_in(login)
        await page.goto(start)
        await page.get_by_role("link", name=link).click()
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def people(browser: Browser, console_url: str) -> AsyncIterator[People]:
    crowd = People(browser, console_url)
    yield crowd
    await crowd.close()


def an_address() -> str:
    """A private address of the test's own, so no other test's failures count against it: 250 of
    TEST-NET-2 collided often enough, a sprayer's 20 failures locking another test's visitor out.
    (IPv4: an IPv6 address's hex groups read as English words on the audit page's crawl.)"""
    return str(ipaddress.IPv4Address((10 << 24) | uuid.uuid4().int % (1 << 24)))


class Visitors:
    """Browser contexts of the test's own, each from an address and on a console replica."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []

    async def at(self, base_url: str, address: str | None = None) -> Page:
        context = await self.browser.new_context(  # axe-core is injected as an inline script: see conftest
            base_url=base_url, locale="zh-CN", bypass_csp=True,
            extra_http_headers={"X-Forwarded-For": address or an_address()})
        context.set_default_timeout(PATIENCE_MS)
        self.contexts.append(context)
        return await context.new_page()

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def visitors(browser: Browser) -> AsyncIterator[Visitors]:
    crowd = Visitors(browser)
    yield crowd
    await crowd.close()
