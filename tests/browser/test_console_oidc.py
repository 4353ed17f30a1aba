"""Staff sign in through the county's OIDC provider: a real Keycloak (devstack/keycloak.py, the demo
county's staff as its users), the four services verifying its tokens from its JWKS with their own
audiences and the staff id from the `staff_id` claim, and the console signing in there (issue #28).

A stack of this module's own, started beside Keycloak: the session's stacks trust the stand-in issuer."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from devstack.demo_accounts import DEMO_PASSWORD
from devstack.keycloak import CONSOLE_CLIENT, SERVICES_SCOPE, Keycloak, audience_of, start_stack_on_keycloak
from devstack.stack import Stack
from tests.conftest import QINGHE, http_client
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import PATIENCE_MS, assert_accessible, file_at_the_window

PROTECTED = {"intake": "/v1/catalog", "dispatch": "/v1/tasks", "enforcement": "/v1/inspections",
             "appraisal": "/v1/scores"}
CLERK = "qh-s010"  # 刘明, 青禾镇, clerk and staff
ADMIN = "qh-s000"  # 周建国, 青禾镇, the town's admin: every role, so every service's read answers 200


@dataclass
class OidcStack:
    stack: Stack
    keycloak: Keycloak
    console_url: str

    @property
    def console_secret(self) -> str:
        assert self.stack.console is not None
        return self.stack.console.env["TOWNFLOW_CONSOLE_OIDC_CLIENT_SECRET"]


@pytest.fixture(scope="module")
def oidc() -> Iterator[OidcStack]:
    stack = Stack.in_temp_dir(test_clock=True, kafka_heap="384m", extra_env={"TOWNFLOW_TOWN_DIR": str(DEMO_COUNTY_DIR)})
    keycloak = Keycloak(stack.workdir / "keycloak")
    try:
        console = start_stack_on_keycloak(stack, keycloak, DEMO_COUNTY_DIR, DEMO_PASSWORD)
        print(f"Keycloak answered {keycloak.start_seconds:.1f} s after its launch")
        yield OidcStack(stack, keycloak, console.url)
    except BaseException:
        for child in [keycloak.child, *(p.child for p in stack.all_replicas()),
                      stack.console.child if stack.console else None]:
            if child is not None:
                print(f"--- {child.name} log ---\n{child.tail(40)}")
        raise
    finally:
        keycloak.stop()
        stack.stop()


async def _sign_in_at_keycloak(page: Page, oidc: OidcStack, login: str) -> None:
    """From the console's sign-in page through Keycloak's own, back into the console."""
    await page.get_by_role("link", name="使用统一身份认证登录").click()
    await page.wait_for_url(re.compile(re.escape(oidc.keycloak.issuer) + r"/protocol/openid-connect/auth\b.*"))
    await expect(page).to_have_title(re.compile(r"^登录到 禾川县统一身份认证"))  # in Chinese (the realm's locale)
    await page.locator("#username").fill(login)
    await page.locator("#password").fill(DEMO_PASSWORD)
    await page.locator("#kc-login").click()


async def test_a_clerk_signs_in_at_the_provider_works_and_signs_out_there(browser: Browser, oidc: OidcStack) -> None:
    # axe-core is injected as an inline script: the context bypasses the CSP (tests/browser/conftest.py).
    context = await browser.new_context(base_url=oidc.console_url, locale="zh-CN", bypass_csp=True)
    context.set_default_timeout(PATIENCE_MS)
    try:
        page = await context.new_page()
        await page.goto("/intake")
        await page.wait_for_url(re.compile(r".*/signin\?next=/intake$"))
        await expect(page.get_by_label("密码")).to_have_count(0)  # no local sign-in beside the provider
        await assert_accessible(page, "the sign-in page with the provider's button")
        await _sign_in_at_keycloak(page, oidc, CLERK)

        # Back in the console as 刘明 of 青禾镇, the staff file's name for the staff id of the token.
        await page.wait_for_url(f"{oidc.console_url}/intake")
        await expect(page.locator("form.who")).to_contain_text("青禾镇 · 刘明")
        # The session keeps the ID and refresh tokens: every cookie still fits the 4096 bytes a browser keeps.
        sizes = {c["name"]: len(c["name"]) + len(c["value"]) for c in await context.cookies(oidc.console_url)}
        print(f"the console's cookies after a sign-in at the provider: {sizes}")
        assert sizes and max(sizes.values()) < 4096, sizes
        # Real work: intake takes the filing (a token exchanged for intake's audience) and the
        # receipt shows its ticket; 我的任务 lists dispatch's tasks (one for dispatch's).
        ticket, _ = await file_at_the_window(page)
        assert re.fullmatch(r"\S+", ticket)
        await page.goto("/tasks")
        await expect(page.get_by_role("heading", name="我的任务")).to_be_visible()
        await expect(page.locator(".error")).to_have_count(0)

        # 退出 ends the provider's session too (RP-initiated logout), back to the sign-in page.
        end_session = re.compile(re.escape(oidc.keycloak.issuer) + r"/protocol/openid-connect/logout\?.*")
        async with page.expect_request(end_session) as logout:
            await page.get_by_role("button", name="退出").click()
        assert {"id_token_hint", "post_logout_redirect_uri"} <= set(httpx.URL((await logout.value).url).params)
        await page.wait_for_url(re.compile(re.escape(oidc.console_url) + r"/signin\b.*"))
        await page.goto("/tasks")
        await page.wait_for_url(re.compile(r".*/signin\?next=/tasks$"))
        # Keycloak asks for the password again: its single sign-on session is over.
        await page.get_by_role("link", name="使用统一身份认证登录").click()
        await expect(page.locator("#password")).to_be_visible()
    finally:
        await context.close()


async def test_a_sign_in_that_did_not_start_here_is_refused(browser: Browser, oidc: OidcStack) -> None:
    """A callback without this browser's pending sign-in (a forged or replayed `state`): no session."""
    # axe-core is injected as an inline script: the context bypasses the CSP (tests/browser/conftest.py).
    context = await browser.new_context(base_url=oidc.console_url, locale="zh-CN", bypass_csp=True)
    try:
        page = await context.new_page()
        answer = await page.goto("/signin/oidc/callback?state=forged&code=whatever")
        assert answer is not None and answer.status == 401
        await expect(page.get_by_role("alert")).to_contain_text("请重新登录")
        await page.goto("/tasks")
        await page.wait_for_url(re.compile(r".*/signin\?next=/tasks$"))
    finally:
        await context.close()


