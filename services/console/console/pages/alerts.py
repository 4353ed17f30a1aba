"""多头检查 on the 执法检查 pages: the enterprises the town's units visited separately within the
window, with their visits and the planned inspection a new need is proposed to join. Which
targets are flagged is enforcement's to say; the page lists what it answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..errors import ServiceError
from ..web import console_of, guard, render

router = APIRouter()


@router.get("/enforcement/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request) -> Response:
    person = guard(request, "enforcement")
    error = None
    alerts: list[dict[str, Any]] = []
    try:
        alerts = await console_of(request).services.call(person, "enforcement", "GET", "/v1/inspections/alerts")
    except ServiceError as exc:
        error = exc
    status = 200 if error is None else (error.status if error.status >= 400 else 502)
    return render(request, "alerts.html", status, title="多头检查提醒", alerts=alerts, error=error)
