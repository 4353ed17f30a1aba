"""Bearer JWT auth with the roles of SPEC §6: 401 without a valid token, 403 with the wrong role.

Two kinds of keys (SPEC §6.1): an OIDC issuer's RS256/ES256 keys, fetched from its JWKS URL and
fetched again when a token names a key id not seen yet (the issuer rotated its keys); and an HS256
secret, for local runs. The token's own `alg` header picks which, and only from what is
configured, so `alg: none` and algorithm confusion (an HS256 token "signed" with the issuer's
public key) are refused. `iss` and `aud` are required and checked when configured; each service
has its own audience, so a token for one service is refused by the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from .audit_trail import note_actor
from .problems import AUTH_NOT_CONFIGURED, ROLE_MISSING, TOKEN_INVALID, TOKEN_MISSING, TOKEN_WITHOUT_TOWN

ROLES = frozenset({
    "clerk", "proxy_agent", "village_station", "command_centre", "staff", "module_leader",
    "officer", "appraisal_admin", "admin",
    # County roles (SPEC §8): a county department reads every town; the county's admin reads and
    # acts in every town.
    "county_reader", "county_admin",
    # Reads the audit trail and nothing else (等保 2.0's 审计管理员, kept apart from the roles
    # that act or read matters): with a town claim its town's records, without one the county's.
    "auditor",
})
ASYMMETRIC = ("RS256", "ES256")
_bearer = HTTPBearer(auto_error=False)


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)  # shared between calls by the token cache
    sub: str
    roles: frozenset[str]
    town: str | None = None  # the `town` claim: the town a staff member works in

    def has_any(self, roles: Iterable[str], reading: bool = False) -> bool:
        """Holds one of `roles`: admin and county_admin hold every role, county_reader every
        role for reading."""
        if self.roles & {"admin", "county_admin"}:
            return True
        return (reading and "county_reader" in self.roles) or bool(self.roles & set(roles))

    @property
    def county_wide(self) -> bool:
        """Reads every town: the county roles, and an auditor with no town (the county's)."""
        return bool(self.roles & {"county_admin", "county_reader"}) or (self.town is None and "auditor" in self.roles)

    def may_read(self, town: str) -> bool:
        """A town's records: its own staff, and the county roles."""
        return self.county_wide or self.town == town

    def may_act(self, town: str) -> bool:
        """Acting on a town's records: its own staff, and the county's admin."""
        return "county_admin" in self.roles or self.town == town


def issue_token(key: Any, sub: str, roles: Iterable[str], ttl_seconds: int = 3600, *,
                audience: str | list[str] | None = None, issuer: str | None = None, algorithm: str = "HS256",
                key_id: str | None = None, **claims: Any) -> str:
    """A token as an issuer would sign it (HS256 with a secret; RS256/ES256 with a private key)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "roles": sorted(roles), "iat": now, "exp": now + ttl_seconds, **claims}
    if audience:
        payload["aud"] = audience
    if issuer:
        payload["iss"] = issuer
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": key_id} if key_id else None)


@dataclass(frozen=True)
class TokenRules:
    """What a token must satisfy; built once from the settings."""

    secret: str | None = None       # HS256
    jwks_url: str | None = None     # RS256 / ES256 keys of an OIDC issuer
    issuer: str | None = None       # required `iss`, when set
    audience: str | None = None     # required `aud`, when set (the service's own)
    # The claim naming the staff member (their id in the town's staff file): `sub` when the provider's
    # subject is the staff id; a provider whose `sub` is its own user id (Keycloak's UUID) maps the
    # staff id into a claim of its own, e.g. `staff_id` (docs/security-oidc.md).
    staff_id_claim: str = "sub"
    jwks_cache_seconds: int = 300
    # A token naming an unknown key id fetches the key set again, at most this often: a rotated
    # key is found, and a stream of made-up key ids cannot hammer the issuer.
    jwks_refetch_seconds: float = 30

    @property
    def configured(self) -> bool:
        return self.secret is not None or self.jwks_url is not None


class TokenVerifier:
    """Verifies bearer tokens. A client sends the same token with every call until it expires:
    each is verified once (a failure is not remembered), then only its expiry is checked again."""

    def __init__(self, rules: TokenRules, remember: int = 4096) -> None:
        self.rules = rules
        self._jwks = jwt.PyJWKClient(rules.jwks_url, cache_keys=True, lifespan=rules.jwks_cache_seconds,
                                     cooldown_duration=rules.jwks_refetch_seconds, timeout=5,
                                     ) if rules.jwks_url else None
        self._remembered: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._remember = remember

    async def verify(self, token: str) -> Principal:
        """The token's principal; raises `jwt.PyJWTError` for any token that is not valid now."""
        known = self._remembered.get(token)
        if known is None:
            known = await self._verify(token)
            self._remembered[token] = known
            if len(self._remembered) > self._remember:
                self._remembered.popitem(last=False)
        principal, expires = known
        if expires <= time.time():
            raise jwt.ExpiredSignatureError("Signature has expired")
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        algorithm = jwt.get_unverified_header(token).get("alg")
        if algorithm == "HS256" and self.rules.secret is not None:
            key: Any = self.rules.secret
        elif algorithm in ASYMMETRIC and self._jwks is not None:
            # The key set is fetched over HTTP when a key id is new: off the event loop.
            key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
        else:
            raise jwt.InvalidAlgorithmError(f"tokens signed with {algorithm!r} are not accepted here")
        required = ["sub", self.rules.staff_id_claim, "exp", *(["iss"] if self.rules.issuer else []),
                    *(["aud"] if self.rules.audience else [])]
        claims = jwt.decode(token, key, algorithms=[algorithm], audience=self.rules.audience,
                            issuer=self.rules.issuer,
                            options={"require": required, "verify_aud": self.rules.audience is not None})
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise jwt.InvalidTokenError("roles must be a list of names")
        town = claims.get("town")
        if town is not None and not isinstance(town, str):
            raise jwt.InvalidTokenError("town must be a town code")
        staff_id = claims[self.rules.staff_id_claim]
        if not isinstance(staff_id, str) or not staff_id:
            raise jwt.InvalidTokenError(f"{self.rules.staff_id_claim} must be a staff id")
        return Principal(sub=staff_id, roles=frozenset(roles), town=town), float(claims["exp"])


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


# The dependencies are `async def`: FastAPI runs a plain `def` in a worker thread, a thread hop
# per dependency per request.
async def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller if a token came; a bad token is still a 401, never silently anonymous."""
    if credentials is None:
        return None
    verifier: TokenVerifier = request.app.state.tokens
    if not verifier.rules.configured:
        raise AUTH_NOT_CONFIGURED(headers=_CHALLENGE)
    try:
        principal = await verifier.verify(credentials.credentials)
    except jwt.PyJWTError as exc:
        raise TOKEN_INVALID(headers=_CHALLENGE, why=str(exc)[:200]) from exc
    if principal.town is None and not principal.county_wide:
        only = request.app.state.county.only_town
        if only is None:  # a county: a town's staff must say which town
            raise TOKEN_WITHOUT_TOWN(headers=_CHALLENGE)
        principal = principal.model_copy(update={"town": only.code})  # a one-town deployment
    note_actor(principal)  # the audit record of this request names its caller
    return principal


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller must hold one of `roles` (admin holds all)."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    async def dependency(request: Request,
                         principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
        if principal is None:
            raise TOKEN_MISSING(headers=_CHALLENGE)
        if roles and not principal.has_any(roles, reading=request.method in ("GET", "HEAD")):
            raise ROLE_MISSING(roles=", ".join(roles))
        return principal

    return dependency
