"""Signing staff in through the county's OIDC provider, and the tokens the console then presents.

Sign-in is the authorization code flow with PKCE (S256), a `state` and a `nonce`, through Authlib:
the provider's endpoints come from its discovery document, the ID token is checked against its
JWKS (signature, `iss`, `aud`, `azp`, `nonce`, `exp`, `at_hash`), and the person is the staff id
and town of configured claims, named as the town's staff file names them. Until the callback, the
state, nonce and code verifier wait in a short-lived cookie of their own, encrypted (JWE) under a
key from the session secret, so any replica finishes what another began.

Each service is then called with a token of its own audience, which the console obtains from the
provider by standard token exchange (RFC 8693) of the person's access token: a token seen in one
service's traffic is refused by the others, as with the console's own signed tokens. The session
keeps the ID token (RP-initiated logout names it) and the refresh token (a new access token to
exchange when the last one expired); access and exchanged tokens are kept per replica in memory
until shortly before they expire. A refresh the provider refuses (the person signed out there, or
was disabled) ends the console's session too. docs/security-oidc.md says why exchange."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.oidc.core import CodeIDToken
from fastapi import Request
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from starlette.types import ASGIApp, Receive, Scope, Send

from townflow_shared.auth import ROLES
from townflow_shared.county import County

from .accounts import Person
from .errors import ServiceError
from .services import SERVICE_NAMES
from .session import ProviderGrant, Session
from .session_audit import PROVIDER_END
from .settings import ConsoleSettings
from .web import SignInNeeded, console_of, start_session

with warnings.catch_warnings():  # Authlib 1.9 would rather run on the httpx2 fork; it runs on httpx, which we pin
    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant type's name
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a token type's name
PENDING_COOKIE = "tf_oidc"
PENDING_SECONDS = 600  # a person takes this long at most on the provider's sign-in page
CALLBACK = "/signin/oidc/callback"
# A token is used until this close to its expiry, then a new one is obtained.
EARLY_SECONDS = 30


class ProviderUnavailable(Exception):
    """The provider did not answer, or answered with an error of its own (5xx, a broken document)."""


class SignInRefused(Exception):
    """The sign-in cannot finish: `message` says why, in the words the sign-in page shows."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(why or message)
        self.message = message


@dataclass(frozen=True)
class ClaimNames:
    """Which claims of the ID token name the staff member, their town and roles (settings)."""

    staff_id: str = "sub"
    town: str = "town"
    roles: str = "roles"


def person_from_claims(claims: Mapping[str, Any], names: ClaimNames, county: County) -> Person:
    """The person an ID token names: the staff id and town of its claims, the roles of its roles
    claim (what the services will read from the exchanged tokens; names Townflow does not know,
    such as a realm's default roles, are left out), and the name the town's staff file gives.
    Refused when the claims are missing or the county's files do not know the person."""
    staff_id, town, roles = claims.get(names.staff_id), claims.get(names.town), claims.get(names.roles, [])
    if not isinstance(staff_id, str) or not staff_id:
        raise SignInRefused("统一身份认证未提供您的工号，请联系县里的系统管理员。", f"no {names.staff_id} claim")
    if town is not None and not isinstance(town, str):
        raise SignInRefused("统一身份认证提供的乡镇代码有误，请联系县里的系统管理员。", f"{names.town} is not a code")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise SignInRefused("统一身份认证提供的岗位有误，请联系县里的系统管理员。", f"{names.roles} is not a list")
    held = frozenset(roles) & ROLES
    login = str(claims.get("preferred_username") or staff_id)
    if town is None and county.only_town is not None and staff_id in county.only_town.staff:
        town = county.only_town.code  # a one-town deployment: its staff need no town claim (as in the services)
    if town is None:
        county_staff = {s.id: s for s in county.info.staff} if county.info is not None else {}
        if staff_id not in county_staff:
            raise SignInRefused("县里的人员名册中没有您的工号，请联系县里的系统管理员。", f"no county staff {staff_id}")
        return Person(login, staff_id, county_staff[staff_id].name, held, None,
                      county.info.name if county.info is not None else "")
    found = county.town(town)
    if found is None or staff_id not in found.staff:
        raise SignInRefused("本镇人员名册中没有您的工号，请联系本镇管理员。", f"no staff {staff_id} in town {town}")
    return Person(login, staff_id, found.staff[staff_id].name, held, town, found.info.name)


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in begun here and finished at the callback: what the provider must send back."""

    state: str
    nonce: str
    verifier: str  # PKCE's code verifier: its S256 challenge went with the authorization request
    next_path: str
    expires: float

    @classmethod
    def begin(cls, next_path: str) -> PendingSignIn:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path,
                   time.time() + PENDING_SECONDS)


class PendingCodec:
    """The pending sign-in as an encrypted cookie value (JWE, dir + A256GCM): the browser holds it
    and can neither read nor alter it; a value past its expiry is no value."""

    def __init__(self, secret: bytes) -> None:
        self._key = OctKey.import_key(hashlib.sha256(b"townflow console oidc pending " + secret).digest())

    def encode(self, pending: PendingSignIn) -> str:
        return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, json.dumps(pending.__dict__), self._key)

    def decode(self, value: str | None) -> PendingSignIn | None:
        if not value:
            return None
        try:
            pending = PendingSignIn(**json.loads(jwe.decrypt_compact(value, self._key).plaintext or b""))
        except (JoseError, ValueError, TypeError):
            return None
        return pending if pending.expires > time.time() else None


@dataclass(frozen=True)
class SignedIn:
    """What the provider's answer to a finished sign-in holds for the console."""

    person: Person
    grant: ProviderGrant
    access_token: str
    access_expires: float


