"""审计 (issue #28): the auditor searches the four services' audit trails and the console's own
(sign-ins, their failures and locks, sign-outs, sessions' ends) at once — by person, by what was
acted on (a ticket number, a task, an account), by action, by date — and exports what was found as
CSV. Each service answers for its own trail (GET /v1/audit) and decides whose records the person
reads: a town's auditor its town's, the county's every town's; the console reads its own from its
database under the same rule (`_console_records`)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
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


async def _search(request: Request, person: Person, query: dict[str, Any], limit: int,
                  ) -> tuple[list[dict[str, Any]], list[ServiceError]]:
    """Every service's records for `query`, newest first across services, and the refusals."""
    services = console_of(request).services

    async def of(service: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        before = None
        while len(found) < limit:
            page = await services.call(person, service, "GET", "/v1/audit", params={
                **query, "before": before, "limit": min(500, limit - len(found))})
            found += page["records"]
            before = page["next_before"]
            if before is None:
                break
        return found

    answers = await asyncio.gather(*(of(s) for s in SERVICES), _console_records(request, person, query, limit),
                                   return_exceptions=True)
    records = [r for a in answers if isinstance(a, list) for r in a]
    errors = [a for a in answers if isinstance(a, ServiceError)]
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, ServiceError):
            raise answer
    records.sort(key=lambda r: datetime.fromisoformat(r["at"]), reverse=True)
    return records, errors


async def _console_records(request: Request, person: Person, query: dict[str, Any], limit: int,
                           ) -> list[dict[str, Any]]:
    """The console's own records for `query`, as a service's GET /v1/audit would answer them: a
    town's auditor reads the records about its town's accounts, the county's every one (the
    address locks and unknown logins, which name no town, included)."""
    console = console_of(request)
    town: str | None = query["town"] or person.town
    towns = None if person.county_wide and not query["town"] else [town] if town else []
    tz = next(iter(console.county.towns.values())).calendar.tz  # a county's towns keep one clock
    found: list[dict[str, Any]] = []
    before = None
    while len(found) < limit:
        try:
            asked = AuditQuery(**{**query, "before": before, "limit": min(PAGE_MAX, limit - len(found))})
        except ValidationError as exc:
            raise ServiceError(422, "审计查询条件有误，请检查后重试。") from exc
        page = await search_page(request.app.state.pool, CONSOLE, towns, asked, tz)
        found += [r.model_dump() for r in page.records]
        before = page.next_before
        if before is None:
            break
    return found


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
    """What the search finds, whole (up to EXPORT_MAX per service), as CSV with a BOM for Excel."""
    person = guard(request, "audit")
    records, errors = await _search(request, person, _query(request, person), EXPORT_MAX)
    if errors:
        return render(request, "refused.html", 502, title="审计", message=errors[0].page_line)
    names = console_of(request).services.names

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for r in records:
            here = names.of(r["town"]) if names is not None else None
            writer.writerow((
                here.when(r["at"]) if here else r["at"], labels.AUDIT_SYSTEMS.get(r["service"], r["service"]), r["actor"],
                here.staff(r["actor"]) if here and r["actor"] else "",
                "、".join(labels.ROLES.get(role, role) for role in r["roles"]), here.town(r["town"]) if here else "",
                labels.AUDIT_ACTIONS.get(r["action"], r["action"]), r["action"],
                labels.AUDIT_TARGETS.get(r["target_type"], r["target_type"]), r["target_id"],
                labels.audit_outcome(r["outcome"]), r["outcome"], r["client"], r["forwarded_for"],
                r["correlation_id"], r["seq"], r["prev_hash"], r["hash"]))
        yield "\ufeff" + out.getvalue()

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": "attachment; filename=audit.csv"})
