"""审计 (issue #28): the auditor searches the four services' audit trails and the console's own
(sign-ins, their failures and locks, sign-outs, sessions' ends) at once — by person, by what was
acted on (a ticket number, a task, an account), by action, by date — and exports what was found as
CSV. Each service answers for its own trail (GET /v1/audit) and decides whose records the person
reads: a town's auditor its town's, the county's every town's; the console reads its own from its
database under the same rule (`_console_records`)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import ValidationError

from townflow_shared.audit_api import PAGE_MAX, AuditQuery, search_page

from .. import labels
from ..accounts import Person
from ..errors import ServiceError
from ..services import SERVICES
from ..session_audit import SERVICE as CONSOLE
from ..task_lists import csv_line
from ..web import console_of, guard, render

router = APIRouter()
PAGE = 100  # records per service on the page
EXPORT_MAX = 20_000  # records per service in one export: a county-year of one person's actions fits


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _query(request: Request, person: Person) -> dict[str, Any]:
    """The services' query from the page's fields: dates are the town's days (its clock)."""
    given = request.query_params
    zone = console_of(request).services.names_for(person)
    tz = zone.zone if zone is not None else None
    since, until = _day(given.get("from")), _day(given.get("to"))
    return {
        "actor": _person_id(request, given.get("actor", "").strip()),
        "target": given.get("target", "").strip() or None,
        "action": given.get("action") or None,
        "town": given.get("town") or None if person.county_wide else None,
        "since": datetime.combine(since, time(), tz).isoformat() if since else None,
        "until": datetime.combine(until + timedelta(days=1), time(), tz).isoformat() if until else None,
    }


def _person_id(request: Request, text: str) -> str | None:
    """A staff id as typed, or the id of the one person of the county with that name."""
    if not text:
        return None
    names = console_of(request).services.names
    if names is not None:
        ids = {sid for town in names.towns() for sid, name in town.staff.items() if name == text}
        if len(ids) == 1:
            return ids.pop()
    return text


# One trail's next page: (records newest first, `before` of the page after it or None on the last).
Fetch = Callable[[int | None, int], Awaitable[tuple[list[dict[str, Any]], int | None]]]


def _trails(request: Request, person: Person, query: dict[str, Any]) -> list[Fetch]:
    """Where the records for `query` are: each service's GET /v1/audit, then the console's own."""
    services = console_of(request).services

    def of(service: str) -> Fetch:
        async def fetch(before: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
            page = await services.call(person, service, "GET", "/v1/audit",
                                       params={**query, "before": before, "limit": limit})
            return page["records"], page["next_before"]
        return fetch

    async def console(before: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        return await _console_page(request, person, query, before, limit)

    return [*(of(s) for s in SERVICES), console]


async def _console_page(request: Request, person: Person, query: dict[str, Any], before: int | None, limit: int,
                        ) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the console's own records for `query`, as a service's GET /v1/audit would answer
    it: a town's auditor reads the records about its town's accounts, the county's every one (the
    address locks and unknown logins, which name no town, included)."""
    console = console_of(request)
    town: str | None = query["town"] or person.town
    towns = None if person.county_wide and not query["town"] else [town] if town else []
    tz = next(iter(console.county.towns.values())).calendar.tz  # a county's towns keep one clock
    try:
        asked = AuditQuery(**{**query, "before": before, "limit": limit})
    except ValidationError as exc:
        raise ServiceError(422, "审计查询条件有误，请检查后重试。") from exc
    page = await search_page(request.app.state.pool, CONSOLE, towns, asked, tz)
    return [r.model_dump() for r in page.records], page.next_before


async def _pages(fetch: Fetch, limit: int) -> AsyncIterator[list[dict[str, Any]]]:
    """A trail's records a page at a time, `limit` in all at the most."""
    before, taken = None, 0
    while taken < limit:
        records, before = await fetch(before, min(PAGE_MAX, limit - taken))
        taken += len(records)
        yield records
        if before is None:
            return


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["at"])


