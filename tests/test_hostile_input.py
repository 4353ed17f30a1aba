"""Hostile input at the edge of the running services and the console (issue #25 item 8): each is
answered within a second with a problem document naming its code (and field), with no token, and
`/healthz` stays fast while the biggest of them is refused. The limits are the defaults
(townflow_shared.settings: 1 MiB bodies, 32 deep, 20,000 members, 10 s per body, 8 KiB URLs)."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from devstack.stack import ServiceProcess, Stack
from tests.conftest import http_client

RATING = "/v1/requests/T00000000/rating"  # the citizen's rating: no token needed
MiB = 1_048_576
SECOND = 1.0
HEALTHZ_MS = 50.0
PROBES = 60  # /healthz probes at the least, whatever the time: a p95 of fewer says little
T = TypeVar("T")


async def post(url: str, path: str, content: bytes, content_type: str = "application/json",
               **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    async with http_client(base_url=url, timeout=30) as client:
        response = await client.post(path, content=content, headers={"content-type": content_type}, **kwargs)
    return response, time.perf_counter() - started


def refused(response: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json", response.headers
    document: dict[str, Any] = response.json()
    assert document["code"] == code, document
    if field is not None:
        assert document["field"] == field, document
    assert len(response.content) < 2000, "a refusal never echoes the input in bulk"
    return document


async def raw(service: ServiceProcess, head: bytes, body: bytes = b"",
              then: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None) -> tuple[int, dict[str, Any]]:
    """One request written by hand (a body that lies about its length, a chunked stream), and the
    answer's status and problem document."""
    where = urlsplit(service.url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(head + body)
        await writer.drain()
        if then is not None:
            sending = asyncio.create_task(then(writer))
        answer_head = await reader.readuntil(b"\r\n\r\n")
        status = int(answer_head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", answer_head).group(1))  # type: ignore[union-attr]
        document = json.loads(await reader.readexactly(length))
        if then is not None:
            sending.cancel()
        return status, document
    finally:
        writer.close()


def head(method: str, path: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def assert_answered_at_once(url: str, path: str, elapsed: float, what: object = None,
                                  control: bytes = b"{}", content_type: str = "application/json") -> None:
    """A hostile body's refusal came within a second — or, on a machine so busy that a harmless
    body to the same route (`control`, measured at once after) takes longer, within twice that:
    the ratio within one run (make test's lanes once kept dispatch 3 s from answering anything)."""
    if elapsed < SECOND:
        return
    _, harmless = await post(url, path, control, content_type)
    assert elapsed < 2 * harmless, (what, path, elapsed, harmless)


# The prober is a process of its own: in this one, building and sending the hostile body would
# hold the GIL and be measured as the service's slowness.
_PROBER = r"""
import json, socket, sys, time
port, seconds, at_least = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
with socket.create_connection(("127.0.0.1", port)) as s:
    def probe():
        started = time.perf_counter()
        s.sendall(request)
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):
            answer += s.recv(4096)
        return (time.perf_counter() - started) * 1000
    probe()
    print("ready", flush=True)
    times, until = [], time.monotonic() + seconds
    # Both: the whole time the refusal may take, and enough probes for a p95 however slow the
    # machine is (a busy one stretched 10 ms sleeps until 1.5 s held 49).
    while time.monotonic() < until or len(times) < at_least:
        times.append(probe())
        time.sleep(0.01)
print(json.dumps(times), flush=True)
"""


async def healthz_while(service: ServiceProcess, refusal: Callable[[], Awaitable[T]],
                        seconds: float = 1.5) -> tuple[T, list[float]]:
    """Run `refusal` while another process probes the service's /healthz every 10 ms; its result
    and the probes' times (ms) over `seconds` from just before it starts."""
    prober = await asyncio.create_subprocess_exec(sys.executable, "-c", _PROBER, str(service.port), str(seconds), str(PROBES),
                                                  stdout=asyncio.subprocess.PIPE)
    assert prober.stdout is not None
    assert await prober.stdout.readline() == b"ready\n"
    result = await refusal()
    times = json.loads(await prober.stdout.readline())
    await prober.wait()
    return result, times


def healthz_p95(probes: list[float]) -> float:
    """The probes' 95th percentile (of 60 to about 150, the fourth to the eighth slowest)."""
    assert len(probes) >= PROBES, f"the prober measured too little: {len(probes)} probes"
    return statistics.quantiles(probes, n=20, method="inclusive")[-1]


async def _nothing() -> None:
    return None


async def assert_healthz_stayed_fast(service: ServiceProcess, probes: list[float],
                                     control: Callable[[], Awaitable[object]] = _nothing) -> None:
    """/healthz's p95 while the hostile body was refused is under 50 ms — or, on a machine so busy
    that the same probes are slower than that with nothing hostile going on — `control`, the same
    work without the hostile part: a body as large of one member, say — (make test's three lanes
    on two cores: probes of 62, 89 and 128 ms were seen), under twice their p95, measured at once
    after: the ratio within one run. A service reading the hostile body on its event loop
    holds back every probe while it does (ten or more, 10 ms apart), which either bound sees."""
    during = healthz_p95(probes)
    if during < HEALTHZ_MS:
        return
    # The control twice, the slower kept: one 1.5 s sample of a machine this busy can fall in a
    # quiet moment (a fresh clone's run saw p95 60-73 ms during, from other lanes' bursts).
    quiet = [await healthz_while(service, control) for _ in range(2)]
    slower = max((healthz_p95(times) for _, times in quiet))
    assert during < 2 * slower, {"during": probes, "nothing_hostile": [times for _, times in quiet]}


# --- the size of a body -----------------------------------------------------------------------

async def test_a_10_mb_body_to_the_citizens_rating_is_refused_413_at_once_while_healthz_stays_fast(
        stack: Stack) -> None:
    intake = stack.services["intake"]
    members = b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(560_000)) + b"}"  # ~10 MB, no token
    assert len(members) > 8 * MiB
    (response, elapsed), probes = await healthz_while(intake, lambda: post(intake.url, RATING, members))
    refused(response, 413, "request.body_too_large")
    await assert_answered_at_once(intake.url, RATING, elapsed)
    await assert_healthz_stayed_fast(intake, probes)


async def test_a_body_that_declares_10_mb_and_sends_10_bytes_is_refused_before_it_is_read(stack: Stack) -> None:
    started = time.perf_counter()
    status, document = await raw(stack.services["dispatch"], head(
        "POST", "/v1/tasks/00000000-0000-0000-0000-000000000000/accept", content_type="application/json",
        content_length=str(10 * MiB)), b'{"a": 1, "')
    assert (status, document["code"]) == (413, "request.body_too_large")
    assert time.perf_counter() - started < SECOND


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(stack: Stack) -> None:
    async def keep_sending(writer: asyncio.StreamWriter) -> None:
        chunk = b" " * 65536
        while True:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()

    started = time.perf_counter()
    status, document = await raw(stack.services["enforcement"], head(
        "POST", "/v1/random-plans", content_type="application/json", transfer_encoding="chunked"),
        b"1\r\n[\r\n", then=keep_sending)
    assert (status, document["code"], document["params"]) == (413, "request.body_too_large", {"limit": MiB})
    assert time.perf_counter() - started < SECOND


async def test_a_body_that_stops_arriving_is_answered_408_when_its_time_is_up(stack: Stack) -> None:
    started = time.perf_counter()
    status, document = await raw(stack.services["appraisal"], head(
        "POST", "/v1/what-if", content_type="application/json", content_length="100"), b'{"period": ')
    waited = time.perf_counter() - started
    assert (status, document["code"], document["params"]) == (408, "request.body_too_slow", {"seconds": 10})
    assert 9.5 < waited < 10 + SECOND


# --- the shape of a JSON body -----------------------------------------------------------------

def _post_routes(openapi: dict[str, Any]) -> list[str]:
    return [re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
            for path, operations in openapi["paths"].items() if "post" in operations]


async def test_json_nested_1000_deep_is_a_422_on_every_post_route_of_every_service_and_unknown_paths(
        stack: Stack) -> None:
    nested = b'{"a":' * 1000 + b"1" + b"}" * 1000
    for name, service in stack.services.items():
        async with http_client(base_url=service.url, timeout=10) as client:
            paths = _post_routes((await client.get("/openapi.json")).json())
        assert paths, name
        for path in [*paths, "/v1/no-such-route"]:
            response, elapsed = await post(service.url, path, nested)
            document = refused(response, 422, "request.body_too_deep")
            assert document["params"] == {"limit": 32}
            await assert_answered_at_once(service.url, path, elapsed, name)


async def test_a_body_of_too_many_members_under_the_size_limit_is_refused_before_it_is_parsed(
        stack: Stack) -> None:
    intake = stack.services["intake"]
    many = json.dumps({"targets": [str(i) for i in range(100_000)]}).encode()
    assert len(many) < MiB
    (response, elapsed), probes = await healthz_while(intake, lambda: post(intake.url, RATING, many))
    refused(response, 422, "request.body_too_many_members")
    await assert_answered_at_once(intake.url, RATING, elapsed)
    # The control: as many bytes, read and refused the same way, but one member (a long string).
    few = json.dumps({"targets": "x" * (len(many) - 16)}).encode()
    await assert_healthz_stayed_fast(intake, probes, lambda: post(intake.url, RATING, few))


@pytest.mark.parametrize(("body", "code", "field"), [
    (b'{"score": NaN, "comment": "ok"}', "value.not_finite", "score"),
    (b'{"score": Infinity}', "value.not_finite", "score"),
    (b'{"score": -Infinity}', "value.not_finite", "score"),
    (b'{"score": 1e999}', "value.not_finite", "score"),
    (b'{"score": 5, "comment": "\\ud800"}', "value.lone_surrogate", "comment"),
    (b'{"score": 5, "comment": "\xed\xa0\x80 sent raw"}', "value.lone_surrogate", "comment"),
    (b'{"score": 5, "comment": {"deeper": ["x", "a\\u0000b"]}}', "value.nul_character", "comment.deeper.1"),
    (b'{"score": 5, "comment\\udc00": "x"}', "value.lone_surrogate", "comment"),
])
async def test_values_json_allows_and_the_services_cannot_hold_are_422_naming_the_field(
        stack: Stack, body: bytes, code: str, field: str) -> None:
    response, elapsed = await post(stack.services["intake"].url, RATING, body)
    refused(response, 422, code, field)
    await assert_answered_at_once(stack.services["intake"].url, RATING, elapsed)


async def test_broken_json_is_a_400(stack: Stack) -> None:
    response, _ = await post(stack.services["dispatch"].url, "/v1/staff/s001/off-post", b'{"from": ')
    refused(response, 400, "request.malformed_json")


# --- the URL ----------------------------------------------------------------------------------

async def test_a_1_mb_query_string_is_answered_414_not_a_reset_connection(stack: Stack) -> None:
    appraisal = stack.services["appraisal"]
    started = time.perf_counter()
    # (httpx will not send such a URL: written by hand)
    status, document = await raw(appraisal, head("GET", "/v1/scores?period=2026-01&town=" + "x" * MiB))
    assert (status, document["code"], document["params"]) == (414, "request.uri_too_long", {"limit": 8192})
    assert time.perf_counter() - started < SECOND


async def test_a_nul_in_a_query_parameter_is_refused_naming_it(stack: Stack) -> None:
    async with http_client(base_url=stack.services["dispatch"].url, timeout=10) as client:
        response = await client.get("/v1/tasks", params={"request_id": "a\x00b"})
    refused(response, 422, "value.nul_character", "request_id")


# --- the console --------------------------------------------------------------------------------

async def test_the_console_refuses_the_same_input_as_the_services_as_chinese_pages(stack: Stack) -> None:
    console = await asyncio.to_thread(stack.start_console)

    def page(response: httpx.Response, status: int, words: str) -> None:
        assert response.status_code == status, response.text[:500]
        assert response.headers["content-type"].startswith("text/html"), response.headers
        assert "未能办理" in response.text and words in response.text, response.text[:2000]

    response, elapsed = await post(console.url, "/signin", b"login=" + b"a" * (2 * MiB),
                                   content_type="application/x-www-form-urlencoded")
    page(response, 413, "提交的内容太多了")
    await assert_answered_at_once(console.url, "/signin", elapsed, control=b"login=a",
                                  content_type="application/x-www-form-urlencoded")
    response, _ = await post(console.url, "/signin", b"[" * 1000 + b"]" * 1000)
    page(response, 422, "层级太多")
    # httpx will not send a URL this long: written by hand.
    where = urlsplit(console.url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(head("GET", "/signin?next=/" + "x" * MiB, Connection="close"))
        await writer.drain()
        answer = (await reader.read()).decode()
    finally:
        writer.close()
    assert answer.startswith("HTTP/1.1 414"), answer[:300]
    assert "text/html" in answer.split("\r\n\r\n")[0] and "网址太长了" in answer, answer[:2000]
