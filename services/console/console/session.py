"""Sessions and CSRF tokens (issue #28).

A signed-in person's session lives in the console's database, so every replica knows at once
that it ended: 退出 on one replica, and the cookie copied before it opens nothing on another. The
cookie carries an opaque random id (256 bits); the database keeps only its SHA-256, so a read of
the table signs no one in. A session ends when its person signs out, after
`console_session_idle_minutes` without a request of theirs, and `console_session_hours` after
sign-in whatever happens; every time is the database's (one clock for all replicas). Signing in
always begins a new session with a new id and CSRF token (no fixation).

Nobody signed in (a citizen, the sign-in form) needs no row: the cookie holds the session's CSRF
token itself (`a.<token>`), compared with the form's (double submit; HttpOnly, SameSite=Lax, so
no other site reads or posts it). Every form carries the session's CSRF token, checked on every
POST."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from .accounts import Person

if TYPE_CHECKING:
    from .session_audit import Where

COOKIE = "tf_session"
ANONYMOUS = "a."  # the cookie of a session without a person: this, then its CSRF token
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ProviderGrant:
    """Of a sign-in at the county's OIDC provider (oidc.py): the ID token, which RP-initiated logout
    names, and the refresh token, which brings new access tokens while the person works."""

    id_token: str
    refresh_token: str


@dataclass(frozen=True)
class Session:
    """What a request knows of its session. Kept as a plain dataclass: every field is stored with
    a signed-in session (`session_data`), so a field added here (a provider's ID token) persists."""

    csrf: str = field(default_factory=new_token)
    person: Person | None = None
    provider: ProviderGrant | None = None  # signed in at the county's OIDC provider; None: a local account


def session_data(session: Session) -> dict[str, Any]:
    """The session as the database keeps it (JSON)."""
    data = asdict(session)
    if session.person is not None:
        data["person"]["roles"] = sorted(session.person.roles)
    return data


def session_from(data: dict[str, Any]) -> Session:
    person, provider = data.get("person"), data.get("provider")
    return Session(**{**data, "person": replace(Person(**person), roles=frozenset(person["roles"])) if person else None,
                      "provider": ProviderGrant(**provider) if provider else None})


def id_hash(session_id: str) -> bytes:
    """What the database keeps of a session id: the id is 256 random bits, so a plain SHA-256 of it
    cannot be turned back (no salt or slow hash needed, unlike a password)."""
    return hashlib.sha256(session_id.encode()).digest()


def anonymous_cookie(session: Session) -> str:
    return ANONYMOUS + session.csrf


def anonymous_from(cookie: str) -> Session | None:
    """The anonymous session a cookie names, when it is one of ours in form."""
    token = cookie.removeprefix(ANONYMOUS)
    return Session(csrf=token) if cookie.startswith(ANONYMOUS) and _TOKEN.fullmatch(token) else None


def looks_like_id(cookie: str) -> bool:
    return _TOKEN.fullmatch(cookie) is not None


class SessionStore(Protocol):
    """Where signed-in sessions live: the console's database (store.PgSessions), a fake in unit tests."""

    async def begin(self, session: Session) -> str:
        """Store a new session; its id (for the cookie only: never stored)."""

    async def resume(self, session_id: str, *, activity: bool) -> Session | None:
        """The session, unless it ended or ran out (idle or lifetime); `activity`: the request is
        the person's own, so the idle time starts again (a page's background refresh is not)."""

    async def end(self, session_id: str, action: str, where: Where) -> None:
        """Sign-out (`action` says which kind, for the audit trail): the session ends for every
        replica at once."""

    async def end_expired(self) -> int:
        """Record the end of every session past its idle time or lifetime (`resume` refuses them
        already); how many."""

    async def update(self, session_id: str, session: Session) -> None:
        """The same session with new data (the provider's renewed refresh token): its id stays, so
        the person's other requests in flight keep theirs."""


def csrf_matches(session: Session, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(session.csrf.encode(), given.encode())
