"""The console in a real browser: Debian's Chromium driven by Playwright (never `playwright
install`), against the session's demo-county stack with the console started beside it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from devstack.demo_accounts import DEMO_PASSWORD
from devstack.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps calling hosts this machine cannot reach.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]


@pytest.fixture(scope="session")
def console_url(county_stack: Stack) -> str:
    return county_stack.start_console().url


@pytest.fixture(scope="session")
def chromium() -> str:
    """Missing is a failure, not a skip: `make install` installs it (as root: apt-get install chromium)."""
    assert CHROMIUM.exists(), "Debian's chromium is not installed: apt-get install chromium fonts-noto-cjk"
    return str(CHROMIUM)


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
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

    async def anonymous(self, phone: bool = False) -> Page:
        context = await self.browser.new_context(
            base_url=self.base_url, locale="zh-CN",
            **({"viewport": {"width": 390, "height": 844}, "is_mobile": True} if phone else {}))
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        return await context.new_page()

    async def signed_in(self, login: str, phone: bool = False) -> Page:
        page = await self.anonymous(phone)
        await page.goto("/signin")
        await page.get_by_label("账号").fill(login)
        await page.get_by_label("密码").fill(DEMO_PASSWORD)
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_url(re.compile(r".*/(board|intake|tasks|enforcement|appraisal|county)\b.*"))
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def people(browser: Browser, console_url: str) -> AsyncIterator[People]:
    crowd = People(browser, console_url)
    yield crowd
    await crowd.close()
