"""The security headers every service and the console send (issue #28 item 5,
`townflow_shared.http.SecurityHeaders`), on an app of the test's own: on answers, refusals of the
edge guard and of a route, a failure's 500, never over a header a route set; HSTS only when asked;
the docs pages' own policy."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from townflow_shared.http import API_POLICY, DOCS_POLICY, PAGE_POLICY, mount_common


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/own-policy")
    async def own_policy() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src 'self'"})

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    mount_common(app, "test", with_test_clock=False)
    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
        return await client.get(path)


async def test_every_answer_of_a_service_carries_the_headers_a_failure_too() -> None:
    app = _app()
    for path, status in (("/fine", 200), ("/healthz", 200), ("/v1/nothing", 404), ("/" + "x" * 9000, 414),
                         ("/broken", 500)):
        got = await _get(app, path)
        assert got.status_code == status, path
        assert got.headers["content-security-policy"] == API_POLICY, path
        assert got.headers["x-content-type-options"] == "nosniff", path
        assert got.headers["referrer-policy"] == "no-referrer", path
        assert got.headers["x-frame-options"] == "DENY", path
        assert "strict-transport-security" not in got.headers, path
    assert (await _get(app, "/own-policy")).headers["content-security-policy"] == "default-src 'self'"
    assert (await _get(app, "/docs")).headers["content-security-policy"] == DOCS_POLICY


def test_the_pages_policy_runs_no_inline_script_and_is_never_framed() -> None:
    directives = dict(d.strip().split(" ", 1) for d in PAGE_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and "unsafe" not in PAGE_POLICY
    assert "frame-ancestors 'none'" in API_POLICY and "frame-ancestors 'none'" in DOCS_POLICY
