"""The session cookie and CSRF tokens.

The cookie holds the session itself, signed (HMAC-SHA256 under the console's session secret), so
any replica reads it and nothing is stored server-side: the person signed in (or nobody, for a
citizen), a CSRF token and an expiry. It is HttpOnly (no script reads it) and SameSite=Lax (no
other site's form posts with it). Every form carries the session's CSRF token (synchronizer
token), checked on every POST; signing in and out starts a new session with a new token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field, replace

from .accounts import Person

COOKIE = "tf_session"


@dataclass(frozen=True)
class ProviderGrant:
    """Of a sign-in at the county's OIDC provider (oidc.py): the ID token, which RP-initiated logout
    names, and the refresh token, which brings new access tokens while the person works."""

    id_token: str
    refresh_token: str


@dataclass(frozen=True)
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    person: Person | None = None
    expires: float = 0.0
    provider: ProviderGrant | None = None  # signed in at the county's OIDC provider; None: a local account


class SessionCodec:
    def __init__(self, secret: bytes, lifetime_seconds: float) -> None:
        self._secret = secret
        self.lifetime = lifetime_seconds

    def new(self, person: Person | None = None) -> Session:
        return Session(person=person, expires=time.time() + self.lifetime)

    def encode(self, session: Session) -> str:
        data = asdict(session)
        if session.person is not None:
            data["person"]["roles"] = sorted(session.person.roles)
        body = base64.urlsafe_b64encode(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
        return f"{body.decode()}.{self._sign(body)}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session if the cookie is ours, unaltered and not expired; else None."""
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body))
            person, provider = data.get("person"), data.get("provider")
            session = Session(csrf=str(data["csrf"]), expires=float(data["expires"]),
                              person=replace(Person(**person), roles=frozenset(person["roles"])) if person else None,
                              provider=ProviderGrant(**provider) if provider else None)
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def _sign(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._secret, body, hashlib.sha256).digest()).rstrip(b"=").decode()


def csrf_matches(session: Session, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(session.csrf.encode(), given.encode())
