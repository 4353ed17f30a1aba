"""Sign-in, sign-out and the home page (the first page of the person's roles)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..metrics import SIGN_INS
from ..oidc import signed_out_at
from ..web import checked_form, console_of, render, session_of, start_session, visible_pages

router = APIRouter()


def _local(path: str | None) -> str:
    """Only a path of this site is followed after sign-in (never `//elsewhere`)."""
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    pages = visible_pages(session_of(request).person)
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
    person = await console_of(request).accounts.sign_in(login, password) if login and password else None
    next_path = _local(str(form.get("next", "/")))
    if person is None:
        SIGN_INS.labels("refused").inc()
        return render(request, "signin.html", 401, next=next_path, login=login, error="账号或密码不对。")
    SIGN_INS.labels("ok").inc()
    start_session(request, console_of(request).codec.new(person))
    return RedirectResponse(next_path, status_code=303)


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    await checked_form(request)
    ended = session_of(request)
    start_session(request, console_of(request).codec.new())
    return RedirectResponse(await signed_out_at(request, ended), status_code=303)
