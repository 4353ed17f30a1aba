"""Sign-in through the county's OIDC provider (console/oidc.py): to the provider's sign-in page, and
back to the callback, which starts the session as the local sign-in does."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import session_audit
from ..metrics import SIGN_INS
from ..oidc import (
    CALLBACK,
    PENDING_COOKIE,
    PENDING_SECONDS,
    PendingSignIn,
    ProviderUnavailable,
    SignInRefused,
)
from ..session import Session
from ..session_audit import Account, Where
from ..web import console_of, render, start_session
from .auth import _local

router = APIRouter()
log = logging.getLogger(__name__)
UNAVAILABLE = "暂时无法连接统一身份认证，请稍后再试。"


@router.get("/signin/oidc", response_class=HTMLResponse)
async def to_provider(request: Request, next: str = "/") -> Response:
    oidc = console_of(request).oidc
    if oidc is None:
        return RedirectResponse("/signin", status_code=303)
    pending = PendingSignIn.begin(_local(next))
    try:
        url = await oidc.provider.authorization_url(pending, oidc.address(request, CALLBACK))
    except ProviderUnavailable as exc:
        log.warning("OIDC provider unavailable: %s", exc)
        return render(request, "signin.html", 503, next=pending.next_path, login="", error=UNAVAILABLE,
                      provider=True)
    response = RedirectResponse(url, status_code=303)
    # SameSite=Lax: the provider's redirect back is a top-level GET, which carries it.
    response.set_cookie(PENDING_COOKIE, oidc.pending.encode(pending), max_age=PENDING_SECONDS, path=CALLBACK,
                        httponly=True, samesite="lax", secure=console_of(request).settings.console_cookie_secure)
    return response


@router.get(CALLBACK, response_class=HTMLResponse)
async def from_provider(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    console = console_of(request)
    if console.oidc is None:
        return RedirectResponse("/signin", status_code=303)
    oidc = console.oidc
    pending = oidc.pending.decode(request.cookies.get(PENDING_COOKIE))
    where = Where.of(request)

    async def audit(outcome: str, account: Account = Account()) -> None:  # noqa: B008 - a frozen nobody
        await console.records.write(lambda at: [session_audit.record(session_audit.OIDC_SIGN_IN, at, account, where,
                                                                     outcome)])

    response: Response
    try:
        if pending is None or not state or state != pending.state:
            raise SignInRefused("登录已过期或来源不明，请重新登录。", "no pending sign-in of this state")
        if error or not code:
            raise SignInRefused("统一身份认证未完成登录，请重新登录。", f"provider error {error!r}")
        signed = await oidc.provider.finish(code, pending, oidc.address(request, CALLBACK), oidc.claims,
                                            console.county)
    except SignInRefused as exc:
        SIGN_INS.labels("refused").inc()
        log.info("OIDC sign-in refused: %s", exc)
        await audit(session_audit.OIDC_REFUSED)
        response = render(request, "signin.html", 401, next=pending.next_path if pending else "/", login="",
                          error=exc.message, provider=True)
    except ProviderUnavailable as exc:
        log.warning("OIDC provider unavailable: %s", exc)
        await audit(session_audit.OIDC_UNAVAILABLE)
        response = render(request, "signin.html", 503, next=pending.next_path if pending else "/", login="",
                          error=UNAVAILABLE, provider=True)
    else:
        SIGN_INS.labels("ok").inc()
        await audit(session_audit.OK, Account.of(signed.person, signed_in=True))
        oidc.tokens.signed_in(signed)
        start_session(request, Session(person=signed.person, provider=signed.grant))
        response = RedirectResponse(pending.next_path if pending else "/", status_code=303)
    response.delete_cookie(PENDING_COOKIE, path=CALLBACK)  # a state is answered once
    return response
