"""绩效考核: the red and black lists, scores, a chart of the three rates month by month per
module, alerts, and the bonus split with its export (CSV)."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import labels
from ..accounts import Person
from ..charts import line_chart
from ..errors import ServiceError
from ..web import console_of, guard, render

router = APIRouter()
MONTHS = 6
RATE_CSS = {"response": "r-response", "resolution": "r-resolution", "satisfaction": "r-satisfaction"}


def months_before(period: str, count: int) -> list[str]:
    """`count` months ending with `period` (YYYY-MM), oldest first."""
    year, month = (int(p) for p in period.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def rate_cells(score: dict[str, Any]) -> list[tuple[str, float | None]]:
    """A score's rates in the order of the table's columns (labels.APPRAISAL_RATES, the bulletin's):
    a rate appraisal does not give (an older release's, or a count with no denominator) is None."""
    rates = score.get("rates") or {}
    return [(key, rates.get(key)) for key in labels.APPRAISAL_RATES]


def _town_code(request: Request, person: Person, town: str | None) -> str | None:
    if person.town:
        return person.town
    county = console_of(request).county
    return town or next(iter(county.towns))


@router.get("/appraisal", response_class=HTMLResponse)
async def appraisal_page(request: Request, period: str | None = None, town: str | None = None,
                         pool: str = "50000.00") -> Response:
    person = guard(request, "appraisal")
    services = console_of(request).services
    town_code = _town_code(request, person, town)
    query = {"period": period or None, "town": None if person.town else town_code}
    context: dict[str, Any] = {"period": period, "pool": pool, "town": town_code, "error": None,
                               "bonus": None, "bonus_error": None,
                               "towns": [] if person.town else [(t.code, t.info.name)
                                                                for t in console_of(request).county.towns.values()]}
    try:
        rankings, scores, alerts = await asyncio.gather(
            services.call(person, "appraisal", "GET", "/v1/rankings", params=query),
            services.call(person, "appraisal", "GET", "/v1/scores", params=query),
            services.call(person, "appraisal", "GET", "/v1/alerts", params=query))
        shown = rankings["period"]
        months = months_before(shown, MONTHS)
        monthly = await asyncio.gather(*(services.call(person, "appraisal", "GET", "/v1/rates",
                                                       params={**query, "period": m, "group_by": "module"})
                                         for m in months))
    except ServiceError as exc:
        return render(request, "appraisal.html", exc.status if exc.status >= 400 else 502, title="绩效考核",
                      **context | {"error": exc})
    if person.has_any(frozenset({"appraisal_admin"})):
        try:
            context["bonus"] = await services.call(person, "appraisal", "GET", "/v1/bonus",
                                                   params={**query, "period": shown, "pool": pool})
        except ServiceError as exc:
            context["bonus_error"] = exc
    charts = []
    here = console_of(request).names.of(town_code)
    by_module: dict[str, dict[str, dict[str, Any]]] = {}
    for month, rows in zip(months, monthly, strict=True):
        for row in rows:
            by_module.setdefault(row["subject_id"], {})[month] = row
    for module, rows in sorted(by_module.items()):
        if not any(r["dispatched"] for r in rows.values()):
            continue
        series = [(words, RATE_CSS[key], [rows.get(m, {}).get(key) for m in months])
                  for key, words in labels.RATES.items()]
        charts.append(line_chart([m[2:] for m in months], series, here.unit(module),
                                 width=320, height=180))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in scores:
        grouped.setdefault(row["subject_type"], []).append(row)
    for rows in grouped.values():
        rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["subject_id"]))
    return render(request, "appraisal.html", title="绩效考核", **context | {
        "period": shown, "rankings": rankings, "scores": grouped, "alerts": alerts, "charts": charts,
        "rate_cells": rate_cells})


@router.get("/appraisal/bonus.csv")
async def bonus_export(request: Request, period: str | None = None, town: str | None = None,
                       pool: str = "50000.00") -> Response:
    """The bonus split as a spreadsheet for the finance office (UTF-8 with BOM: Excel reads it)."""
    person = guard(request, "appraisal")
    town_code = _town_code(request, person, town)
    try:
        split = await console_of(request).services.call(person, "appraisal", "GET", "/v1/bonus", params={
            "period": period or None, "town": None if person.town else town_code, "pool": pool})
    except ServiceError as exc:
        return render(request, "refused.html", exc.status if exc.status >= 400 else 502, title="奖金分配",
                      message=exc.page_line)
    here = console_of(request).names.of(town_code)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["月份", "工号", "姓名", "模块", "岗位系数", "积分", "权重", "金额（元）"])
    for s in split["shares"]:
        writer.writerow([split["period"], s["staff_id"], here.staff(s["staff_id"]), here.unit(s["module"]),
                         s["post_coefficient"], s["points"], s["weight"], s["share"]])
    writer.writerow([split["period"], "", "合计", "", "", "", "", split["total"]])
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="bonus-{split["town_code"]}-{split["period"]}.csv"'})
