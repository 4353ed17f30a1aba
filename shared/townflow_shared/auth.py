"""Bearer JWT auth with the roles of SPEC §6: 401 without a valid token, 403 with the wrong role.

HS256 with TOWNFLOW_JWT_SECRET here; production points the same check at an OIDC issuer's keys.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

ROLES = frozenset({
    "clerk", "proxy_agent", "village_station", "command_centre", "staff", "module_leader",
    "officer", "appraisal_admin", "admin",
})
_bearer = HTTPBearer(auto_error=False)


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)  # shared between calls by the token cache
    sub: str
    roles: frozenset[str]

    def has_any(self, roles: Iterable[str]) -> bool:
        return "admin" in self.roles or bool(self.roles & set(roles))


def issue_token(secret: str, sub: str, roles: Iterable[str], ttl_seconds: int = 3600,
                audience: str | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "roles": sorted(roles), "iat": now, "exp": now + ttl_seconds}
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_token(secret: str, token: str, audience: str | None = None) -> Principal:
    principal, expires = _verified(secret, token, audience)
    if expires <= time.time():
        raise jwt.ExpiredSignatureError("Signature has expired")
    return principal


# A client sends the same token with every call until it expires: verify it once (a failure is
# not cached), then only its expiry is checked again.
@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str, audience: str | None) -> tuple[Principal, float]:
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience=audience,
                        options={"require": ["sub", "exp"], "verify_aud": audience is not None})
    roles = claims.get("roles", [])
    if not isinstance(roles, list):
        raise jwt.InvalidTokenError("roles must be a list")
    return Principal(sub=str(claims["sub"]), roles=frozenset(str(r) for r in roles)), float(claims["exp"])


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


# The dependencies are `async def` although they never wait: FastAPI runs a plain `def` in a
# worker thread, a thread hop per dependency per request.
async def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller if a token came; a bad token is still a 401, never silently anonymous."""
    if credentials is None:
        return None
    settings = request.app.state.runtime.settings
    if settings.jwt_secret is None:
        raise _unauthorized("token auth is not configured (TOWNFLOW_JWT_SECRET)")
    try:
        return decode_token(settings.jwt_secret.get_secret_value(), credentials.credentials,
                            settings.jwt_audience)
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller must hold one of `roles` (admin holds all)."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    async def dependency(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
        if principal is None:
            raise _unauthorized("a bearer token is required")
        if roles and not principal.has_any(roles):
            raise HTTPException(403, detail=f"needs one of the roles: {', '.join(roles)}")
        return principal

    return dependency
