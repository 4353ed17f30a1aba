"""Appraisal's HTTP API (SPEC §5.5): scores, rates, rankings, bonus, alerts, ledgers, the parent
departments' scores of seconded units, what-if and the monthly bulletin. Thin adapters: the
request validated (models.py), the command handler (flows.py) run, its result answered. Every
figure is read from what the consumer keeps current; no route recomputes a month."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from townflow_shared import problems
from townflow_shared.auth import Principal, require
from townflow_shared.problems import responses
from townflow_shared.types import Identifier

from . import bulletin as monthly
from . import flows, models, rules
from .refusals import CODES

router = APIRouter(tags=["appraisal"])
county_router = APIRouter(tags=["appraisal"])  # mounted only where the deployment serves a county


async def _deps(request: Request) -> flows.Deps:
    """`async` although it never waits: FastAPI would run a plain `def` in a worker thread."""
    return request.app.state.deps  # type: ignore[no-any-return]


Deps = Annotated[flows.Deps, Depends(_deps)]
Reader = Annotated[Principal, Depends(require("appraisal_admin", "command_centre", "module_leader"))]
Admin = Annotated[Principal, Depends(require("appraisal_admin"))]
BonusReader = Annotated[Principal, Depends(require(*flows.BONUS_READERS))]
# 月度通报: the appraisal office, the town's leaders and command centre, and the county's roles.
BulletinReader = Annotated[Principal, Depends(require("appraisal_admin", "command_centre", "module_leader",
                                                     "county_reader", "county_admin"))]
CountyReader = Annotated[Principal, Depends(require("county_reader", "county_admin"))]
Period = Annotated[models.Period | None, Query(description="YYYY-MM; default this month")]
TownCode = Annotated[models.TownCode | None, Query(description="the town's code; required of county roles")]

# Who may call, and which town: every route's refusals before its own.
CALLER = problems.AUTHENTICATED  # the refusals of any route that reads a token
ONE_TOWN: tuple[problems.Code, ...] = (problems.TOWN_NOT_FOUND, problems.TOWN_NOT_SERVED, problems.TOWN_REQUIRED)
MONTH: tuple[problems.Code, ...] = (CODES["period.malformed"], CODES["period.out_of_range"])


@router.get("/v1/scores", response_model=list[models.Score], response_model_exclude_unset=True,
            responses=responses(*CALLER, *ONE_TOWN, *MONTH))
async def scores(deps: Deps, principal: Reader, period: Period = None, town: TownCode = None,
                 subject_type: rules.SubjectType | None = None,
                 subject_id: Annotated[Identifier | None, Query()] = None) -> list[dict[str, object]]:
    return await flows.scores(deps, principal, flows.ScoresOf(town, period, subject_type, subject_id))


@router.get("/v1/rates", response_model=list[models.RateRow], responses=responses(*CALLER, *ONE_TOWN, *MONTH))
async def rates(deps: Deps, principal: Reader, group_by: rules.SubjectType = "module",
                period: Period = None, town: TownCode = None) -> list[dict[str, object]]:
    return await flows.rates(deps, principal, flows.RatesOf(town, period, group_by))


@router.get("/v1/rankings", response_model=models.Rankings, responses=responses(*CALLER, *ONE_TOWN, *MONTH))
async def rankings(deps: Deps, principal: Reader, period: Period = None, town: TownCode = None) -> dict[str, object]:
    """红黑榜: the top and bottom five of each subject type of a town by composite."""
    return await flows.rankings(deps, principal, flows.MonthOf(town, period))


@county_router.get("/v1/county/rankings", response_model=models.CountyRankings,
                   responses=responses(*CALLER, CODES["ranking.county_only"], *MONTH))
async def county_rankings(deps: Deps, principal: CountyReader, period: Period = None) -> dict[str, object]:
    """The county's towns ranked by the composite of their matters and by each rate (SPEC §8)."""
    return await flows.county_rankings(deps, principal, flows.MonthOf(None, period))


@router.get("/v1/bonus", response_model=models.Bonus,
            responses=responses(*CALLER, *ONE_TOWN, *MONTH, CODES["bonus.no_weights"]))
async def bonus(deps: Deps, principal: BonusReader,
                pool: Annotated[models.Pool, Query(description="the pool in yuan, e.g. 50000.00")],
                period: Period = None, town: TownCode = None) -> dict[str, object]:
    """差异化分配: a town's pool split by post coefficient × max(points, 0), to the cent."""
    return await flows.bonus(deps, principal, flows.BonusOf(town, period, pool))