class Provider:
    """The county's OIDC provider as the console uses it: discovery, the authorization request,
    the code's redemption and the ID token's checks, refresh, token exchange, the logout address.

    One Authlib client serves every person: each call passes its own code, verifier and tokens
    (Authlib keeps the last answer on the client as `token`; nothing here reads it)."""

    def __init__(self, settings: ConsoleSettings, client: AsyncOAuth2Client | None = None) -> None:
        if not settings.console_oidc_issuer:
            raise ValueError("TOWNFLOW_CONSOLE_OIDC_ISSUER is not set")
        self.issuer = settings.console_oidc_issuer.rstrip("/")
        self.client_id = settings.console_oidc_client_id
        self.scope = settings.console_oidc_scope
        self.exchange_scope = settings.console_oidc_exchange_scope
        self.audience_template = settings.console_audience_template
        secret = settings.console_oidc_client_secret
        self.client = client or AsyncOAuth2Client(
            self.client_id, secret.get_secret_value() if secret else None, scope=self.scope,
            code_challenge_method="S256", token_endpoint_auth_method="client_secret_post" if secret else "none",
            timeout=settings.service_timeout_seconds)
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, fetched on first use (the console starts while the provider is
        away) and kept."""
        if self._metadata is None:
            document = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            if document.get("issuer") != self.issuer:  # OIDC Discovery §4.3
                raise ProviderUnavailable(f"the discovery document names issuer {document.get('issuer')!r}")
            self._metadata = document
        return self._metadata

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            answer = await self.client.request("GET", url, withhold_token=True)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"{url}: {exc}") from exc
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"{url}: not a JSON object")
        return document

    async def _key_set(self, refetch: bool = False) -> KeySet:
        if self._keys is None or refetch:
            self._keys = KeySet.import_key_set(await self._get((await self.metadata())["jwks_uri"]))  # type: ignore[arg-type]
        return self._keys

    async def authorization_url(self, pending: PendingSignIn, redirect_uri: str) -> str:
        url, _ = self.client.create_authorization_url(
            (await self.metadata())["authorization_endpoint"], state=pending.state, code_verifier=pending.verifier,
            nonce=pending.nonce, redirect_uri=redirect_uri, scope=self.scope)
        return str(url)

    async def _token_request(self, grant_type: str, **params: str) -> dict[str, Any]:
        metadata = await self.metadata()
        try:
            answer = await self.client.fetch_token(metadata["token_endpoint"], grant_type=grant_type, **params)
        except AuthlibBaseError as exc:  # the provider said no: an OAuth error answer
            raise SignInRefused("统一身份认证拒绝了这次登录，请重新登录。", f"{grant_type}: {exc}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"{grant_type}: {exc}") from exc
        return dict(answer)

    async def finish(self, code: str, pending: PendingSignIn, redirect_uri: str, names: ClaimNames,
                     county: County) -> SignedIn:
        """Redeem the code (with PKCE's verifier), check the ID token, and name the person."""
        answer = await self._token_request("authorization_code", code=code, code_verifier=pending.verifier,
                                           redirect_uri=redirect_uri)
        id_token, access_token = answer.get("id_token"), answer.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str) or "refresh_token" not in answer:
            raise SignInRefused("统一身份认证的应答不完整，请重新登录。", "no id_token, access_token or refresh_token")
        claims = await self.checked_id_token(id_token, pending.nonce, access_token)
        person = person_from_claims(claims, names, county)
        return SignedIn(person, ProviderGrant(id_token, str(answer["refresh_token"])), access_token,
                        time.time() + float(answer.get("expires_in", 60)))

    async def checked_id_token(self, id_token: str, nonce: str, access_token: str) -> dict[str, Any]:
        """The ID token's claims once its signature (a key of the provider's JWKS, one of the
        algorithms it announces) and its iss, aud, azp, nonce, exp, iat and at_hash hold."""
        algorithms = (await self.metadata()).get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in algorithms if a != "none"]
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=algorithms)
            except JoseError:  # perhaps a key the provider has rotated in since: fetch the set again
                token = jwt.decode(id_token, await self._key_set(refetch=True), algorithms=algorithms)
            # Authlib checks `aud` only when told which values to expect.
            expected = {"iss": {"essential": True, "values": [self.issuer]},
                        "aud": {"essential": True, "values": [self.client_id]}}
            claims = CodeIDToken(token.claims, token.header, expected,
                                 {"nonce": nonce, "client_id": self.client_id, "access_token": access_token})
            claims.validate(leeway=60)
        except (JoseError, AuthlibBaseError, ValueError) as exc:
            raise SignInRefused("统一身份认证的凭据未通过校验，请重新登录。", f"id token: {exc}") from exc
        return dict(claims)

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        return await self._token_request("refresh_token", refresh_token=refresh_token)

    async def exchange(self, access_token: str, service: str) -> tuple[str, float]:
        """A token of the service's own audience for the person of `access_token` (RFC 8693)."""
        answer = await self._token_request(
            TOKEN_EXCHANGE, subject_token=access_token, subject_token_type=ACCESS_TOKEN,
            requested_token_type=ACCESS_TOKEN, audience=self.audience_template.format(service=service),
            **({"scope": self.exchange_scope} if self.exchange_scope else {}))
        return str(answer["access_token"]), time.time() + float(answer.get("expires_in", 60))

    async def logout_url(self, grant: ProviderGrant, post_logout_redirect_uri: str) -> str:
        """RP-initiated logout: the provider ends its session, then sends the person back here."""
        endpoint = (await self.metadata()).get("end_session_endpoint")
        if not endpoint:
            return post_logout_redirect_uri
        return str(httpx.URL(endpoint, params={"id_token_hint": grant.id_token, "client_id": self.client_id,
                                               "post_logout_redirect_uri": post_logout_redirect_uri}))


