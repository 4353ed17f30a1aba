"""消息记录 (issue #31): the command centre reads what notify told whom, on which channel, and what
still waits and why — notify's delivery log (GET /v1/deliveries), read with the person's token as
every other service is: their town's, a county role's every town's. Newest first, filtered by
status, a page at a time; names, statuses and reasons in words (labels.py), times on the town's clock."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import labels
from ..errors import ServiceError
from ..web import console_of, guard, render

router = APIRouter()
PAGE_SIZE = 50


def _address(status: str, page: int) -> str:
    query = {"status": status, "page": str(page) if page > 1 else ""}
    return "/deliveries?" + urlencode({k: v for k, v in query.items() if v}) if any(query.values()) else "/deliveries"


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries_page(request: Request, status: str = "", page: str = "1") -> Response:
    """A page of the log: notify is asked for one more than a page, to know whether another follows."""
    person = guard(request, "deliveries")
    status = status if status in labels.DELIVERY_FILTERS else ""
    number = int(page) if page.isdigit() and 0 < int(page) < 10_000 else 1
    rows: list[dict[str, Any]] = []
    error = None
    try:
        rows = await console_of(request).services.call(person, "notify", "GET", "/v1/deliveries", params={
            "status": status or None, "limit": PAGE_SIZE + 1, "offset": (number - 1) * PAGE_SIZE})
    except ServiceError as exc:
        error = exc
    return render(request, "deliveries.html", title="消息记录", rows=rows[:PAGE_SIZE], error=error, status=status,
                  page=number, more=len(rows) > PAGE_SIZE, address=_address)
