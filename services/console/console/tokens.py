"""The tokens the console presents to the services, one per service (each has its own audience,
so a token seen in one service's traffic is refused by the others), for the signed-in person.

Local runs and tests give the console a signing key whose public half the services' JWKS holds
(devstack's stand-in issuer), or the HS256 secret; tokens are kept until shortly before they
expire. In production a county puts the console behind its OIDC provider instead."""

from __future__ import annotations

import time
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from townflow_shared.auth import issue_token

from .accounts import Person


@dataclass(eq=False)
class TokenSigner:
    """Signs the console's calls to a service as the signed-in person; a token is reused until a
    minute before it expires."""

    key: Any = field(repr=False)
    algorithm: str
    _: KW_ONLY
    kid: str | None
    issuer: str | None
    audience_template: str
    ttl_seconds: int
    _cache: dict[tuple[str, str | None, str], tuple[str, float]] = field(default_factory=dict, init=False, repr=False)

    async def token_for(self, person: Person, service: str) -> str:
        key = (person.sub, person.town, service)
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.time() + 60:
            return cached[0]
        claims = {"town": person.town} if person.town else {}
        token = issue_token(self.key, person.sub, person.roles, self.ttl_seconds,
                            audience=self.audience_template.format(service=service), issuer=self.issuer,
                            algorithm=self.algorithm, key_id=self.kid, **claims)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (token, time.time() + self.ttl_seconds)
        return token