# The request being answered, for the token source: the pages hand `Services.call` a person, and
# the person's tokens are the session's (set by `RequestContext`).
_REQUEST: ContextVar[Request | None] = ContextVar("console_request", default=None)


class RequestContext:
    """Makes the request being answered known to `ProviderTokens`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _REQUEST.set(Request(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _REQUEST.reset(token)


class SessionEnded(Exception):
    """The provider no longer knows the person's session: they sign in again."""


class ProviderTokens:
    """The token each service is called with, for the signed-in person: exchanged at the provider
    for the service's audience and kept until shortly before it expires. The access token
    exchanged is kept too; when it expired, the session's refresh token brings a new one (and a
    new refresh token, written back into the session)."""

    def __init__(self, provider: Provider, remember: int = 10_000) -> None:
        self.provider = provider
        self._access: dict[str, tuple[str, float]] = {}  # by the session's ID token
        self._exchanged: dict[tuple[str, str], tuple[str, float]] = {}
        self._refreshing: dict[str, asyncio.Task[tuple[str, float]]] = {}
        self._remember = remember

    def signed_in(self, signed: SignedIn) -> None:
        """The access token the sign-in brought: the first pages exchange it, no refresh needed."""
        self._keep(self._access, signed.grant.id_token, (signed.access_token, signed.access_expires))

    def forget(self, grant: ProviderGrant) -> None:
        self._access.pop(grant.id_token, None)
        for key in [k for k in self._exchanged if k[0] == grant.id_token]:
            del self._exchanged[key]

    async def token_for(self, person: Person, service: str) -> str:
        """The token; a person whose session the provider ended signs in again (SignInNeeded); a
        provider away or refusing the exchange is the page's `ServiceError`, as a service away is."""
        request = _REQUEST.get()
        if request is None:
            raise SignInNeeded("/")
        try:
            return await self._token_for(request, person, service)
        except SessionEnded:
            start_session(request, Session(), ending=PROVIDER_END)
            raise SignInNeeded(request.url.path) from None
        except ProviderUnavailable as exc:
            raise ServiceError(0, "暂时无法连接统一身份认证，请稍后再试。") from exc

    async def _token_for(self, request: Request, person: Person, service: str) -> str:
        session: Session | None = getattr(request.state, "session", None)
        if session is None or session.provider is None or session.person != person:
            raise SessionEnded("no session signed in at the provider")  # a local account's, say
        grant = session.provider
        kept = self._exchanged.get((grant.id_token, service))
        if kept is not None and kept[1] > time.time() + EARLY_SECONDS:
            return kept[0]
        try:
            exchanged = await self.provider.exchange(await self._access_token(grant, request), service)
        except SignInRefused:
            # Perhaps an access token of a session the provider has ended since: a refresh tells
            # (SessionEnded when it is refused too); refused again after one, the provider will not
            # issue this service's tokens (its configuration), which signing in again would not mend.
            self._access.pop(grant.id_token, None)
            try:
                exchanged = await self.provider.exchange(await self._access_token(grant, request), service)
            except SignInRefused as exc:
                raise ServiceError(403, f"统一身份认证未发放访问{SERVICE_NAMES[service]}服务的凭据，"
                                        "请联系县里的系统管理员。") from exc
        self._keep(self._exchanged, (grant.id_token, service), exchanged)
        return exchanged[0]

    async def _access_token(self, grant: ProviderGrant, request: Request) -> str:
        kept = self._access.get(grant.id_token)
        if kept is not None and kept[1] > time.time() + EARLY_SECONDS:
            return kept[0]
        # One refresh for all the calls of a page that find the access token expired at once.
        task = self._refreshing.get(grant.id_token)
        if task is None:
            task = asyncio.ensure_future(self._refresh(grant, request))
            self._refreshing[grant.id_token] = task
            task.add_done_callback(lambda _: self._refreshing.pop(grant.id_token, None))
        return (await asyncio.shield(task))[0]

    async def _refresh(self, grant: ProviderGrant, request: Request) -> tuple[str, float]:
        try:
            answer = await self.provider.refresh(grant.refresh_token)
        except SignInRefused as exc:
            self.forget(grant)
            raise SessionEnded(str(exc)) from exc
        access = (str(answer["access_token"]), time.time() + float(answer.get("expires_in", 60)))
        self._keep(self._access, grant.id_token, access)
        renewed = answer.get("refresh_token")
        if isinstance(renewed, str) and renewed != grant.refresh_token:
            # The provider's session idles out by the refresh token's own expiry: the newest one
            # goes back into the session, so working keeps a person signed in there.
            session: Session = request.state.session
            request.state.session = replace(session, provider=replace(grant, refresh_token=renewed))
            request.state.session_updated = True  # the same session, its id kept (app.SessionMiddleware)
        return access

    def _keep(self, cache: dict[Any, tuple[str, float]], key: Any, value: tuple[str, float]) -> None:
        if len(cache) > self._remember:
            cache.clear()
        cache[key] = value


