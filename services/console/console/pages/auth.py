"""Sign-in, sign-out and the home page (the first page of the person's roles)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..metrics import SIGN_INS
from ..oidc import signed_out_at
from ..session import Session
from ..session_audit import Where
from ..sign_in import Refused, check_sign_in
from ..web import checked_form, console_of, render, session_of, start_session, visible_pages

router = APIRouter()


def _local(path: str | None) -> str:
    """Only a path of this site is followed after sign-in (never `//elsewhere`)."""
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    pages = visible_pages(session_of(request).person, console_of(request).county)
    if session_of(request).person is None:
        return RedirectResponse("/signin", status_code=303)
    if not pages:
        return render(request, "refused.html", 403, title="无可用页面", message="您的岗位没有可用的页面。")
    return RedirectResponse(pages[0].path, status_code=303)


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str = "/") -> Response:
    return render(request, "signin.html", next=_local(next), login="", error=None,
                  provider=console_of(request).oidc is not None)


@router.post("/signin", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    form = await checked_form(request)
    if console_of(request).oidc is not None:  # the county's provider signs its staff in (pages/oidc.py)
        return render(request, "signin.html", 403, next="/", login="", error="请使用统一身份认证登录。", provider=True)
    login, password = str(form.get("login", "")).strip(), str(form.get("password", ""))
    next_path = _local(str(form.get("next", "/")))
    console = console_of(request)
    outcome = (await check_sign_in(console.accounts, console.failures, console.limits, login, password,
                                   Where.of(request))
               if login and password else Refused())
    if isinstance(outcome, Refused):
        SIGN_INS.labels("refused" if outcome.wait_seconds is None else "waiting").inc()
        error = "账号或密码不对。"
        if outcome.wait_seconds is not None:
            # The same words for an account and an address: neither tells whether the login exists.
            error = (f"登录失败次数过多，已暂停登录，请{-(-outcome.wait_seconds // 60)}分钟后再试。"
                     "如忘记口令，请联系本镇管理员。")
        return render(request, "signin.html", 429 if outcome.wait_seconds is not None else 401, next=next_path,
                      login=login, error=error)
    SIGN_INS.labels("ok").inc()
    start_session(request, Session(person=outcome))  # a new session: a new id and CSRF token
    return RedirectResponse(next_path, status_code=303)


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    """退出: the session ends on every replica (and at the county's provider, for a sign-in there).
    Nobody signed in (the session ended already): straight to the sign-in page, no form to check."""
    ended = session_of(request)
    if ended.person is None:
        return RedirectResponse("/signin", status_code=303)
    await checked_form(request)
    start_session(request, Session())
    return RedirectResponse(await signed_out_at(request, ended), status_code=303)
