"""Token verification: HS256 with a secret, RS256/ES256 from the JWKS of the local stand-in
issuer (served on loopback), issuer and audience, key rotation, and the classic attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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
        assert (await verifier.verify(issuer.token("s010", ["clerk"], "intake", algorithm=algorithm))).sub == "s010"


async def test_a_key_the_issuer_rotates_to_is_fetched_when_a_token_names_it(issuer: LocalIssuer) -> None:
    verifier = _verifier(issuer, jwks_refetch_seconds=0)
    await verifier.verify(issuer.token("s010", ["clerk"], "intake"))  # the key set is fetched and cached
    issuer.rotate()
    assert (await verifier.verify(issuer.token("s011", ["clerk"], "intake"))).sub == "s011"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hand_made(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A token built by hand, as an attacker would: PyJWT itself refuses to make these."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode())) if sign else ''}"


def bad_tokens(issuer: LocalIssuer) -> dict[str, str]:
    """Every token a service must refuse with 401 (also used by the end-to-end test)."""
    now = int(time.time())
    kid = issuer.signing_kid
    key = issuer.keys[kid]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    admin = {"sub": "s000", "roles": ["admin"], "exp": now + 60, "iss": issuer.url, "aud": AUDIENCE}
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "alg none": _hand_made({"alg": "none", "typ": "JWT"}, admin),
        # HS256 "signed" with the issuer's public key (which anyone can fetch) as the secret
        "algorithm confusion": _hand_made({"alg": "HS256", "typ": "JWT", "kid": kid}, admin,
                                          lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()),
        "a key not in the JWKS": jwt.encode(admin, stranger, algorithm="RS256", headers={"kid": kid}),
        "an unknown key id": jwt.encode(admin, stranger, algorithm="RS256", headers={"kid": "nobody"}),
        "another service's audience": issuer.token("s000", ["admin"], "dispatch"),
        "no audience": jwt.encode(admin | {"aud": None}, key, algorithm="RS256", headers={"kid": kid}),
        "another issuer": jwt.encode(admin | {"iss": "https://elsewhere.example"}, key, algorithm="RS256",
                                     headers={"kid": kid}),
        "no expiry": jwt.encode({k: v for k, v in admin.items() if k != "exp"}, key, algorithm="RS256",
                                headers={"kid": kid}),
        "expired": jwt.encode(admin | {"exp": now - 10}, key, algorithm="RS256", headers={"kid": kid}),
        "roles not a list": jwt.encode(admin | {"roles": "admin"}, key, algorithm="RS256", headers={"kid": kid}),
        "HS256 where no secret is configured": issue_token(SECRET, "s000", ["admin"], audience=AUDIENCE,
                                                           issuer=issuer.url),
        "garbage": "garbage",
    }


async def test_every_classic_bad_token_is_refused(issuer: LocalIssuer) -> None:
    verifier = _verifier(issuer)
    for what, token in bad_tokens(issuer).items():
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
