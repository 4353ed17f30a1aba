"""Token verification with a secret (HS256): roles, expiry, another secret. (RS256/ES256 from an
issuer's JWKS fetched over loopback: tests/database/test_jwks.py, outside the unit tier.)"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from townflow_shared.auth import TokenRules, TokenVerifier, issue_token

SECRET = "k" * 32


def _verifier(secret: str, **rules: Any) -> TokenVerifier:
    return TokenVerifier(TokenRules(secret=secret, **rules))


async def test_a_token_round_trips_with_its_roles() -> None:
    principal = await _verifier(secret=SECRET).verify(issue_token(SECRET, "s010", ["clerk", "staff"]))
    assert principal.sub == "s010" and principal.roles == {"clerk", "staff"}
    assert principal.has_any(["clerk"]) and not principal.has_any(["officer"])


async def test_admin_holds_every_role() -> None:
    assert (await _verifier(secret=SECRET).verify(issue_token(SECRET, "s000", ["admin"]))).has_any(["officer"])


async def test_a_token_verified_before_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = _verifier(secret=SECRET)
    token = issue_token(SECRET, "s010", ["clerk"], ttl_seconds=60)
    assert (await verifier.verify(token)).sub == "s010"  # verified and remembered
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(jwt.ExpiredSignatureError):
        await verifier.verify(token)


async def test_a_token_under_another_secret_is_refused() -> None:
    with pytest.raises(jwt.PyJWTError):
        await _verifier(secret="x" * 32).verify(issue_token(SECRET, "s010", ["clerk"]))
