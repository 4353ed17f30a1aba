"""办事进度: a citizen's matter by ticket number and access code, and its one rating. No sign-in;
the forms still carry the (anonymous) session's CSRF token. The code goes in a POST, not the
address, so it stays out of browser history and access logs. Intake limits wrong codes per
address, so the citizen's address goes with each call (X-Forwarded-For); a ticket under attack
asks for the last four of the citizen's phone too, and the form then has the field."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..errors import ServiceError, beside
from ..refusals import status_line, words
from ..web import checked_form, console_of, render
from .photos import inline_thumbnail, refused, streamed

router = APIRouter()


def _citizen(request: Request) -> dict[str, str]:
    """The citizen's address, for intake's per-address limit on wrong codes."""
    return {"X-Forwarded-For": request.client.host} if request.client is not None else {}


async def _lookup(request: Request, ticket: str, code: str,
                  tail: str) -> tuple[dict[str, Any] | None, ServiceError | None]:
    try:
        view = await console_of(request).services.call(None, "intake", "GET", f"/v1/requests/{ticket}",
                                                       params={"code": code, "contact_tail": tail},
                                                       headers=_citizen(request))
        return view, None
    except ServiceError as exc:
        return None, exc


async def _thumbnails(request: Request, ticket: str, code: str, tail: str,
                      view: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The matter's photos that intake lists to the citizen (where the town shows them), each with
    its thumbnail inline: read with the code here, since the code is never put in an address."""
    photos = [p for p in (view or {}).get("photos") or () if isinstance(p, dict) and p.get("attachment_id")]
    if not photos:
        return []
    services = console_of(request).services
    inline = await asyncio.gather(*(inline_thumbnail(services, ticket, str(p["attachment_id"]), code, tail,
                                                     _citizen(request)) for p in photos))
    return [{**p, "stage": p.get("stage") or "filed", "inline": src} for p, src in zip(photos, inline, strict=True) if src is not None]


async def _page(request: Request, ticket: str, code: str, tail: str, view: dict[str, Any] | None,
                error: ServiceError | None, rated: bool = False) -> Response:
    status = 200 if error is None else (error.status if error.status >= 400 else 502)
    photos = await _thumbnails(request, ticket, code, tail, view)
    return render(request, "status.html", status, title="办事进度", ticket=ticket, code=code, contact_tail=tail,
                  view=view, error=error, rated=rated, photos=photos)


def _asked(form: Any) -> tuple[str, str, str]:
    return (str(form.get("ticket", "")).strip(), str(form.get("code", "")).strip().upper(),
            str(form.get("contact_tail", "")).strip())


@router.get("/status", response_class=HTMLResponse)
async def status_page(request: Request, ticket: str = "") -> Response:
    return await _page(request, ticket, "", "", None, None)


@router.post("/status", response_class=HTMLResponse)
async def status_lookup(request: Request) -> Response:
    form = await checked_form(request)
    ticket, code, tail = _asked(form)
    if not ticket:
        return await _page(request, ticket, code, tail, None,
                     ServiceError(422, status_line(422), {"ticket": beside("ticket", words("value.missing"))}))
    view, error = await _lookup(request, ticket, code, tail)
    return await _page(request, ticket, code, tail, view, error)


@router.post("/status/rating", response_class=HTMLResponse)
async def rate(request: Request) -> Response:
    form = await checked_form(request)
    ticket, code, tail = _asked(form)
    rating = str(form.get("rating", ""))
    rating_error = None
    try:
        await console_of(request).services.call(None, "intake", "POST", f"/v1/requests/{ticket}/rating",
                                                params={"code": code, "contact_tail": tail}, json={"rating": rating},
                                                headers=_citizen(request))
    except ServiceError as exc:
        rating_error = exc
    view, error = await _lookup(request, ticket, code, tail)
    return await _page(request, ticket, code, tail, view, rating_error or error, rated=rating_error is None)


@router.post("/status/photo")
async def status_photo(request: Request) -> Response:
    """The full photo the citizen tapped, read with the access code posted beside it (a form, so
    the code stays out of the address); intake checks the code as for the status."""
    form = await checked_form(request)
    ticket, code, tail = _asked(form)
    attachment_id = str(form.get("photo", "")).strip()
    try:
        return await streamed(console_of(request).services, None, "intake",
                              f"/v1/requests/{ticket}/photos/{attachment_id}",
                              {"variant": "photo", "code": code, "contact_tail": tail}, _citizen(request))
    except ServiceError as exc:
        return refused(request, exc)