def _claims(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")))


async def _code_flow(oidc: OidcStack, login: str) -> dict[str, Any]:
    """The console client's tokens for `login`, by the authorization code flow with PKCE driven over
    HTTP (Keycloak's form posted as a browser would): what the console holds after a sign-in."""
    issuer = oidc.keycloak.issuer
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = f"{oidc.console_url}/signin/oidc/callback"
    async with http_client(timeout=30) as client:
        form = await client.get(f"{issuer}/protocol/openid-connect/auth", params={
            "client_id": CONSOLE_CLIENT, "response_type": "code", "scope": "openid", "redirect_uri": redirect,
            "state": "s", "nonce": "n", "code_challenge": challenge, "code_challenge_method": "S256"})
        found = re.search(r'action="([^"]+)"', form.text)
        assert found, form.text[:500]
        # Keycloak's cookies are Secure: a browser sends them to loopback over HTTP, httpx does not.
        cookies = "; ".join(f"{name}={value}" for name, value in form.cookies.items())
        signed_in = await client.post(html.unescape(found.group(1)), headers={"Cookie": cookies},
                                      data={"username": login, "password": DEMO_PASSWORD})
        assert signed_in.status_code == 302, signed_in.text[:500]
        code = httpx.URL(signed_in.headers["location"]).params["code"]
        tokens = await client.post(f"{issuer}/protocol/openid-connect/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "code_verifier": verifier,
            "client_id": CONSOLE_CLIENT, "client_secret": oidc.console_secret})
        assert tokens.status_code == 200, tokens.text
        return dict(tokens.json())


async def _exchanged(oidc: OidcStack, access_token: str, service: str) -> str:
    async with http_client(timeout=30) as client:
        answer = await client.post(f"{oidc.keycloak.issuer}/protocol/openid-connect/token", data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": access_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token", "audience": audience_of(service),
            "scope": f"openid {SERVICES_SCOPE}", "client_id": CONSOLE_CLIENT, "client_secret": oidc.console_secret})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def _status(oidc: OidcStack, service: str, token: str) -> int:
    async with http_client(base_url=oidc.stack.services[service].url, timeout=20) as client:
        answer = await client.get(PROTECTED[service], headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def test_an_exchanged_token_is_its_service_s_alone(oidc: OidcStack) -> None:
    """As the console obtains them: each service accepts the token exchanged for its audience, and
    refuses another service's; the access token of the sign-in itself names no service and is
    refused by all four."""
    tokens = await _code_flow(oidc, ADMIN)
    assert "aud" not in _claims(tokens["access_token"])
    exchanged = {service: await _exchanged(oidc, tokens["access_token"], service) for service in PROTECTED}
    intake = _claims(exchanged["intake"])
    assert (intake["aud"], intake["staff_id"], intake["town"], sorted(intake["roles"])) == (
        "townflow-intake", "s000", QINGHE, ["admin", "command_centre", "staff"])
    answers = {(holder, service): await _status(oidc, service, exchanged[holder])
               for holder in PROTECTED for service in PROTECTED}
    assert answers == {(holder, service): 200 if holder == service else 401 for holder, service in answers}
    assert {service: await _status(oidc, service, tokens["access_token"]) for service in PROTECTED} == dict.fromkeys(
        PROTECTED, 401)
    # Notify too (the console reads its delivery log, 消息记录, with the person's token): an audience of its own.
    notify = _claims(await _exchanged(oidc, tokens["access_token"], "notify"))
    assert (notify["aud"], notify["staff_id"]) == ("townflow-notify", "s000")
