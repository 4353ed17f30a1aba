"""The console's wiring: settings, the county's accounts, the token signer, the services' client,
the session cookie, the pages. No rules here, and none anywhere in the console: it shows what the
services answer and posts to their APIs."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townflow_shared.county import County, load_county
from townflow_shared.guards import EdgeLimits, InputGuard
from townflow_shared.http import RedMetricsMiddleware
from townflow_shared.metrics import REGISTRY
from townflow_shared.telemetry import setup_tracing

from . import error_pages
from .accounts import Accounts
from .names import CountyNames
from .pages import alerts, appraisal, audit, auth, board, bulletin, enforcement, intake, merge, status, tasks
from .pages import county as county_page
from .pages import suspensions as suspension_pages
from .services import Services
from .session import COOKIE, SessionCodec
from .settings import ConsoleSettings
from .tokens import TokenSigner
from .web import CsrfRefused, Forbidden, NoSuchAction, SignInNeeded, render

STATIC = Path(__file__).with_name("static")


@dataclass
class Console:
    """What the pages are given: the county's configuration, who may sign in, the services."""

    settings: ConsoleSettings
    county: County
    accounts: Accounts
    services: Services
    codec: SessionCodec

    @cached_property
    def names(self) -> CountyNames:
        """The county's towns' codes by name, and their clocks (names.py)."""
        return self.services.names or CountyNames(self.county)


def token_signer(settings: ConsoleSettings) -> TokenSigner:
    if settings.console_signing_key_file is not None:
        key: Any = settings.console_signing_key_file.read_text()
        algorithm = settings.console_signing_algorithm
    elif settings.jwt_secret is not None:
        key, algorithm = settings.jwt_secret.get_secret_value(), "HS256"
    else:
        raise RuntimeError("the console signs the tokens it presents: set TOWNFLOW_CONSOLE_SIGNING_KEY_FILE "
                           "(with _KID and TOWNFLOW_CONSOLE_TOKEN_ISSUER) or TOWNFLOW_JWT_SECRET")
    return TokenSigner(key, algorithm, kid=settings.console_signing_kid, issuer=settings.console_token_issuer,
                       audience_template=settings.console_audience_template,
                       ttl_seconds=settings.console_token_ttl_seconds)


class SessionMiddleware:
    """Reads the signed session cookie into `request.state.session` (a new anonymous session with
    its own CSRF token when there is none) and writes the cookie when the session is new or changed."""

    QUIET = ("/static/", "/healthz", "/readyz", "/metrics")

    def __init__(self, app: ASGIApp, codec: SessionCodec, secure: bool) -> None:
        self.app = app
        self.codec = codec
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.QUIET):
            await self.app(scope, receive, send)
            return
        cookies = SimpleCookie()
        for name, value in scope["headers"]:
            if name == b"cookie":
                with contextlib.suppress(Exception):
                    cookies.load(value.decode("latin-1"))
        session = self.codec.decode(cookies[COOKIE].value if COOKIE in cookies else None)
        state = scope.setdefault("state", {})
        state["session"] = session or self.codec.new()
        state["session_changed"] = session is None

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("session_changed"):
                cookie = SimpleCookie()
                cookie[COOKIE] = self.codec.encode(state["session"])
                morsel = cookie[COOKIE]
                morsel["path"] = "/"
                morsel["httponly"] = True
                morsel["samesite"] = "Lax"
                morsel["max-age"] = int(self.codec.lifetime)
                morsel["secure"] = self.secure
                MutableHeaders(scope=message).append("set-cookie", morsel.OutputString())
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    # httpx logs every URL at INFO: a citizen's access code travels in one; no such line in our logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    county = load_county(settings.town_dir)  # a wrong file (or account) fails start-up here
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    signer = token_signer(settings)
    secret = (settings.console_session_secret.get_secret_value().encode() if settings.console_session_secret
              else secrets.token_bytes(32))
    codec = SessionCodec(secret, settings.console_session_hours * 3600)
    urls = {"intake": settings.intake_url, "dispatch": settings.dispatch_url,
            "enforcement": settings.enforcement_url, "appraisal": settings.appraisal_url}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.service_timeout_seconds) as client:
            app.state.console = Console(settings, county, Accounts(county), Services(urls, signer, client, county),
                                        codec)
            yield

    app = FastAPI(title="Townflow console", version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    for module in (auth, board, merge, tasks, intake, status, enforcement, alerts, appraisal, bulletin, county_page,
                   suspension_pages, audit):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    error_pages.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        """Ready once started: the console holds nothing but its configuration; a service that is
        away is reported on the page that needs it."""
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(SignInNeeded)
    async def sign_in_first(request: Request, exc: SignInNeeded) -> RedirectResponse:
        return RedirectResponse(f"/signin?next={exc.next_path}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        return render(request, "refused.html", 403, title="无权访问",
                      message="您的岗位没有这个页面的权限。如需使用，请联系本镇管理员。")

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> HTMLResponse:
        return render(request, "refused.html", 403, title="表单已失效",
                      message="这张表单已失效（缺少或不匹配安全校验码），请返回刷新页面后重新提交。")

    @app.exception_handler(NoSuchAction)
    async def no_such_action(request: Request, exc: NoSuchAction) -> HTMLResponse:
        return render(request, "refused.html", 404, title="没有这个操作", message="没有这个操作。")

    app.add_middleware(SessionMiddleware, codec=codec, secure=settings.console_cookie_secure)
    # Hostile input, refused as in every service, but as a Chinese page.
    app.add_middleware(InputGuard, limits=EdgeLimits.of(settings), answer=error_pages.edge_refusal)
    app.add_middleware(RedMetricsMiddleware, service=settings.service_name)
    return app