@dataclass
class ProviderSignIn:
    """What the console's sign-in pages use when a county signs its staff in at a provider."""

    provider: Provider
    tokens: ProviderTokens
    pending: PendingCodec
    claims: ClaimNames
    public_url: str | None  # the console's address as people reach it; unset: the request's own

    @classmethod
    def of(cls, settings: ConsoleSettings, secret: bytes) -> ProviderSignIn:
        provider = Provider(settings)
        return cls(provider, ProviderTokens(provider), PendingCodec(secret),
                   ClaimNames(settings.console_oidc_staff_id_claim, settings.console_oidc_town_claim,
                              settings.console_oidc_roles_claim),
                   settings.console_public_url.rstrip("/") if settings.console_public_url else None)

    def address(self, request: Request, path: str) -> str:
        """An address of this console the provider sends people back to (it must be registered there)."""
        return f"{self.public_url or str(request.base_url).rstrip('/')}{path}"


async def signed_out_at(request: Request, ended: Session) -> str:
    """Where a person goes once signed out here: a provider's sign-in ends at the provider too
    (RP-initiated logout, back to the sign-in page); a local account's, to the sign-in page."""
    oidc = console_of(request).oidc
    if oidc is None or ended.provider is None:
        return "/signin"
    oidc.tokens.forget(ended.provider)
    try:
        return await oidc.provider.logout_url(ended.provider, oidc.address(request, "/signin"))
    except ProviderUnavailable:
        return "/signin"  # signed out here; the provider's session ends by its own idle timeout
