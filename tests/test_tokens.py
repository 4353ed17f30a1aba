"""Tokens on the real stack (SPEC §6.1): every service verifies RS256/ES256 tokens from the local
stand-in issuer's JWKS, with its own audience, follows a key rotation, and answers 401 to every
forged or misdirected token."""

from __future__ import annotations

import pytest

from devstack.issuer import audience_of
from devstack.stack import Stack
from tests.conftest import http_client

PROTECTED = {"intake": "/v1/catalog", "dispatch": "/v1/tasks", "enforcement": "/v1/inspections",
             "appraisal": "/v1/scores"}


async def _status(stack: Stack, service: str, token: str) -> int:
    async with http_client(base_url=stack.services[service].url, timeout=20) as client:
        response = await client.get(PROTECTED[service], headers={"Authorization": f"Bearer {token}"})
    return response.status_code


@pytest.mark.parametrize("service", list(PROTECTED))
async def test_every_forged_or_misdirected_token_is_a_401(stack: Stack, service: str) -> None:
    answers = {what: await _status(stack, service, token)
               for what, token in stack.issuer.forgeries(audience_of(service)).items()}
    others = [s for s in PROTECTED if s != service]
    answers["a real token for another service"] = await _status(
        stack, service, stack.issuer.token("s000", ["admin"], audience_of(others[0])))
    assert answers == dict.fromkeys(answers, 401)


@pytest.mark.parametrize("service", list(PROTECTED))
async def test_rs256_and_es256_tokens_for_the_service_are_accepted(stack: Stack, service: str) -> None:
    for algorithm in ("RS256", "ES256"):
        token = stack.issuer.token("s000", ["admin"], audience_of(service), algorithm=algorithm)
        assert await _status(stack, service, token) == 200, algorithm


async def test_a_key_the_issuer_rotates_to_is_accepted_without_a_restart(stack: Stack) -> None:
    before = stack.issuer.signing_kid
    stack.issuer.rotate()
    try:
        for service in PROTECTED:
            assert await _status(stack, service, stack.token(service, "s000", ["admin"])) == 200, service
    finally:
        stack.issuer.signing_kid = before  # later tests' tokens as before (both keys stay published)
