"""Sign-in through an OIDC provider without one: the person an ID token's claims name, the pending
sign-in's cookie, and the provider's answers checked (discovery, PKCE, the ID token's iss, aud,
nonce and exp, token exchange's parameters) against a provider played by httpx's MockTransport.
The real Keycloak in Chromium: tests/browser/test_console_oidc.py."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import Request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr

from console.accounts import Accounts
from console.app import Console, create_app
from console.errors import ServiceError
from console.oidc import (
    _REQUEST,
    AsyncOAuth2Client,
    ClaimNames,
    PendingCodec,
    PendingSignIn,
    Provider,
    ProviderSignIn,
    ProviderTokens,
    ProviderUnavailable,
    SignedIn,
    SignInRefused,
    person_from_claims,
)
from console.services import Services
from console.session import COOKIE, ProviderGrant, Session
from console.settings import ConsoleSettings
from console.web import SignInNeeded
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR

from .fakes import FakeClock, FakeFailures, FakeRecords, FakeSessions

COUNTY = load_county(DEMO_COUNTY_DIR)
KEYCLOAK = ClaimNames(staff_id="staff_id")
QINGHE = "321003104"


def test_a_town_s_staff_member_is_named_as_the_staff_file_names_them() -> None:
    person = person_from_claims({"sub": "f4346a65", "staff_id": "s010", "town": QINGHE, "preferred_username": "qh-s010",
                                 "roles": ["clerk", "staff", "default-roles-townflow", "offline_access"]},
                                KEYCLOAK, COUNTY)
    # Roles Townflow does not know (a realm's defaults) are left out.
    assert (person.login, person.sub, person.name, person.town, person.town_name, person.roles) == (
        "qh-s010", "s010", "刘明", QINGHE, "青禾镇", frozenset({"clerk", "staff"}))


def test_county_staff_have_no_town_and_the_county_s_name() -> None:
    person = person_from_claims({"staff_id": "c001", "roles": ["county_admin"]}, KEYCLOAK, COUNTY)
    assert (person.sub, person.name, person.town, person.town_name) == ("c001", "葛长青", None, "禾川县")


def test_in_a_one_town_deployment_the_town_claim_may_be_left_out() -> None:
    town = load_county(DEMO_TOWN_DIR)
    person = person_from_claims({"sub": "s010", "roles": ["clerk"]}, ClaimNames(), town)
    assert person.town == next(iter(town.towns))


@pytest.mark.parametrize(("claims", "why"), [
    ({"sub": "f4346a65", "town": QINGHE, "roles": ["clerk"]}, "工号"),               # no staff_id claim
    ({"staff_id": "s999", "town": QINGHE, "roles": ["clerk"]}, "本镇人员名册"),        # not in the town's file
    ({"staff_id": "s010", "town": "999999999", "roles": ["clerk"]}, "本镇人员名册"),   # no such town
    ({"staff_id": "c999", "roles": ["county_admin"]}, "县里的人员名册"),
    ({"staff_id": "s010", "town": 321003104, "roles": ["clerk"]}, "乡镇代码"),
    ({"staff_id": "s010", "town": QINGHE, "roles": "clerk"}, "岗位"),
])
def test_a_person_the_county_s_files_do_not_know_is_refused_in_words(claims: dict[str, Any], why: str) -> None:
    with pytest.raises(SignInRefused) as refused:
        person_from_claims(claims, KEYCLOAK, COUNTY)
    assert why in refused.value.message


def test_the_pending_sign_in_survives_its_cookie_and_nothing_else_does() -> None:
    codec = PendingCodec(b"k" * 32)
    pending = PendingSignIn.begin("/tasks")
    value = codec.encode(pending)
    assert pending.verifier not in value and pending.nonce not in value  # encrypted, not only signed
    assert codec.decode(value) == pending
    assert PendingCodec(b"o" * 32).decode(value) is None                 # another console's key
    assert codec.decode(value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")) is None  # altered
    assert codec.decode(codec.encode(replace(pending, expires=time.time() - 1))) is None  # expired
    assert codec.decode(None) is None and codec.decode("garbage") is None


ISSUER = "https://sso.county.example/realms/townflow"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)


class FakeProvider:
    """The provider's endpoints as httpx's MockTransport answers them; `id_claims` are what the
    next ID token says, `sent` every form posted to the token endpoint."""

    def __init__(self) -> None:
        self.discovery: dict[str, Any] = {
            "issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/certs", "end_session_endpoint": f"{ISSUER}/logout",
            "id_token_signing_alg_values_supported": ["RS256"]}
        self.id_claims: dict[str, Any] = {}
        self.sent: list[dict[str, str]] = []

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json=self.discovery)
        if path.endswith("/certs"):
            return httpx.Response(200, json=KeySet([KEY]).as_dict(private=False))
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.sent.append(form)
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, self.id_claims, KEY)
        return httpx.Response(200, json={"access_token": "at-" + form["grant_type"][-8:], "expires_in": 300,
                                         "refresh_token": "rt", "id_token": id_token, "token_type": "Bearer"})


def _provider(fake: FakeProvider, **settings: Any) -> Provider:
    options = ConsoleSettings(console_oidc_issuer=ISSUER, console_oidc_client_secret="s3cret", **settings)
    client = AsyncOAuth2Client("townflow-console", "s3cret", scope="openid", code_challenge_method="S256",
                               token_endpoint_auth_method="client_secret_post",
                               transport=httpx.MockTransport(fake.answer))
    return Provider(options, client)


def _id_claims(pending: PendingSignIn, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "townflow-console", "azp": "townflow-console", "sub": "f4346a65",
            "nonce": pending.nonce, "iat": now, "exp": now + 300, "staff_id": "s010", "town": QINGHE,
            "roles": ["clerk", "staff"], "preferred_username": "qh-s010", **changes}


async def test_the_authorization_request_carries_state_nonce_and_the_s256_challenge() -> None:
    provider = _provider(FakeProvider())
    pending = PendingSignIn.begin("/")
    url = httpx.URL(await provider.authorization_url(pending, "https://zwt.county.example/signin/oidc/callback"))
    assert (url.host, url.path) == ("sso.county.example", "/realms/townflow/auth")
    assert dict(url.params) == {
        "response_type": "code", "client_id": "townflow-console", "scope": "openid",
        "redirect_uri": "https://zwt.county.example/signin/oidc/callback", "state": pending.state,
        "nonce": pending.nonce, "code_challenge": create_s256_code_challenge(pending.verifier),
        "code_challenge_method": "S256"}


async def test_a_sign_in_finishes_with_the_code_the_verifier_and_a_checked_id_token() -> None:
    fake = FakeProvider()
    provider = _provider(fake)
    pending = PendingSignIn.begin("/")
    fake.id_claims = _id_claims(pending)
    signed = await provider.finish("the-code", pending, "https://zwt/cb", KEYCLOAK, COUNTY)
    assert (signed.person.sub, signed.person.name, signed.grant.refresh_token) == ("s010", "刘明", "rt")
    assert fake.sent[0] | {"client_secret": "…"} == {
        "grant_type": "authorization_code", "code": "the-code", "code_verifier": pending.verifier,
        "redirect_uri": "https://zwt/cb", "client_id": "townflow-console", "client_secret": "…"}


@pytest.mark.parametrize("wrong", [
    {"nonce": "another sign-in's"}, {"aud": "another-client"}, {"iss": "https://elsewhere.example"},
    {"exp": int(time.time()) - 600}, {"azp": "another-client"},
])
async def test_an_id_token_failing_a_check_is_refused(wrong: dict[str, Any]) -> None:
    fake = FakeProvider()
    pending = PendingSignIn.begin("/")
    fake.id_claims = _id_claims(pending, **wrong)
    with pytest.raises(SignInRefused) as refused:
        await _provider(fake).finish("the-code", pending, "https://zwt/cb", KEYCLOAK, COUNTY)
    assert refused.value.message == "统一身份认证的凭据未通过校验，请重新登录。"


async def test_an_id_token_signed_by_a_key_not_in_the_jwks_is_refused() -> None:
    fake = FakeProvider()
    pending = PendingSignIn.begin("/")
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    provider = _provider(fake)
    fake.id_claims = _id_claims(pending)
    forged = jwt.encode({"alg": "RS256", "kid": "k1"}, fake.id_claims, stranger)
    with pytest.raises(SignInRefused):
        await provider.checked_id_token(forged, pending.nonce, "at")


async def test_a_discovery_document_naming_another_issuer_is_not_followed() -> None:
    fake = FakeProvider()
    fake.discovery["issuer"] = "https://elsewhere.example"
    with pytest.raises(ProviderUnavailable):
        await _provider(fake).authorization_url(PendingSignIn.begin("/"), "https://zwt/cb")


async def test_a_service_s_token_is_exchanged_for_its_audience_alone() -> None:
    fake = FakeProvider()
    token, expires = await _provider(fake, console_oidc_exchange_scope="openid townflow-services").exchange(
        "the-access-token", "dispatch")
    assert token == "at-exchange" and expires > time.time() + 200
    assert fake.sent[0] | {"client_secret": "…"} == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "the-access-token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token", "audience": "townflow-dispatch",
        "scope": "openid townflow-services", "client_id": "townflow-console", "client_secret": "…"}


async def test_rp_initiated_logout_names_the_session_s_id_token_and_the_way_back() -> None:
    url = httpx.URL(await _provider(FakeProvider()).logout_url(ProviderGrant("the-id-token", "rt"),
                                                               "https://zwt/signin"))
    assert url.path == "/realms/townflow/logout"
    assert dict(url.params) == {"id_token_hint": "the-id-token", "client_id": "townflow-console",
                                "post_logout_redirect_uri": "https://zwt/signin"}


def test_the_claims_to_read_are_settings() -> None:
    assert json.dumps(ClaimNames().__dict__) == '{"staff_id": "sub", "town": "town", "roles": "roles"}'


class CountingProvider:
    """The provider's refresh and exchange as ProviderTokens calls them, counted; `refused` makes
    the refresh fail as a provider does once its session ended."""

    def __init__(self) -> None:
        self.refreshes: list[str] = []
        self.exchanges: list[tuple[str, str]] = []
        self.refused = False
        self.exchanges_refused = 0  # the next this many exchanges are refused
        self.away = False

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        self.refreshes.append(refresh_token)
        await asyncio.sleep(0)  # the other calls of the page arrive meanwhile
        if self.refused:
            raise SignInRefused("统一身份认证拒绝了这次登录，请重新登录。")
        return {"access_token": f"at{len(self.refreshes)}", "expires_in": 300, "refresh_token": f"rt{len(self.refreshes)}"}

    async def exchange(self, access_token: str, service: str) -> tuple[str, float]:
        self.exchanges.append((access_token, service))
        if self.away:
            raise ProviderUnavailable("connection refused")
        if self.exchanges_refused:
            self.exchanges_refused -= 1
            raise SignInRefused("统一身份认证拒绝了这次登录，请重新登录。")
        return f"{service}-token-from-{access_token}", time.time() + 300


PERSON = person_from_claims({"staff_id": "s010", "town": QINGHE, "roles": ["clerk", "staff"]}, KEYCLOAK, COUNTY)
GRANT = ProviderGrant("id-token", "rt0")


def _request(session: Session) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(console=SimpleNamespace()))
    return Request({"type": "http", "method": "GET", "path": "/tasks", "query_string": b"", "headers": [],
                    "scheme": "http", "server": ("console", 80), "app": app,
                    "state": {"session": session, "session_changed": False, "session_updated": False}})


async def _token_in(request: Request, tokens: ProviderTokens, service: str) -> str:
    entered = _REQUEST.set(request)
    try:
        return await tokens.token_for(PERSON, service)
    finally:
        _REQUEST.reset(entered)


async def test_the_sign_in_s_access_token_is_exchanged_once_per_service_then_kept() -> None:
    provider = CountingProvider()
    tokens = ProviderTokens(provider)  # type: ignore[arg-type]
    tokens.signed_in(SignedIn(PERSON, GRANT, "at-sign-in", time.time() + 300))
    request = _request(Session(person=PERSON, provider=GRANT))
    assert await _token_in(request, tokens, "intake") == "intake-token-from-at-sign-in"
    assert await _token_in(request, tokens, "intake") == "intake-token-from-at-sign-in"
    assert (provider.refreshes, provider.exchanges) == ([], [("at-sign-in", "intake")])


async def test_an_expired_access_token_is_refreshed_once_for_a_page_s_calls_and_the_new_refresh_token_kept() -> None:
    provider = CountingProvider()
    tokens = ProviderTokens(provider)  # type: ignore[arg-type]
    request = _request(Session(person=PERSON, provider=GRANT))
    entered = _REQUEST.set(request)
    try:
        got = await asyncio.gather(*(tokens.token_for(PERSON, s) for s in ("intake", "dispatch", "appraisal")))
    finally:
        _REQUEST.reset(entered)
    assert got == ["intake-token-from-at1", "dispatch-token-from-at1", "appraisal-token-from-at1"]
    assert provider.refreshes == ["rt0"]
    assert request.state.session.provider == ProviderGrant("id-token", "rt1") and request.state.session_updated


async def test_a_refresh_the_provider_refuses_ends_the_console_s_session_too() -> None:
    provider = CountingProvider()
    provider.refused = True
    tokens = ProviderTokens(provider)  # type: ignore[arg-type]
    request = _request(Session(person=PERSON, provider=GRANT))
    with pytest.raises(SignInNeeded) as needed:
        await _token_in(request, tokens, "dispatch")
    assert needed.value.next_path == "/tasks"
    assert request.state.session.person is None and request.state.session_changed


async def test_a_local_account_s_session_gets_no_provider_token() -> None:
    tokens = ProviderTokens(CountingProvider())  # type: ignore[arg-type]
    with pytest.raises(SignInNeeded):
        await _token_in(_request(Session(person=PERSON)), tokens, "intake")


async def test_the_console_signs_a_person_in_at_the_provider_calls_a_service_with_an_exchanged_token_and_signs_out_there(
) -> None:
    """The whole way through the console app (its routes, session and token source), the provider
    and the services played by MockTransports."""
    fake, seen = FakeProvider(), []
    settings = ConsoleSettings(town_dir=DEMO_COUNTY_DIR, console_oidc_state_key=SecretStr("s" * 32),
                               console_oidc_issuer=ISSUER, console_oidc_client_secret=SecretStr("s3cret"),
                               console_oidc_staff_id_claim="staff_id")
    app = create_app(settings)
    county = load_county(DEMO_COUNTY_DIR)
    clock = FakeClock()
    sessions = FakeSessions(clock)
    records = FakeRecords(clock)
    provider = _provider(fake)
    oidc = ProviderSignIn(provider, ProviderTokens(provider), PendingCodec(b"s" * 32), KEYCLOAK, None)

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as services_client:
        urls = {s: f"http://{s}.test" for s in ("intake", "dispatch", "enforcement", "appraisal")}
        app.state.console = Console(settings, county, Accounts(county),
                                    Services(urls, oidc.tokens, services_client, county), sessions,
                                    FakeFailures(clock).unit_of_work, records, oidc)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://console.test") as browser:
            page = await browser.get("/signin")
            assert "使用统一身份认证登录" in page.text and 'type="password"' not in page.text
            forged = await browser.get("/signin/oidc/callback", params={"state": "forged", "code": "stolen"})
            assert forged.status_code == 401  # no sign-in of this state began here: refused, and recorded
            to_provider = await browser.get("/signin/oidc", params={"next": "/tasks"})
            assert to_provider.status_code == 303
            asked = httpx.URL(to_provider.headers["location"]).params
            now = int(time.time())
            fake.id_claims = {"iss": ISSUER, "aud": "townflow-console", "azp": "townflow-console", "sub": "f4346a65",
                              "nonce": asked["nonce"], "iat": now, "exp": now + 300, "staff_id": "s010",
                              "town": QINGHE, "roles": ["clerk", "staff"]}
            back = await browser.get("/signin/oidc/callback", params={"state": asked["state"], "code": "the-code"})
            assert (back.status_code, back.headers["location"]) == (303, "/tasks")
            assert fake.sent[0]["code_verifier"]  # the verifier of the challenge sent, from the pending cookie
            await browser.get("/tasks")
            assert seen and seen[0].headers["Authorization"] == "Bearer at-exchange"
            assert fake.sent[1]["audience"] == f"townflow-{seen[0].url.host.removesuffix('.test')}"
            session = await sessions.resume(browser.cookies[COOKIE].strip('"'), activity=False)
            assert session is not None and session.person is not None and session.person.name == "刘明"
            out = await browser.post("/signout", data={"csrf": session.csrf})
            ended = httpx.URL(out.headers["location"])
            assert (ended.path, ended.params["id_token_hint"]) == ("/realms/townflow/logout", session.provider.id_token
                                                                    if session.provider else None)
            signed_out = await browser.get("/tasks")
            assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/signin?next=/tasks")
    # The audit trail: the sign-in at the provider and the sign-out, with who.
    assert [(r.action, r.outcome, r.actor, r.target_id) for r in records.records + sessions.records] == [
        ("session.oidc_sign_in", "sign_in.oidc_refused", "", ""), ("session.oidc_sign_in", "ok", "s010", "s010"),
        ("session.sign_out", "ok", "s010", "s010")]


async def test_an_exchange_refused_is_tried_once_more_after_a_refresh() -> None:
    """An access token of a session the provider ended since is refused; the refresh tells whether
    the session lives on (here it does: the page goes on)."""
    provider = CountingProvider()
    provider.exchanges_refused = 1
    tokens = ProviderTokens(provider)  # type: ignore[arg-type]
    tokens.signed_in(SignedIn(PERSON, GRANT, "at-sign-in", time.time() + 300))
    request = _request(Session(person=PERSON, provider=GRANT))
    assert await _token_in(request, tokens, "intake") == "intake-token-from-at1"
    assert provider.exchanges == [("at-sign-in", "intake"), ("at1", "intake")] and provider.refreshes == ["rt0"]


async def test_an_exchange_refused_after_a_refresh_too_is_the_page_s_refusal_not_a_sign_in_loop() -> None:
    provider = CountingProvider()
    provider.exchanges_refused = 2
    tokens = ProviderTokens(provider)  # type: ignore[arg-type]
    request = _request(Session(person=PERSON, provider=GRANT))
    with pytest.raises(ServiceError) as refused:
        await _token_in(request, tokens, "enforcement")
    assert refused.value.message == "统一身份认证未发放访问执法服务的凭据，请联系县里的系统管理员。"
    assert request.state.session.person == PERSON  # still signed in


async def test_a_provider_away_is_the_page_s_refusal() -> None:
    provider = CountingProvider()
    provider.away = True
    tokens = ProviderTokens(provider)  # type: ignore[arg-type]
    tokens.signed_in(SignedIn(PERSON, GRANT, "at-sign-in", time.time() + 300))
    with pytest.raises(ServiceError) as refused:
        await _token_in(_request(Session(person=PERSON, provider=GRANT)), tokens, "intake")
    assert refused.value.status == 0 and "统一身份认证" in refused.value.message
