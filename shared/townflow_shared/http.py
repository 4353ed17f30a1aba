"""HTTP pieces every service mounts: health, readiness, metrics, RED metrics, the guard against
hostile input (guards.py), the security headers (the console's too), and the test clock."""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import problems
from .auth import Principal, require
from .db import OUTAGES, ROLLED_BACK
from .guards import EdgeLimits, InputGuard, json_refusal
from .metrics import HTTP_DURATION, HTTP_REQUESTS, REGISTRY
from .problems import (
    CLOCK_OUT_OF_RANGE,
    DATABASE_UNAVAILABLE,
    ROLE_MISSING,
    SERVICE_BUSY,
    TOKEN_INVALID,
    TOKEN_MISSING,
)
from .types import FIRST_YEAR, LAST_YEAR, Command, Instant, StrictBool

if TYPE_CHECKING:
    from .runtime import ServiceRuntime
    from .settings import ServiceSettings

BodyModel = TypeVar("BodyModel", bound=BaseModel)


def runtime_of(request: Request) -> ServiceRuntime:
    """The process's lifecycle, for the operations routes only (readiness, the test clock): the
    business routes are handed their service's deps instead."""
    return request.app.state.runtime  # type: ignore[no-any-return]



ops = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="database, kafka, consumer: `ok` or why not")


@ops.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """Alive: the process answers. Kubernetes restarts it when this fails."""
    return {"status": "ok"}


@ops.get("/readyz", response_model=Readiness,
         responses={503: {"model": Readiness, "description": "not ready: the checks say why"}})
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


@ops.get("/metrics", response_class=PlainTextResponse,
         responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                          "description": "Prometheus' text exposition format"}})
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class ClockChange(Command):
    now: Instant | None = None
    advance: timedelta | None = None
    release: StrictBool = False  # back to the system clock: a test leaves no clock moved for the next

    @model_validator(mode="after")
    def _one(self) -> ClockChange:
        if [self.now is not None, self.advance is not None, self.release].count(True) != 1:
            raise ValueError("give exactly one of 'now' (RFC 3339), 'advance' (ISO 8601 duration) or 'release'")
        return self


class ClockNow(BaseModel):
    now: datetime


test_clock = APIRouter(tags=["test clock"])


@test_clock.post("/v1/admin/clock", response_model=ClockNow,
                 responses=problems.responses(TOKEN_MISSING, TOKEN_INVALID, ROLE_MISSING, CLOCK_OUT_OF_RANGE))
async def move_clock(change: ClockChange, request: Request,
                     _: Annotated[Principal, Depends(require("admin"))]) -> dict[str, Any]:
    """Only mounted with TOWNFLOW_TEST_CLOCK=1: set, advance or release this service's clock (set
    within the years an instant may take, types.FIRST_YEAR to LAST_YEAR)."""
    clock = runtime_of(request).clock
    if change.release:
        return {"now": clock.release().isoformat()}
    if change.now is not None:
        return {"now": clock.set(change.now).isoformat()}
    assert change.advance is not None  # noqa: S101 - the model holds exactly one
    try:
        then = clock.now() + change.advance
    except OverflowError as exc:
        raise CLOCK_OUT_OF_RANGE("advance") from exc
    if not FIRST_YEAR <= then.year <= LAST_YEAR:
        raise CLOCK_OUT_OF_RANGE("advance")
    return {"now": clock.set(then).isoformat()}


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