async def _search(request: Request, person: Person, query: dict[str, Any], limit: int,
                  ) -> tuple[list[dict[str, Any]], list[ServiceError]]:
    """Every trail's records for `query` (`limit` of each), newest first across trails, and the refusals."""

    async def whole(fetch: Fetch) -> list[dict[str, Any]]:
        return [r async for page in _pages(fetch, limit) for r in page]

    answers = await asyncio.gather(*(whole(f) for f in _trails(request, person, query)), return_exceptions=True)
    records = [r for a in answers if isinstance(a, list) for r in a]
    errors = [a for a in answers if isinstance(a, ServiceError)]
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, ServiceError):
            raise answer
    records.sort(key=_at, reverse=True)
    return records, errors


class _Merge:
    """The trails' records newest first across trails, holding one page of each at a time: a
    county-year's export streams out as it is read rather than after every page of every trail."""

    def __init__(self, trails: list[Fetch], limit: int) -> None:
        self._pages = [_pages(f, limit) for f in trails]
        self._held: list[deque[dict[str, Any]]] = [deque() for _ in trails]
        self._done = [False] * len(trails)

    async def fill(self) -> None:
        """Each trail with nothing held reads its next page (all at once); a refusal is raised."""
        empty = [i for i, held in enumerate(self._held) if not held and not self._done[i]]
        pages = await asyncio.gather(*(anext(self._pages[i], None) for i in empty))
        for i, page in zip(empty, pages, strict=True):
            if page is None:
                self._done[i] = True
            else:
                self._held[i].extend(page)
                self._done[i] = not page  # an empty page is a trail's last

    async def records(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            await self.fill()
            heads = [i for i, held in enumerate(self._held) if held]
            if not heads:
                return
            newest = max(heads, key=lambda i: _at(self._held[i][0]))
            # Each trail is newest first, so everything held ahead of the others' heads goes out now.
            yield self._held[newest].popleft()


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    person = guard(request, "audit")
    records, errors = await _search(request, person, _query(request, person), PAGE)
    return render(request, "audit.html", title="审计", records=records, errors=errors, form=dict(request.query_params),
                  actions=labels.AUDIT_ACTIONS, services=labels.AUDIT_SYSTEMS, export=request.url.query)


COLUMNS = ("时间", "系统", "人员", "姓名", "角色", "镇", "操作", "操作代码", "对象类型", "对象", "结果", "结果代码",
           "客户端地址", "转发地址", "关联编号", "序号", "前一条哈希", "哈希")


@router.get("/audit.csv")
async def audit_export(request: Request) -> Response:
    """What the search finds, whole (up to EXPORT_MAX per trail), as CSV with a BOM for Excel,
    streamed as the trails' pages are read. A refusal of a first page is the refusal page; one
    later (the export already under way) ends the file with a line saying it is incomplete."""
    person = guard(request, "audit")
    merge = _Merge(_trails(request, person, _query(request, person)), EXPORT_MAX)
    try:
        await merge.fill()
    except ServiceError as error:
        return render(request, "refused.html", 502, title="审计", message=error.page_line)
    names = console_of(request).services.names

    async def rows() -> AsyncIterator[str]:
        yield "\ufeff" + csv_line(COLUMNS)
        batch: list[str] = []
        try:
            async for r in merge.records():
                here = names.of(r["town"]) if names is not None else None
                batch.append(csv_line((
                    here.when(r["at"]) if here else r["at"], labels.AUDIT_SYSTEMS.get(r["service"], r["service"]),
                    r["actor"], here.staff(r["actor"]) if here and r["actor"] else "",
                    "、".join(labels.ROLES.get(role, role) for role in r["roles"]), here.town(r["town"]) if here else "",
                    labels.AUDIT_ACTIONS.get(r["action"], r["action"]), r["action"],
                    labels.AUDIT_TARGETS.get(r["target_type"], r["target_type"]), r["target_id"],
                    labels.audit_outcome(r["outcome"]), r["outcome"], r["client"], r["forwarded_for"],
                    r["correlation_id"], r["seq"], r["prev_hash"], r["hash"])))
                if len(batch) == PAGE_MAX:
                    yield "".join(batch)
                    batch.clear()
        except ServiceError as error:
            batch.append(csv_line((f"（导出未完成：{error.page_line}）",)))
        yield "".join(batch)

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": "attachment; filename=audit.csv"})
