"""Token verification from the JWKS of the local stand-in issuer, fetched over loopback HTTP as
a service fetches its issuer's: RS256/ES256 with issuer and audience, key rotation, the classic
attacks. In this tier (no Kafka, no services) because it opens a socket; HS256: shared/tests/test_auth.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from devstack.issuer import LocalIssuer, audience_of
from townflow_shared.auth import TokenRules, TokenVerifier

AUDIENCE = audience_of("intake")


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer().start()
    yield local
    local.stop()


def _verifier(issuer: LocalIssuer, **rules: Any) -> TokenVerifier:
    return TokenVerifier(TokenRules(jwks_url=issuer.jwks_url, issuer=issuer.url, audience=AUDIENCE, **rules))


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