# The browser's defences on every answer (issue #28, 等保 2.0 level 3): scripts, styles and images
# from the answering origin only — no inline script or style attribute runs, so injected markup
# cannot act —, never framed (clickjacking), no content-type sniffing, no address leaked to
# another site. The console's pages need nothing more (their scripts are files under /static).
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# A service answers JSON: nothing of it is a page to run or embed.
API_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# FastAPI's /docs and /redoc: its Swagger UI and ReDoc load from their CDN and start with an
# inline script, so those two pages only are allowed that much (the API itself stays API_POLICY).
DOCS_POLICY = ("default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
               "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com; font-src https://fonts.gstatic.com; "
               "img-src https://fastapi.tiangolo.com https://cdn.redoc.ly data:; connect-src 'self'; worker-src blob:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
HSTS_SECONDS = 365 * 24 * 3600


class SecurityHeaders:
    """Sets the security headers on every answer, refusals and static files included (a header a
    route set itself is left as it is). `hsts`: the site is served over HTTPS only (the console's
    Secure cookie), so browsers are told never to use plain HTTP for it."""

    def __init__(self, app: ASGIApp, policy: str = API_POLICY, hsts: bool = False) -> None:
        self.app = app
        self.headers = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                        (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin")]
        if hsts:
            self.headers.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode()))
        self.policy = policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY.encode() if scope["path"] in DOCS_PATHS else self.policy

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in (*self.headers, (b"content-security-policy", policy))
                            if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # A failure of our own: Starlette answers it outside every middleware (its
            # ServerErrorMiddleware), so the app's 500 answer (the console's page; Starlette's plain
            # words in a service) is given here instead, with the headers. The failure goes on up
            # to be logged; a response already begun is left as it is.
            if started:
                raise
            handlers = scope["app"].exception_handlers if "app" in scope else {}
            handler = handlers.get(Exception) or handlers.get(500)
            answer = handler(Request(scope), sys.exc_info()[1]) if handler is not None else None
            response = (await answer if inspect.isawaitable(answer) else answer) or PlainTextResponse(
                "Internal Server Error", status_code=500)
            await response(scope, receive, send_with_headers)
            raise


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """An outage, not a fault of the caller's request nor of ours: 503, to be tried again."""
    return DATABASE_UNAVAILABLE(headers={"Retry-After": str(RETRY_AFTER_SECONDS)}).response()


RETRY_AFTER_SECONDS = 5


async def _rolled_back(request: Request, exc: Exception) -> JSONResponse:
    """Undone to let another request through (db.ROLLED_BACK): nothing kept, to be sent again at once."""
    return SERVICE_BUSY(headers={"Retry-After": "1"}).response()


def mount_common(app: FastAPI, service: str, with_test_clock: bool, limits: EdgeLimits | None = None) -> None:
    """What every service answers besides its own routes, and the guard before them all."""
    problems.install(app)
    for outage in OUTAGES:
        app.add_exception_handler(outage, _database_unavailable)
    for rolled_back in ROLLED_BACK:
        app.add_exception_handler(rolled_back, _rolled_back)
    app.include_router(ops)
    if with_test_clock:
        app.include_router(test_clock)
    app.add_middleware(InputGuard, limits=limits)
    app.add_middleware(SecurityHeaders)  # outside the guard: its refusals carry the headers too
    app.add_middleware(RedMetricsMiddleware, service=service)


def json_form_field(what: str, route: str) -> Any:
    """A multipart form's JSON field (read with form_json), documented as the body of the JSON route
    it stands for."""
    return Form(max_length=65536, description=f"{what}, as the JSON body of `{route}`")


async def read_files(files: Sequence[UploadFile] | None) -> tuple[bytes, ...]:
    """A multipart form's file parts (photos), whole: the edge has bounded the body already."""
    return tuple([await file.read() for file in files or ()])


async def form_json(settings: ServiceSettings, model: type[BodyModel], field: str, text: str) -> BodyModel:
    """A multipart form's JSON field (a filing, a completion sent with photos) as the JSON route's
    body: refused as that body would be, its fields named under the form field's (`completion.reply`)."""
    if refusal := await json_refusal(text.encode(), EdgeLimits.of(settings)):
        # The multipart body is well-formed: its JSON field is what is not JSON (422, named).
        raise problems.MALFORMED(field) if refusal.code is problems.MALFORMED_JSON else refusal
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", field, *e["loc"])}
                                      for e in error.errors(include_url=False)]) from None
