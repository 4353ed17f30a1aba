"""The console's own refusals as pages in its layout, in Chinese: an address it does not have
(404), a method an address does not take (405), a query it cannot read, and its own failure (500).
Never FastAPI's `{"detail": "Not Found"}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Scope

from townflow_shared.problems import Refusal

from .refusals import status_line, words
from .web import render

log = logging.getLogger(__name__)

NOT_FOUND = ("找不到这个页面", "您要找的页面不存在，可能是网址有误或页面已经调整。请从首页进入。")
NOT_ALLOWED = ("不能这样打开这个页面", "这个地址不能这样打开，请从页面上的按钮或链接操作。")
BAD_QUERY = ("网址有误", "网址中的查询条件不对，请从页面上的链接或表单进入。")
FAILED = ("系统出错了", "系统处理时出了错，请稍后再试。如果反复出现，请联系本镇管理员。")
# Shown when even the layout cannot be drawn: no template, no session, nothing that can fail again.
BARE = ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>系统出错了 · 镇务通</title></head>'
        '<body><h1>系统出错了</h1><p>系统处理时出了错，请稍后再试。</p><p><a href="/">返回首页</a></p></body></html>')


def page(request: Request, status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    try:
        answer = render(request, "refused.html", status, title=title, message=message)
    except Exception:
        log.exception("the console's refusal page could not be drawn")
        answer = HTMLResponse(BARE, status_code=status)
    answer.headers.update(headers or {})
    return answer


async def _http_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    if exc.status_code == 404:
        title, message = NOT_FOUND
    elif exc.status_code == 405:
        title, message = NOT_ALLOWED
    else:
        title, message = "未能办理", status_line(exc.status_code)
    return page(request, exc.status_code, title, message, dict(exc.headers or {}))


async def _query_refused(request: Request, exc: Exception) -> Response:
    return page(request, 422, *BAD_QUERY)


async def _failed(request: Request, exc: Exception) -> Response:
    # Starlette logs the exception itself (and re-raises it after this answer).
    return page(request, 500, *FAILED)


def edge_refusal(scope: Scope, refusal: Refusal) -> ASGIApp:
    """What the shared input guard refuses before any page runs (a body too large or too slow, a
    URL too long), drawn as a page signed out: a person sees Chinese, not a problem document."""
    message = words(refusal.code.name, refusal.params, status=refusal.status, field=refusal.field)
    return page(Request(scope), refusal.status, "未能办理", message, refusal.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_refused)
    app.add_exception_handler(RequestValidationError, _query_refused)
    app.add_exception_handler(Exception, _failed)
