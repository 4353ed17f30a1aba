"""任务查询 (issue #27): the board's and 我的任务's search, filters and pages, all in the address
(GET forms: a list is bookmarkable), read from dispatch's task search a page at a time; and any
filtered list as a spreadsheet (UTF-8 with BOM and Chinese headers: Excel opens it as is)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from . import labels
from .accounts import Person
from .errors import ServiceError
from .names import TownNames
from .web import console_of

PAGE_SIZE = 20
EXPORT_MAX = 5000  # rows of one spreadsheet: a busy town's five months
EXPORT_PAGE = 200  # dispatch's largest page
# The address's members a list reads (each passed on to dispatch as it came, so dispatch's own
# refusal names a wrong one), and the console's own: the phase, yes/no boxes and the page number.
PASSED = ("q", "item", "village", "assignee", "module", "status", "colour")
PHASES = {"open": "在办", "ended": "已结", "all": "全部"}
FLAGS = ("overdue", "reopened")


@dataclass(frozen=True)
class TaskList:
    """What a list's address asks: the filters as the form shows them, and the page."""

    filters: dict[str, str]
    phase: str = "open"
    page: int = 1
    town: str = ""  # a county role's town, kept in the list's addresses
    scope: str = ""  # 我的任务's: the person's own, or the module's
    fixed: dict[str, str] = field(default_factory=dict)  # what the page itself narrows to (the person's own)

    @classmethod
    def of(cls, query: Mapping[str, str], fixed: Mapping[str, str] | None = None) -> TaskList:
        filters = {k: query[k].strip() for k in (*PASSED, *FLAGS) if query.get(k, "").strip()}
        phase = query.get("phase", "open")
        page = query.get("page", "1")
        return cls(filters=filters, phase=phase if phase in PHASES else "open",
                   page=int(page) if page.isdigit() and 0 < int(page) < 10_000 else 1,
                   town=query.get("town", "").strip(), scope=query.get("scope", "").strip(), fixed=dict(fixed or {}))

    def params(self, town: str | None, offset: int, limit: int) -> dict[str, Any]:
        """Dispatch's query: a box ticked is `true`; 全部 is no phase."""
        params: dict[str, Any] = {k: v for k, v in self.filters.items() if k in PASSED}
        params |= {k: "true" for k in FLAGS if self.filters.get(k)}
        params |= self.fixed
        if self.phase != "all":
            params["phase"] = self.phase
        if town:
            params["town"] = town
        return params | {"offset": offset, "limit": limit}

    def address(self, path: str, **changes: Any) -> str:
        """This list's address with `changes` (another page, another phase)."""
        query = {"town": self.town, "scope": self.scope, **self.filters, "phase": self.phase, "page": str(self.page), **{k: str(v) for k, v in changes.items()}}
        if query.get("page") == "1":
            del query["page"]
        return f"{path}?{urlencode({k: v for k, v in query.items() if v})}"


async def search(request: Request, person: Person, wanted: TaskList, town: str | None,
                 extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The page of tasks the list asks for, with the total and the pages."""
    params = wanted.params(town, (wanted.page - 1) * PAGE_SIZE, PAGE_SIZE) | dict(extra or {})
    found = await console_of(request).services.call(person, "dispatch", "GET", "/v1/task-search", params=params)
    pages = max(1, -(-found["total"] // PAGE_SIZE))
    return {"tasks": found["tasks"], "total": found["total"], "page": wanted.page, "pages": pages}


def choices(request: Request, town: str | None) -> dict[str, list[tuple[str, str]]]:
    """The filters' options by name (code, name), from the town's configuration; a county role
    without a town picks among what every town names alike."""
    county = console_of(request).county
    here = county.town(town) if town else None
    names = console_of(request).names.of(town)
    return {
        "status": list(labels.TASK_STATUSES.items()),
        "colour": list(labels.COLOURS.items()),
        "item": sorted(names.item.items()),
        "village": sorted(names.village.items()),
        "assignee": sorted(names.staff.items()),
        "module": sorted((m.code, m.name) for m in here.modules.values()) if here else [],
    }


HEADERS = ["受理编号", "颜色", "事项", "村（社区）", "位置", "对象", "承办人", "承办模块", "状态", "派单时间", "办结时限",
           "办结时间", "是否超期", "重办次数", "退回原因", "镇"]


async def export(request: Request, person: Person, wanted: TaskList, town: str | None, filename: str) -> Response:
    """Every task of the filtered list (up to EXPORT_MAX), newest first, as a spreadsheet, streamed
    page by page as dispatch answers: its first byte comes after dispatch's first page, however long
    the list (a town's 1,000 open tasks were 200 ms to a first byte when the file was made whole).
    A refusal of the first page is raised (the caller's refusal page); one later, with the file
    under way, ends it with a line saying it is incomplete, as the audit's export does."""
    services = console_of(request).services
    names_of = console_of(request).names.of

    async def page_at(offset: int) -> dict[str, Any]:
        return await services.call(person, "dispatch", "GET", "/v1/task-search",
                                   params=wanted.params(town, offset, EXPORT_PAGE))

    first = await page_at(0)

    async def lines() -> AsyncIterator[str]:
        yield "\ufeff" + csv_line(HEADERS)
        found, sent = first, 0
        while True:
            page = found["tasks"][:EXPORT_MAX - sent]
            yield "".join(csv_line([cell(c) for c in line]) for line in rows(page, names_of))
            sent += len(page)
            if not page or sent >= min(found["total"], EXPORT_MAX):
                return
            try:
                found = await page_at(sent)
            except ServiceError as error:
                yield csv_line([f"（导出未完成：{error.page_line}）"])
                return

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def rows(tasks: Iterable[Mapping[str, Any]], names_of: Any) -> Iterable[list[str]]:
    for t in tasks:
        here: TownNames = names_of(t["town_code"])
        yield [t["ticket_no"], labels.COLOURS.get(t["colour"], t["colour"]), here.item(t["item_code"]),
               here.village(t["village"]), t["location"], t["target"] or "", here.staff(t["assignee"]),
               here.unit(t["lead_module"]), labels.TASK_STATUSES.get(t["status"], t["status"]),
               here.when(t["dispatched_at"]), here.when(t["resolve_by"]),
               here.when(t["completed_at"]) if t["completed_at"] else "", "是" if t["overdue"] else "否",
               str(t["reopen_count"]), t["return_reason"] or "", here.town(t["town_code"])]


def cell(text: str) -> str:
    """Text as a spreadsheet cell that stays text: Excel would run a cell starting = + - @ (or a
    tab or carriage return before one) as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_line(values: Iterable[Any]) -> str:
    """One spreadsheet line (csv's quoting, its \\r\\n ending)."""
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()
