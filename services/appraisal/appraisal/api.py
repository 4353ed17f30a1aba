"""Appraisal's HTTP API (SPEC §5.5): scores, rates, rankings, bonus, alerts, ledgers, and the
parent departments' scores of seconded units. Every figure is read from what the consumer keeps
current (one town's one month of subject totals); no handler here recomputes a month."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from townflow_shared.auth import Principal, require, town_to_act, town_to_read
from townflow_shared.db import transaction
from townflow_shared.http import Runtime, unprocessable
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.town import Town

from . import bulletin as monthly
from . import flows, rules, store, whatif

router = APIRouter(tags=["appraisal"])
county_router = APIRouter(tags=["appraisal"])  # mounted only where the deployment serves a county
Reader = Annotated[Principal, Depends(require("appraisal_admin", "command_centre", "module_leader"))]
Admin = Annotated[Principal, Depends(require("appraisal_admin"))]
# The bonus split: the appraisal office (and the county roles, which hold every role); /v1/bonus and the bulletin.
BONUS_READERS = ("appraisal_admin",)
# 月度通报: the appraisal office, the town's leaders and command centre, and the county's roles.
BulletinReader = Annotated[Principal, Depends(require("appraisal_admin", "command_centre", "module_leader",
                                                     "county_reader", "county_admin"))]
CountyReader = Annotated[Principal, Depends(require("county_reader", "county_admin"))]
Period = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM; default this month")]


class SecondedScore(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    score: float = Field(ge=0, le=100)


class WhatIf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    rules: dict[str, Any] = Field(description="appraisal rules to lay over the town's (rules.yaml's appraisal section,"
                                              " or any part of it), e.g. {\"weights\": {\"response\": 0.6}}")


TownCode = Annotated[str | None, Query(description="the town's code; required of county roles")]


def _workbooks(request: Request) -> monthly.Workbooks:
    return request.app.state.workbooks  # type: ignore[no-any-return]


Workbooks = Annotated[monthly.Workbooks, Depends(_workbooks)]


def _town(runtime: ServiceRuntime, principal: Principal, code: str | None, acting: bool = False) -> Town:
    """The one town a call is about: a town's staff's own (another town: 404 on reading, 403 on
    acting); a county role names it with `?town=` (a one-town deployment's town by default)."""
    if code is None:
        code = principal.town or (only.code if (only := runtime.county.only_town) else None)
        if code is None:
            raise unprocessable([("town", "county roles name the town: ?town=<town code>")], where="query")
    (town_to_act if acting else town_to_read)(principal, code)
    town = runtime.county.town(code)
    if town is None:
        raise unprocessable([("town", f"{code!r} is not a town of this deployment")], where="query")
    return town


def _pool(pool: str) -> Decimal:
    try:
        amount = Decimal(pool)
    except InvalidOperation as exc:
        raise unprocessable([("pool", "not an amount")], where="query") from exc
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise unprocessable([("pool", "a non-negative amount in yuan with at most two decimals")], where="query")
    return amount


def _period(runtime: ServiceRuntime, tz: ZoneInfo, period: str | None) -> str:
    return period or rules.period_of(runtime.clock.now(), tz)


@router.get("/v1/scores")
async def scores(runtime: Runtime, principal: Reader, period: Period = None, town: TownCode = None,
                 subject_type: rules.SubjectType | None = None, subject_id: str | None = None) -> list[dict[str, Any]]:
    t = _town(runtime, principal, town)
    p = _period(runtime, t.calendar.tz, period)
    figures = await flows.month_figures(runtime.pool, t, p)
    department = await store.seconded_scores(runtime.pool, t.code, p)
    out = []
    for kind, figs in figures.items():
        if subject_type and kind != subject_type:
            continue
        for f in figs:
            if subject_id and f.subject_id != subject_id:
                continue
            extra: dict[str, object] = {"town_code": t.code}
            if kind == "seconded_unit":
                extra |= {"department_score": department.get(f.subject_id),
                          "final": rules.seconded_final(f.composite, department.get(f.subject_id),
                                                        t.rules.appraisal)}
            out.append(flows.as_dict(f, extra))
    return out


@router.get("/v1/rates")
async def rates(runtime: Runtime, principal: Reader, group_by: rules.SubjectType = "module",
                period: Period = None, town: TownCode = None) -> list[dict[str, Any]]:
    t = _town(runtime, principal, town)
    p = _period(runtime, t.calendar.tz, period)
    figures = await flows.month_figures(runtime.pool, t, p)
    return [{"subject_id": f.subject_id, "period": p, **f.rates, "dispatched": f.counts.dispatched,
             "rated": f.counts.rated} for f in figures[group_by]]


@router.get("/v1/rankings")
async def rankings(runtime: Runtime, principal: Reader, period: Period = None,
                   town: TownCode = None) -> dict[str, Any]:
    """红黑榜: the top and bottom five of each subject type of a town by composite."""
    t = _town(runtime, principal, town)
    p = _period(runtime, t.calendar.tz, period)
    figures = await flows.month_figures(runtime.pool, t, p)
    size = t.rules.appraisal.rankings_size
    result: dict[str, Any] = {"period": p, "town_code": t.code}
    for kind, figs in figures.items():
        red, black = rules.red_and_black_lists(figs, size)
        result[kind] = {"red": [{"subject_id": f.subject_id, "composite": f.composite, "rank": f.rank} for f in red],
                        "black": [{"subject_id": f.subject_id, "composite": f.composite, "rank": f.rank} for f in black]}
    return result


@county_router.get("/v1/county/rankings")
async def county_rankings(runtime: Runtime, principal: CountyReader, period: Period = None) -> dict[str, Any]:
    """The county's towns ranked by the composite of their matters and by each rate (SPEC §8)."""
    if not principal.county_wide:
        raise HTTPException(403, detail="the county's rankings are for the county roles")
    towns = list(runtime.county.towns.values())
    tz = ZoneInfo(runtime.county.info.timezone) if runtime.county.info else towns[0].calendar.tz  # county of one
    return await flows.county_rankings(runtime.pool, towns, _period(runtime, tz, period))


@router.get("/v1/bonus")
async def bonus(runtime: Runtime, principal: Annotated[Principal, Depends(require(*BONUS_READERS))],
                pool: Annotated[str, Query(description="the pool in yuan, e.g. 50000.00")],
                period: Period = None, town: TownCode = None) -> dict[str, Any]:
    """差异化分配: a town's pool split by post coefficient × max(points, 0), to the cent."""
    amount = _pool(pool)
    t = _town(runtime, principal, town)
    p = _period(runtime, t.calendar.tz, period)
    figures = await flows.month_figures(runtime.pool, t, p)
    points = {f.subject_id: f.points for f in figures["staff"]}
    weights = {s.id: s.post_coefficient * max(points.get(s.id, 0.0), 0.0) for s in t.staff.values()}
    try:
        shares = rules.bonus_split(amount, weights)
    except ValueError as exc:
        raise unprocessable([("pool", str(exc))], where="query") from exc
    rows = [{"staff_id": sid, "module": t.staff[sid].module, "post_coefficient": t.staff[sid].post_coefficient,
             "points": points.get(sid, 0.0), "weight": round(weights[sid], 4), "share": str(share)}
            for sid, share in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {"period": p, "town_code": t.code, "pool": str(amount), "total": str(sum(shares.values(), Decimal(0))),
            "shares": rows}


@router.get("/v1/alerts")
async def alerts(runtime: Runtime, principal: Reader, period: Period = None, town: TownCode = None,
                 staff_id: str | None = None) -> list[dict[str, Any]]:
    t = _town(runtime, principal, town)
    return [{"staff_id": a["staff_id"], "period": a["period"], "level": a["level"], "reasons": a["reasons"],
             "raised_at": a["raised_at"].isoformat(), "cause_event_id": str(a["cause_event_id"])}
            for a in await store.alerts(runtime.pool, t.code, period, staff_id)]


@router.get("/v1/scores/{subject_type}/{subject_id}/{period}/ledger")
async def ledger(subject_type: rules.SubjectType, subject_id: str,
                 period: str,
                 runtime: Runtime, principal: Reader, town: TownCode = None) -> Response:
    """Every points entry of a subject's month with the event behind it, for audit."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        raise unprocessable([("period", "period is YYYY-MM")], where="path")
    t = _town(runtime, principal, town)
    entries = await flows.ledger(runtime.pool, t, subject_type, subject_id, period)

    def body() -> bytes:  # as long as the month is busy: rendered off the event loop too
        return json.dumps({
            "town_code": t.code, "subject_type": subject_type, "subject_id": subject_id, "period": period,
            "points": round(sum(e.points for e in entries), 4),
            "entries": [{"reason": e.reason, "points": e.points, "event_id": e.event_id, "ref": e.ref,
                         "staff_id": e.staff_id} for e in entries]}, ensure_ascii=False).encode()

    return Response(await asyncio.to_thread(body), media_type="application/json")


@router.post("/v1/seconded-scores", status_code=201)
async def post_seconded_score(body: SecondedScore, runtime: Runtime, principal: Admin,
                              town: TownCode = None) -> dict[str, Any]:
    """The parent county department's score of a seconded unit of a town (双向考评)."""
    t = _town(runtime, principal, town, acting=True)
    module = t.modules.get(body.unit)
    if module is None or module.kind != "seconded":
        raise unprocessable([("unit", f"{body.unit!r} is not a seconded unit of this town")])
    async with transaction(runtime.pool) as conn:
        await store.post_seconded_score(conn, t.code, body.unit, body.period, body.score, principal.sub,
                                        runtime.clock.now())
    figures = await flows.month_figures(runtime.pool, t, body.period)
    town_score = next((f.composite for f in figures["seconded_unit"] if f.subject_id == body.unit), None)
    return {"town_code": t.code, "unit": body.unit, "period": body.period, "town_score": town_score,
            "department_score": body.score, "final": rules.seconded_final(town_score, body.score, t.rules.appraisal)}


@router.post("/v1/what-if")
async def what_if(body: WhatIf, runtime: Runtime, principal: Admin, town: TownCode = None) -> dict[str, Any]:
    """Every figure of a month under other rules, beside the live ones, subject by subject; the
    live figures are only read (SPEC §10)."""
    t = _town(runtime, principal, town)
    try:
        other = whatif.rules_with(t.rules.appraisal, body.rules)
    except ValidationError as exc:
        raise unprocessable([(".".join(str(x) for x in ("rules", *e["loc"])), e["msg"]) for e in exc.errors()]) from exc
    return await whatif.what_if(runtime.pool, t, body.period, other)


@router.get("/v1/bulletin", responses={200: {"content": {monthly.XLSX: {}, monthly.CSV: {}}},
                                       404: {"description": "the month holds no figures"}})
async def bulletin(runtime: Runtime, workbooks: Workbooks, principal: BulletinReader, period: Period = None,
                   town: TownCode = None,
                   file_format: Annotated[Literal["xlsx", "csv"], Query(alias="format")] = "xlsx",
                   pool: Annotated[str | None, Query(description="a bonus pool in yuan: the split's amounts")] = None,
                   ) -> Response:
    """月度通报: rates by module, village and staff, the red and black lists, the alerts and the
    bonus split of a town's month, as a workbook or one CSV of its sheets."""
    amount = None if pool is None else _pool(pool)
    t = _town(runtime, principal, town)
    p = _period(runtime, t.calendar.tz, period)
    figures = await flows.month_figures(runtime.pool, t, p)
    if not any(figures.values()):
        raise HTTPException(404, detail=f"no figures for {p}")
    alerts = [dict(a) for a in await store.alerts(runtime.pool, t.code, p, None)]
    made_at = runtime.clock.now()
    with_bonus = principal.has_any(BONUS_READERS, reading=True)  # leaders get the rest
    sheets = monthly.sheets(t, p, figures, alerts, amount, with_bonus)  # a row per subject of one town's month
    if file_format == "csv":
        content = await asyncio.to_thread(monthly.to_csv, sheets)  # the csv module writes in C
    else:
        content = await workbooks.xlsx(f"{t.info.name} {p} 月度通报", made_at, sheets)
    return Response(content, media_type=monthly.XLSX if file_format == "xlsx" else monthly.CSV,
                    headers={"content-disposition": f'attachment; filename="{monthly.filename(t, p, file_format)}"'})