@router.get("/v1/hotspots", response_model=models.Hotspots, responses=responses(*CALLER, *ONE_TOWN, *MONTH))
async def hotspots(deps: Deps, principal: BulletinReader, period: Period = None,
                   town: TownCode = None) -> dict[str, object]:
    """热点 (issue #30): a town's month's located matters per grid cell and item, busiest first, and
    the cells that rose most over the month before; as the monthly bulletin's sheet 热点网格."""
    return await flows.hotspots(deps, principal, flows.MonthOf(town, period))


@router.get("/v1/alerts", response_model=list[models.Alert], responses=responses(*CALLER, *ONE_TOWN, *MONTH))
async def alerts(deps: Deps, principal: Reader, period: Period = None, town: TownCode = None,
                 staff_id: Annotated[Identifier | None, Query()] = None) -> list[dict[str, object]]:
    return await flows.alerts(deps, principal, flows.AlertsOf(town, period, staff_id))


@router.get("/v1/scores/{subject_type}/{subject_id}/{period}/ledger", response_model=models.Ledger,
            responses=responses(*CALLER, *ONE_TOWN, *MONTH))
async def ledger(subject_type: rules.SubjectType, subject_id: Annotated[Identifier, Path()],
                 period: Annotated[models.Period, Path()],
                 deps: Deps, principal: Reader, town: TownCode = None) -> Response:
    """Every points entry of a subject's month with the event behind it, for audit."""
    found = await flows.ledger(deps, principal, flows.LedgerOf(subject_type, subject_id, period, town))

    def body() -> bytes:  # as long as the month is busy: rendered off the event loop too
        return json.dumps({
            "town_code": found.town_code, "subject_type": found.subject_type, "subject_id": found.subject_id,
            "period": found.period, "points": round(sum(e.points for e in found.entries), 4),
            "entries": [{"reason": e.reason, "points": e.points, "event_id": e.event_id, "ref": e.ref,
                         "staff_id": e.staff_id} for e in found.entries]}, ensure_ascii=False).encode()

    return Response(await asyncio.to_thread(body), media_type="application/json")


@router.post("/v1/seconded-scores", status_code=201, response_model=models.SecondedScorePosted,
             responses=responses(*CALLER, problems.TOWN_NOT_YOURS, problems.TOWN_NOT_SERVED, problems.TOWN_REQUIRED, *MONTH,
                                 CODES["score.unit_not_seconded"]))
async def post_seconded_score(body: models.SecondedScore, deps: Deps, principal: Admin,
                              town: TownCode = None) -> dict[str, object]:
    """The parent county department's score of a seconded unit of a town (双向考评)."""
    return await flows.post_seconded_score(deps, principal, flows.PostSecondedScore(
        body.unit, body.period, body.score, town))


@router.post("/v1/what-if", response_model=models.WhatIfResult, response_model_exclude_unset=True,
             responses=responses(*CALLER, *ONE_TOWN, *MONTH, CODES["whatif.rule_invalid"]),
             openapi_extra={"x-audit-action": "what_if.run"})  # a POST that changes nothing: the audit's name
async def what_if(body: models.WhatIf, deps: Deps, principal: Admin, town: TownCode = None) -> dict[str, object]:
    """Every figure of a month under other rules, beside the live ones, subject by subject; the
    live figures are only read (SPEC §10)."""
    return await flows.what_if(deps, principal, flows.WhatIfOf(body.period, body.rules.changes(), town))


_FILE = {"schema": {"type": "string", "format": "binary"}}


@router.get("/v1/bulletin", response_class=Response, response_model=None,
            responses={200: {"description": "the bulletin, a workbook or a CSV of its sheets",
                             "content": {monthly.XLSX: _FILE, monthly.CSV: _FILE}},
                       **responses(*CALLER, *ONE_TOWN, *MONTH, CODES["period.no_figures"], CODES["bulletin.workbook_unavailable"])})
async def bulletin(deps: Deps, principal: BulletinReader, period: Period = None, town: TownCode = None,
                   file_format: Annotated[models.BulletinFormat, Query(alias="format")] = "xlsx",
                   pool: Annotated[models.Pool | None,
                                   Query(description="a bonus pool in yuan: the split's amounts")] = None,
                   ) -> Response:
    """月度通报: rates by module, village and staff, the red and black lists, the alerts and the
    bonus split of a town's month, as a workbook or one CSV of its sheets."""
    made = await flows.bulletin(deps, principal, flows.BulletinOf(town, period, file_format, pool))
    return Response(made.content, media_type=made.media_type,
                    headers={"content-disposition": f'attachment; filename="{made.filename}"'})
