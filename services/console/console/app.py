"""The console's wiring: settings, the county's accounts (or its OIDC provider), the token signer,
the services' client, its database (sessions, failed sign-ins), the session cookie, the security
headers, the pages. No rules here, and none in the console but its own sign-in's (rules.py): it
shows what the services answer and posts to their APIs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townflow_shared import audit_trail, db
from townflow_shared.clock import Clock
from townflow_shared.county import County, load_county
from townflow_shared.events import ConsoleAuditRecorded, dlq_topic
from townflow_shared.group_gauges import GroupGauges
from townflow_shared.guards import EdgeLimits, InputGuard
from townflow_shared.http import PAGE_POLICY, RedMetricsMiddleware, SecurityHeaders
from townflow_shared.kafka import committed_outbox_ids, create_producer, ensure_topics, relay_transactional_id
from townflow_shared.metrics import (
    AUDIT_UNSEALED,
    AUDIT_UNSEALED_AGE,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PARKED_ROWS,
    REGISTRY,
)
from townflow_shared.outbox import OutboxRelay, refresh_outbox_gauges
from townflow_shared.runtime import keep_alive, session_limits
from townflow_shared.telemetry import setup_tracing

from . import error_pages
from .accounts import Accounts
from .names import CountyNames
from .oidc import ProviderSignIn, RequestContext
from .pages import (
    alerts,
    appraisal,
    audit,
    auth,
    board,
    bulletin,
    enforcement,
    intake,
    merge,
    oidc,
    photos,
    status,
    tasks,
)
from .pages import county as county_page
from .pages import deliveries as deliveries_page
from .pages import place as place_pages
from .pages import rehearsal as rehearsal_page
from .pages import suspensions as suspension_pages
from .services import Services, TokenSource
from .session import COOKIE, Session, SessionStore, anonymous_cookie, anonymous_from, looks_like_id
from .session_audit import NOWHERE, SIGN_OUT
from .settings import ConsoleSettings
from .sign_in import FailureStore, Limits
from .store import AuditRecords, PgSessions, SignInFailures
from .tokens import TokenSigner
from .web import CsrfRefused, Forbidden, NoSuchAction, SignInNeeded, render

STATIC = Path(__file__).with_name("static")
MIGRATIONS = Path(__file__).with_name("migrations")
# The shared tables first (the outbox, the audit trail's chain: 005_audit.sql), then the console's.
ALL_MIGRATIONS = (db.SHARED_MIGRATIONS, MIGRATIONS)
log = logging.getLogger(__name__)
# How often a replica records the sessions that ran out (idle or lifetime) since: a timeout's
# record is at most this late, and carries the moment it ran out.
EXPIRY_SECONDS = 30.0


@dataclass
class Console:
    """What the pages are given: the county's configuration, who may sign in, the services."""

    settings: ConsoleSettings
    county: County
    accounts: Accounts
    services: Services
    sessions: SessionStore
    failures: Callable[[], AbstractAsyncContextManager[FailureStore]]  # one transaction each
    records: AuditRecords  # the audit records that have no other transaction (a provider's sign-in)
    oidc: ProviderSignIn | None = None  # the county's OIDC provider signs staff in; None: local accounts

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(s.console_sign_in_failures, s.console_sign_in_address_failures,
                      timedelta(minutes=s.console_sign_in_lock_minutes))

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
    """Reads the session the cookie names into `request.state.session` (a new anonymous session
    with its own CSRF token when it names none, or one that ended) and, when a page began another
    (start_session), ends the old one for every replica and writes the new one's cookie."""

    QUIET = ("/static/", "/healthz", "/readyz", "/metrics")
    # A page's own background refresh (the board's live fragment every 2 s) is no sign of the
    # person: it does not keep an idle session alive.
    BACKGROUND = ("/board/live",)

    def __init__(self, app: ASGIApp, secure: bool, lifetime_seconds: float) -> None:
        self.app = app
        self.secure = secure
        self.lifetime_seconds = lifetime_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.QUIET):
            await self.app(scope, receive, send)
            return

        def sessions() -> SessionStore:  # asked only when a session is signed in: no row otherwise
            return scope["app"].state.console.sessions  # type: ignore[no-any-return]

        cookies = SimpleCookie()
        for name, value in scope["headers"]:
            if name == b"cookie":
                with contextlib.suppress(Exception):
                    cookies.load(value.decode("latin-1"))
        cookie = cookies[COOKIE].value if COOKIE in cookies else ""
        session, session_id = anonymous_from(cookie), None
        if session is None and looks_like_id(cookie):
            session = await sessions().resume(cookie, activity=scope["path"] not in self.BACKGROUND)
            session_id = cookie if session is not None else None
        state = scope.setdefault("state", {})
        state["session"] = session or Session()
        state["session_changed"] = session is None

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("session_changed"):
                if session_id is not None:
                    await sessions().end(session_id, *state.get("session_ending", (SIGN_OUT, NOWHERE)))
                new: Session = state["session"]
                signed_in = new.person is not None
                jar = SimpleCookie()
                jar[COOKIE] = await sessions().begin(new) if signed_in else anonymous_cookie(new)
                morsel = jar[COOKIE]
                morsel["path"] = "/"
                morsel["httponly"] = True
                morsel["samesite"] = "Lax"
                if signed_in:
                    morsel["max-age"] = int(self.lifetime_seconds)
                morsel["secure"] = self.secure
                MutableHeaders(scope=message).append("set-cookie", morsel.OutputString())
            elif message["type"] == "http.response.start" and state.get("session_updated") and session_id:
                await sessions().update(session_id, state["session"])
            await send(message)

        await self.app(scope, receive, send_with_cookie)


