"""Token verification: HS256 with a secret, RS256/ES256 from the JWKS of the local stand-in
issuer (served on loopback), issuer and audience, key rotation, and the classic attacks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from devstack.issuer import LocalIssuer, audience_of
from townflow_shared.auth import TokenRules, TokenVerifier, issue_token

SECRET = "k" * 32
AUDIENCE = audience_of("intake")


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer().start()
    yield local
    local.stop()


def _verifier(issuer: LocalIssuer | None = None, secret: str | None = None, **rules: Any) -> TokenVerifier:
    if issuer is not None:
        rules = {"jwks_url": issuer.jwks_url, "issuer": issuer.url, "audience": AUDIENCE, **rules}
    return TokenVerifier(TokenRules(secret=secret, **rules))


async def test_a_token_round_trips_with_its_roles() -> None:
    principal = await _verifier(secret=SECRET).verify(issue_token(SECRET, "s010", ["clerk", "staff"]))
    assert principal.sub == "s010" and principal.roles == {"clerk", "staff"}
    assert principal.has_any(["clerk"]) and not principal.has_any(["officer"])


async def test_admin_holds_every_role() -> None:
    assert (await _verifier(secret=SECRET).verify(issue_token(SECRET, "s000", ["admin"]))).has_any(["officer"])


async def test_rs256_and_es256_from_the_jwks_with_issuer_and_audience(issuer: LocalIssuer) -> None:
    verifier = _verifier(issuer)
    for algorithm in ("RS256", "ES256"):
        assert (await verifier.verify(issuer.token("s010", ["clerk"], AUDIENCE, algorithm=algorithm))).sub == "s010"


async def test_a_key_the_issuer_rotates_to_is_fetched_when_a_token_names_it(issuer: LocalIssuer) -> None:
    verifier = _verifier(issuer, jwks_refetch_seconds=0)
    await verifier.verify(issuer.token("s010", ["clerk"], AUDIENCE))  # the key set is fetched and cached
    issuer.rotate()
    assert (await verifier.verify(issuer.token("s011", ["clerk"], AUDIENCE))).sub == "s011"


async def test_every_classic_bad_token_is_refused(issuer: LocalIssuer) -> None:
    verifier = _verifier(issuer)
    for what, token in issuer.forgeries(AUDIENCE).items():
        with pytest.raises(jwt.PyJWTError):
            await verifier.verify(token)
            pytest.fail(f"accepted: {what}")


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
