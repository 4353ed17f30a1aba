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


async def test_the_staff_id_comes_from_the_configured_claim() -> None:
    """A provider whose `sub` is its own user id (Keycloak's UUID) names the staff member in a claim
    of its own: the principal is that staff id, never the UUID."""
    verifier = _verifier(secret=SECRET, staff_id_claim="staff_id")
    token = issue_token(SECRET, "f4346a65-5c3b-47b3-a08a-4290e081e662", ["clerk"], staff_id="s010", town="321003104")
    principal = await verifier.verify(token)
    assert (principal.sub, principal.town) == ("s010", "321003104")


@pytest.mark.parametrize("staff_id", [None, "", 7])
async def test_a_token_without_a_staff_id_in_the_configured_claim_is_refused(staff_id: object) -> None:
    claims = {} if staff_id is None else {"staff_id": staff_id}
    token = issue_token(SECRET, "f4346a65-5c3b-47b3-a08a-4290e081e662", ["clerk"], **claims)
    with pytest.raises(jwt.InvalidTokenError):
        await _verifier(secret=SECRET, staff_id_claim="staff_id").verify(token)