RELAY_FINISH_SECONDS = 5.0  # as a service's (runtime.py)


def _kept_running(name: str, settings: ConsoleSettings, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """A background loop of the console, kept alive as a service's are (runtime.keep_alive)."""
    return asyncio.create_task(keep_alive(f"console.{name}", run, settings.retry_base_seconds,
                                          settings.retry_max_seconds), name=name)


async def _end_expired_sessions(sessions: SessionStore) -> None:
    while True:
        await sessions.end_expired()
        await asyncio.sleep(EXPIRY_SECONDS)


async def _relay(settings: ConsoleSettings, relay: OutboxRelay) -> None:
    """The console's topic (the services make it too, with every topic of the contract), then its
    outbox relay: the same delivery as every topic's (outbox.py)."""
    topic = ConsoleAuditRecorded.topic
    await ensure_topics(settings, [topic, dlq_topic(topic)], settings.kafka_partitions)
    await relay.run()


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    # httpx logs every URL at INFO: a citizen's access code travels in one; no such line in our logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    county = load_county(settings.town_dir)  # a wrong file (or account) fails start-up here
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    state_key = (settings.console_oidc_state_key.get_secret_value().encode() if settings.console_oidc_state_key
                 else secrets.token_bytes(32))
    provider = ProviderSignIn.of(settings, state_key) if settings.console_oidc_issuer else None
    tokens: TokenSource = provider.tokens if provider is not None else token_signer(settings)
    urls = {"intake": settings.intake_url, "dispatch": settings.dispatch_url,
            "enforcement": settings.enforcement_url, "appraisal": settings.appraisal_url,
            "notify": settings.notify_url}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await db.create_pool(settings.database_url.get_secret_value(), settings.db_pool_min,
                                    settings.db_pool_max, service=settings.service_name,
                                    limits=session_limits(settings))
        tasks: list[asyncio.Task[None]] = []
        relay: OutboxRelay | None = None
        try:
            await db.migrate(pool, ALL_MIGRATIONS)
            database = db.Database()
            database.use(pool)
            sessions = PgSessions(pool, settings.console_session_idle_minutes * 60,
                                  settings.console_session_hours * 3600)
            clock = Clock()
            async with pool.acquire() as conn:
                await clock.follow(conn)  # the prune's "now": the database's, as the services'
            # The console's audit chain, as a service's: sealed (and pruned) by every replica in
            # turn, published on console.audit.recorded.v1 by the outbox relay.
            home = audit_trail.home_of(county)
            tasks.append(_kept_running("audit-sealing", settings, lambda: audit_trail.sealing_loop(
                settings.service_name, database, home, clock, settings.audit_retention_days)(None)))
            tasks.append(_kept_running("session-expiry", settings, lambda: _end_expired_sessions(sessions)))
            if settings.db_stuck_session_seconds > 0:  # a paused console replica's locks, as a service's
                tasks.append(_kept_running("stuck-sessions", settings, lambda: db.end_stuck_sessions_forever(
                    settings.database_url.get_secret_value(), settings.service_name, session_limits(settings),
                    settings.db_stuck_session_seconds)))
            gauges = GroupGauges(lambda: pool, settings.group_gauges_seconds)
            gauges.add(lambda p: audit_trail.refresh_audit_gauges(p, settings.service_name),
                       AUDIT_UNSEALED, AUDIT_UNSEALED_AGE)
            gauges.add(lambda p: refresh_outbox_gauges(p, settings.service_name),
                       OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PARKED_ROWS)
            tasks.append(asyncio.create_task(gauges.run(), name="group-gauges"))
            if settings.outbox_relay:
                relay = OutboxRelay(
                    settings.service_name, pool, lambda: create_producer(settings, relay_transactional_id(settings)),
                    lambda topics, depth: committed_outbox_ids(settings, topics, depth),
                    batch_size=settings.outbox_batch_size, poll_seconds=settings.outbox_poll_seconds,
                    takeover_seconds=settings.outbox_takeover_seconds)
                tasks.append(_kept_running("outbox-relay", settings, lambda: _relay(settings, relay)))
            async with httpx.AsyncClient(timeout=settings.service_timeout_seconds, limits=httpx.Limits(
                    keepalive_expiry=settings.service_keep_alive_seconds)) as client:
                app.state.console = Console(settings, county, Accounts(county), Services(urls, tokens, client, county),
                                            sessions, database.units_of_work(SignInFailures), AuditRecords(pool),
                                            provider)
                app.state.pool = pool
                yield
        finally:
            if relay is not None:
                relay.finish()  # the cycle under way ends (outbox.OutboxRelay.finish says why)
                with contextlib.suppress(TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(tasks[-1]), RELAY_FINISH_SECONDS)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if provider is not None:
                await provider.provider.aclose()
            await pool.close()

    app = FastAPI(title="Townflow console", version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    for module in (auth, oidc, board, merge, tasks, intake, status, photos, enforcement, alerts, appraisal, bulletin,
                   county_page, suspension_pages, audit):
        app.include_router(module.router)
    app.include_router(place_pages.router)  # the map and the hotspots (issue #30)
    app.include_router(rehearsal_page.router)  # 改革预演 (issue #32)
    app.include_router(deliveries_page.router)  # 消息记录 (issue #31)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    error_pages.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        """Ready when its database answers (sessions live there); a service that is away is
        reported on the page that needs it."""
        try:
            async with asyncio.timeout(2):
                await request.app.state.pool.fetchval("SELECT 1")
        except Exception as exc:  # any failure means not ready
            return JSONResponse({"status": "not ready", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(SignInNeeded)
    async def sign_in_first(request: Request, exc: SignInNeeded) -> RedirectResponse:
        # A form posted after the session ended: to sign in, then the home page (the form's own
        # address answers POST only).
        return RedirectResponse(f"/signin?next={exc.next_path}" if request.method == "GET" else "/signin",
                                status_code=303)

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

    if provider is not None:
        app.add_middleware(RequestContext)  # the provider's tokens are the session's (oidc.py)
    app.add_middleware(SessionMiddleware, secure=settings.console_cookie_secure,
                       lifetime_seconds=settings.console_session_hours * 3600)
    # Hostile input, refused as in every service, but as a Chinese page.
    app.add_middleware(InputGuard, limits=EdgeLimits.of(settings), answer=error_pages.edge_refusal)
    # HSTS only when the cookie is Secure: the console is then served over HTTPS alone.
    app.add_middleware(SecurityHeaders, policy=PAGE_POLICY, hsts=settings.console_cookie_secure)
    app.add_middleware(RedMetricsMiddleware, service=settings.service_name)
    return app
