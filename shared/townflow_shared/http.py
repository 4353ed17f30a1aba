"""HTTP pieces every service mounts: health, readiness, metrics, RED metrics, the refusal of NUL
characters, and the test clock."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import problems
from .auth import Principal, require
from .db import OUTAGES
from .metrics import HTTP_DURATION, HTTP_REQUESTS, REGISTRY
from .problems import CLOCK_OUT_OF_RANGE, DATABASE_UNAVAILABLE, INVALID_VALUE, NUL, Refusal, invalid

if TYPE_CHECKING:
    from .runtime import ServiceRuntime


def unprocessable(problems: list[tuple[str, str]], where: str = "body", **extra: Any) -> Refusal:
    """TODO(#25): a 422 naming each field that is wrong, [(field, problem), ...], with the generic
    `value.invalid`; the services move to their own codes and this goes."""
    return invalid([INVALID_VALUE.error(field, **extra).model_copy(update={"detail": msg})
                    for field, msg in problems])


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def _runtime_dependency(request: Request) -> ServiceRuntime:
    """`async` although it never waits: FastAPI would run a plain `def` in a worker thread."""
    return runtime_of(request)


Runtime = Annotated["ServiceRuntime", Depends(_runtime_dependency)]

ops = APIRouter(tags=["operations"])


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers. Kubernetes restarts it when this fails."""
    return {"status": "ok"}


@ops.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready only when PostgreSQL takes writes, Kafka answers and the consumer is not waiting
    out an error."""
    runtime = runtime_of(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            # A failover's read-only window answers SELECT 1 but refuses every write.
            read_only = await runtime.pool.fetchval("SELECT current_setting('transaction_read_only')")
        checks["database"] = "read-only" if read_only == "on" else "ok"
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        checks["kafka"] = "ok" if await runtime.broker.ping(timeout=2) else "unavailable"
    except Exception as exc:
        checks["kafka"] = f"unavailable: {type(exc).__name__}"
    checks["consumer"] = runtime.retrying.status()
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


@ops.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class ClockChange(BaseModel):
    now: datetime | None = None
    advance: timedelta | None = None
    release: bool = False  # back to the system clock: a test leaves no clock moved for the next

    @model_validator(mode="after")
    def _one(self) -> ClockChange:
        if [self.now is not None, self.advance is not None, self.release].count(True) != 1:
            raise ValueError("give exactly one of 'now' (RFC 3339), 'advance' (ISO 8601 duration) or 'release'")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("'now' needs a UTC offset")
        return self


test_clock = APIRouter(tags=["test clock"])


@test_clock.post("/v1/admin/clock")
async def move_clock(change: ClockChange, request: Request,
                     _: Annotated[Principal, Depends(require("admin"))]) -> dict[str, Any]:
    """Only mounted with TOWNFLOW_TEST_CLOCK=1: set, advance or release this service's clock."""
    clock = runtime_of(request).clock
    if change.release:
        return {"now": clock.release().isoformat()}
    try:
        now = clock.set(change.now) if change.now is not None else clock.advance(change.advance)  # type: ignore[arg-type]
    except OverflowError as exc:
        raise CLOCK_OUT_OF_RANGE("advance") from exc
    return {"now": now.isoformat()}


class RedMetricsMiddleware:
    """Rate, errors and duration per route template (not per raw path: ids would explode the
    labels). FastAPI itself opens the server span of each request (its built-in OpenTelemetry
    support continues the caller's W3C context). Plain ASGI: Starlette's BaseHTTPMiddleware
    costs a task group and a stream per request."""

    QUIET = frozenset({"/metrics", "/healthz", "/readyz"})

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.QUIET:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            HTTP_DURATION.labels(self.service, scope["method"], template).observe(time.perf_counter() - started)


class NulCharacterMiddleware:
    """PostgreSQL text cannot hold U+0000, so a NUL in a query parameter, the path or a JSON
    string is refused with a 422 naming where it is, before any handler could turn it into a
    database error (a 500). Plain ASGI; a body is looked into only if it holds an escaped NUL."""

    MESSAGE = "text may not contain the NUL character (U+0000)"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    await self._refuse(send, ["query", name.replace("\x00", "")])
                    return
        if "\x00" in scope["path"]:
            await self._refuse(send, ["path"])
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        if b"\\u0000" in body:
            where = _nul_in_json(body)
            if where is not None:
                await self._refuse(send, ["body", *where])
                return
        replay = iter(messages)

        async def receive_again() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, receive_again, send)

    async def _refuse(self, send: Send, loc: list[str | int]) -> None:
        field = problems.field_of(loc)
        await invalid([NUL.error(field)]).response()({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _nul_in_json(body: bytes) -> list[str | int] | None:
    """Where the first string holding a NUL is, as a FastAPI `loc`; None if none (or not JSON)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None  # FastAPI answers the broken JSON itself

    def search(value: Any, path: list[str | int]) -> list[str | int] | None:
        if isinstance(value, str):
            return path if "\x00" in value else None
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                return [*path, key.replace("\x00", "")]
            found = search(item, [*path, key])
            if found is not None:
                return found
        return None

    return search(document, [])


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """An outage, not a fault of the caller's request nor of ours: 503, to be tried again."""
    return DATABASE_UNAVAILABLE(headers={"Retry-After": str(RETRY_AFTER_SECONDS)}).response()


RETRY_AFTER_SECONDS = 5


def mount_common(app: FastAPI, service: str, with_test_clock: bool) -> None:
    problems.install(app)
    for outage in OUTAGES:
        app.add_exception_handler(outage, _database_unavailable)
    app.include_router(ops)
    if with_test_clock:
        app.include_router(test_clock)
    app.add_middleware(NulCharacterMiddleware)
    app.add_middleware(RedMetricsMiddleware, service=service)
