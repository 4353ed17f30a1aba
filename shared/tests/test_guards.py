"""The edge's guard on hostile input, on the bytes and as ASGI (no server: the stack tests in
tests/test_hostile_input.py send the same inputs to running services)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from townflow_shared.guards import EdgeLimits, InputGuard, json_refusal

LIMITS = EdgeLimits(max_body_bytes=1000, max_json_depth=4, max_json_members=10, body_timeout_seconds=0.2,
                    max_url_length=100)


async def code_of(body: bytes, limits: EdgeLimits = LIMITS) -> tuple[str, str | None] | None:
    refusal = await json_refusal(body, limits)
    return None if refusal is None else (refusal.code.name, refusal.field)


@pytest.mark.parametrize(("body", "expected"), [
    (json.dumps({"citizen": {"name": "张\x00三"}}).encode(), ("value.nul_character", "citizen.name")),
    (json.dumps({"findings": [{"ok": "a"}, {"x\x00": "b"}]}).encode(), ("value.nul_character", "findings.1.x")),
    (b'{"name": "\\ud800"}', ("value.lone_surrogate", "name")),
    (b'{"name": "\\uDC00x"}', ("value.lone_surrogate", "name")),
    (b'{"name": "\xed\xa0\x80"}', ("value.lone_surrogate", "name")),  # a surrogate sent as raw bytes
    (b'{"pool": NaN}', ("value.not_finite", "pool")),
    (b'{"pool": [1, -Infinity]}', ("value.not_finite", "pool.1")),
    (b'{"pool": 1e999}', ("value.not_finite", "pool")),
    (b'{"seed": ' + b"9" * 5000 + b"}", ("value.too_many_digits", "seed")),
    (b"[" * 5 + b"]" * 5, ("request.body_too_deep", None)),
    (b"[" * 100_000 + b"]" * 100_000, ("request.body_too_many_members", None)),
    (b"[1,2,3,4,5,6,7,8,9,10,11]", ("request.body_too_many_members", None)),
    (json.dumps(["," * 70_000, *range(11)]).encode(), ("request.body_too_many_members", None)),
    (json.dumps(["\\\"," * 70_000, *range(11)]).encode(), ("request.body_too_many_members", None)),
    (b'{"a": 1', ("request.malformed_json", None)),
    (b"]" * 900, ("request.malformed_json", None)),
])
async def test_a_hostile_body_is_refused_with_its_code_and_field(body: bytes, expected: tuple[str, str | None]) -> None:
    assert await code_of(body) == expected


@pytest.mark.parametrize("body", [
    b'{"name": "\\ud83d\\ude00"}',            # a surrogate pair is one character
    b'{"text": "\\\\u0000 typed as text"}',  # an escaped backslash, not a NUL
    b'{"text": "[[[[[[[[[[, , , , , , , , , , , ,"}',  # brackets and commas inside a string
    b'{"text": "\\"[[[[[[[[[[\\\\"}',
    b"[[[[]]]]",
    b"   ",
    # more commas than the limit, all inside strings that span the slices counted one at a time
    json.dumps(["," * 70_000, "x", "[{" * 70_000]).encode(),
])
async def test_what_only_looks_hostile_passes(body: bytes) -> None:
    assert await code_of(body) is None


async def test_json_nested_a_thousand_deep_is_refused_by_count_not_by_recursion() -> None:
    assert await code_of(b"[" * 1000 + b"]" * 1000, EdgeLimits.defaults()) == ("request.body_too_deep", None)


async def test_a_refusal_names_a_long_key_cut_short() -> None:
    refusal = await json_refusal(json.dumps({"k" * 500_000: "\x00"}).encode(), EdgeLimits.defaults())
    assert refusal is not None and refusal.field is not None and len(refusal.field) <= 64
    assert len(refusal.response().body) < 1000


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"seen " + str(len(body)).encode()})


async def call(path: str = "/x", query: bytes = b"", headers: dict[str, str] | None = None,
               chunks: list[bytes] | None = None, stall: bool = False,
               complete: bool = True) -> tuple[int, dict[str, Any] | bytes]:
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": query,
             "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()]}
    pending = [{"type": "http.request", "body": c, "more_body": not complete or i < len(chunks or []) - 1}
               for i, c in enumerate(chunks or [])]
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if stall:
            await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await InputGuard(_app, LIMITS)(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    status = sent[0]["status"]
    return status, (json.loads(body) if status != 200 else body)


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    status, document = await call(headers={"content-length": "10000000", "content-type": "application/json"},
                                  stall=True)
    assert (status, document["code"]) == (413, "request.body_too_large")  # type: ignore[index]


async def test_a_chunked_body_is_refused_once_it_passes_the_limit() -> None:
    status, document = await call(headers={"transfer-encoding": "chunked"}, chunks=[b"x" * 600] * 5, stall=True)
    assert (status, document["code"]) == (413, "request.body_too_large")  # type: ignore[index]


async def test_a_body_that_stops_arriving_is_timed_out() -> None:
    status, document = await call(headers={"content-length": "500"}, chunks=[b"x" * 10], stall=True, complete=False)
    assert (status, document["code"]) == (408, "request.body_too_slow")  # type: ignore[index]


async def test_a_long_url_and_a_nul_in_the_query_are_refused() -> None:
    status, document = await call(query=b"q=" + b"a" * 200)
    assert (status, document["code"]) == (414, "request.uri_too_long")  # type: ignore[index]
    status, document = await call(query=b"town=1&name=a%00b")
    assert (status, document["code"], document["field"]) == (422, "value.nul_character", "name")  # type: ignore[index]


async def test_a_good_body_reaches_the_app_whole() -> None:
    body = json.dumps({"a": [1, 2, 3]}).encode()
    status, seen = await call(headers={"content-length": str(len(body)), "content-type": "application/json"},
                              chunks=[body[:5], body[5:]])
    assert (status, seen) == (200, f"seen {len(body)}".encode())


async def test_a_form_body_is_not_read_as_json() -> None:
    status, seen = await call(headers={"content-length": "5", "content-type": "application/x-www-form-urlencoded"},
                              chunks=[b"a=%00"])
    assert (status, seen) == (200, b"seen 5")
