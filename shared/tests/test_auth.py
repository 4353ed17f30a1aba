from __future__ import annotations

import jwt
import pytest

from townflow_shared.auth import decode_token, issue_token


def test_a_token_round_trips_with_its_roles() -> None:
    principal = decode_token("k" * 32, issue_token("k" * 32, "s010", ["clerk", "staff"]))
    assert principal.sub == "s010"
    assert principal.roles == {"clerk", "staff"}
    assert principal.has_any(["clerk"]) and not principal.has_any(["officer"])


def test_admin_holds_every_role() -> None:
    assert decode_token("k" * 32, issue_token("k" * 32, "s000", ["admin"])).has_any(["officer"])


@pytest.mark.parametrize("token", [
    issue_token("other-secret" * 3, "s010", ["clerk"]),
    issue_token("k" * 32, "s010", ["clerk"], ttl_seconds=-10),
    "garbage",
])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(jwt.PyJWTError):
        decode_token("k" * 32, token)


def test_a_token_verified_before_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    token = issue_token("k" * 32, "s010", ["clerk"], ttl_seconds=60)
    assert decode_token("k" * 32, token).sub == "s010"  # verified and remembered
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_token("k" * 32, token)


def test_a_remembered_token_is_not_accepted_under_another_secret() -> None:
    token = issue_token("k" * 32, "s010", ["clerk"])
    decode_token("k" * 32, token)
    with pytest.raises(jwt.PyJWTError):
        decode_token("x" * 32, token)
