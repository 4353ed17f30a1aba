"""Enforcement's HTTP API (SPEC §5.4): combined inspections, cases, random inspection plans."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from townflow_shared.auth import Principal, require, town_to_act, town_to_read
from townflow_shared.checks import present
from townflow_shared.db import transaction
from townflow_shared.events import (
    CaseStep,
    Finding,
    InspectionDone,
    InspectionDoneData,
    Outcome,
    PlannedTarget,
    PlanPublished,
    PlanPublishedData,
)
from townflow_shared.http import Runtime, unprocessable
from townflow_shared.outbox import enqueue
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.telemetry import link_to
from townflow_shared.town import Town

from . import flows, rules, store

router = APIRouter(tags=["enforcement"])
Officer = Annotated[Principal, Depends(require("officer", "module_leader"))]
Reader = Annotated[Principal, Depends(require("officer", "module_leader", "command_centre", "appraisal_admin"))]


class FindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str
    outcome: Outcome
    note: str = Field(default="", max_length=2000)
    rectify_by: date | None = None


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")
    officers: list[str] = Field(min_length=1, max_length=20)
    present_units: list[str]
    findings: list[FindingIn]


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The team going on the visit: from now on only they (or the enforcement module's leader)
    # post the result. Left out, the officers the result names are the inspection's officers.
    officers: list[str] = Field(default_factory=list, max_length=20)


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: CaseStep
    decision: str | None = Field(default=None, max_length=2000)
    note: str | None = Field(default=None, max_length=2000)


class ExtensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: list[str] = Field(min_length=1, max_length=10_000)
    sample_size: int = Field(ge=1)
    seed: int = Field(ge=0, le=2**62)
    # The town whose officers are drawn: a town's staff plan for their own town; county_admin names it.
    town_code: str | None = None


def _id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise HTTPException(404, detail=f"no such {what}") from exc


def _plain(row: asyncpg.Record | dict[str, Any], tz: Any) -> dict[str, Any]:
    return {k: (v.astimezone(tz).isoformat() if isinstance(v, datetime)
                else str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(row).items()}


def _town(runtime: ServiceRuntime, town_code: str) -> Town:
    """The town of a stored record (its times are shown in that town's time zone)."""
    town = runtime.county.town(town_code)
    if town is None:
        raise HTTPException(404, detail=f"town {town_code} is not served by this deployment")
    return town


def _listed_town(runtime: ServiceRuntime, principal: Principal, town: str | None) -> str | None:
    """The town a list shows (SPEC §8): a town's staff their own; county roles every town (None)
    or the one `town` names."""
    if town is not None and runtime.county.town(town) is None:
        raise unprocessable([("town", f"town {town} is not served by this deployment")], where="query")
    if principal.county_wide:
        return town
    if town is not None:
        town_to_read(principal, town)  # another town's list is not found (SPEC §8), never silently the caller's own
    return principal.town


def _acting_town(runtime: ServiceRuntime, principal: Principal, named: str | None) -> Town:
    """The town a new record goes to: the caller's; county_admin names it (`town_code`)."""
    code = named or principal.town
    if code is None:
        raise unprocessable([("town_code", "a county-wide caller names the town (town_code)")])
    town = runtime.county.town(code)
    if town is None:
        raise unprocessable([("town_code", f"town {code} is not served by this deployment")])
    town_to_act(principal, town.code)
    return town


async def _inspection_view(runtime: ServiceRuntime, row: asyncpg.Record, db: store.Db | None = None) -> dict[str, Any]:
    return (await _inspection_views(runtime, [row], db or runtime.pool))[0]


async def _inspection_views(runtime: ServiceRuntime, rows: list[asyncpg.Record],
                            db: store.Db) -> list[dict[str, Any]]:
    """Inspections as answered, each with its needs (all of them read in one round trip)."""
    needs = await store.needs_of_each(db, [r["inspection_id"] for r in rows])
    views = []
    for row in rows:
        tz = _town(runtime, row["town_code"]).calendar.tz
        view = _plain(row, tz)
        view["needs"] = [{k: v for k, v in _plain(n, tz).items() if k != "trace_headers"}
                         for n in needs[row["inspection_id"]]]
        views.append(view)
    return views


@router.get("/v1/inspections")
async def list_inspections(runtime: Runtime, principal: Reader, status: str | None = None,
                           target: str | None = None, unit: str | None = None, town: str | None = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    listed = _listed_town(runtime, principal, town)
    # The inspections and their needs as of one moment: a need that joins meanwhile (its units
    # added to the inspection in the same transaction) is listed with its units or not at all.
    async with runtime.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await store.list_inspections(conn, listed, status, target, unit, limit)
        return await _inspection_views(runtime, rows, conn)


@router.get("/v1/inspections/alerts")
async def repeated_inspection_alerts(runtime: Runtime, principal: Reader, town: str | None = None) -> list[dict[str, Any]]:
    """多头检查 (SPEC §10): targets visited separately by several units within the town's window,
    each with its visits, the latest planned inspection proposed for any new need, and the needs
    that arrived while it was flagged. The caller's town; county roles every town or `town`."""
    listed = _listed_town(runtime, principal, town)
    towns = [_town(runtime, listed)] if listed else list(runtime.county.towns.values())
    now = runtime.clock.now()
    alerts = []
    for each in towns:
        flagged = await flows.repeated_targets(runtime.pool, each, now)
        planned = await store.planned_inspections_of(runtime.pool, each.code, list(flagged))
        needs = await store.repeated_needs_of(runtime.pool, [p["inspection_id"] for p in planned.values()])
        tz = each.calendar.tz
        for target, visits in sorted(flagged.items()):
            proposal = planned.get(target)
            alerts.append({
                "town_code": each.code, "target": target,
                "window_days": each.rules.enforcement.repeated_inspection_window_days,
                "units": rules.union_units(*(v.units for v in visits)),
                "visits": [{"inspection_id": v.inspection_id, "units": list(v.units),
                            "started_at": v.at.astimezone(tz).isoformat()} for v in visits],
                "proposed_inspection_id": str(proposal["inspection_id"]) if proposal else None,
                "proposed_needs": [_plain(n, tz) for n in needs
                                   if proposal and n["inspection_id"] == proposal["inspection_id"]],
            })
    return alerts


@router.get("/v1/inspections/{inspection_id}")
async def get_inspection(inspection_id: str, runtime: Runtime, principal: Reader) -> dict[str, Any]:
    async with runtime.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await store.inspection(conn, _id(inspection_id, "inspection"))  # with its needs as of one moment
        if row is None:
            raise HTTPException(404, detail="no such inspection")
        town_to_read(principal, row["town_code"])
        return await _inspection_view(runtime, row, conn)


async def _locked_inspection(conn: asyncpg.Connection, inspection_id: str, principal: Principal) -> asyncpg.Record:
    """The inspection the caller acts on, locked: 404 if none, 403 if it is another town's."""
    row = await store.inspection_for_update(conn, _id(inspection_id, "inspection"))
    if row is None:
        raise HTTPException(404, detail="no such inspection")
    town_to_act(principal, row["town_code"])
    return row


def _expect_status(row: asyncpg.Record, status: str, refusal: str) -> None:
    if row["status"] != status:
        raise HTTPException(409, detail=f"the inspection is {row['status']}{refusal}")


@router.post("/v1/inspections/{inspection_id}/start")
async def start_inspection(inspection_id: str, runtime: Runtime, principal: Officer,
                           body: StartIn | None = None) -> dict[str, Any]:
    """From now on new needs for this target open a new inspection; the team named here are
    the inspection's officers."""
    team = list(dict.fromkeys(body.officers)) if body else []
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        row = await _locked_inspection(conn, inspection_id, principal)
        if unknown := rules.unknown_staff(_town(runtime, row["town_code"]), team):  # staff of its town
            raise unprocessable([("officers", f"unknown staff: {', '.join(unknown)}")])
        _expect_status(row, "planned", ", not planned")
        for need in await store.needs_of(conn, row["inspection_id"]):
            link_to(need["trace_headers"])
        await store.set_inspection(conn, row["inspection_id"], status="started", started_at=now,
                                   started_by=principal.sub, assigned_officers=team)
        updated = await store.inspection(conn, row["inspection_id"])
    return await _inspection_view(runtime, present(updated, "the started inspection"))


@router.post("/v1/inspections/{inspection_id}/result")
async def record_result(inspection_id: str, body: Result, runtime: Runtime, principal: Officer) -> dict[str, Any]:
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        row = await _locked_inspection(conn, inspection_id, principal)
        town = _town(runtime, row["town_code"])  # its officers, modules and limits
        if refusal := rules.result_poster_error(principal, assigned=row["assigned_officers"],
                                                named=body.officers, town=town):
            raise HTTPException(403, detail=refusal)
        _expect_status(row, "started", "; start it before the result")
        needs = await store.needs_of(conn, row["inspection_id"])
        for need in needs:
            link_to(need["trace_headers"])  # the officer's result: its own trace, linked to each matter
        covered = list(dict.fromkeys(n["task_id"] for n in needs if n["task_id"]))
        problems = rules.result_problems(
            town=town, rules=town.rules.enforcement, units=row["units"], officers=body.officers,
            present_units=body.present_units, finding_task_ids=[f.task_id for f in body.findings],
            covered_task_ids=covered,
            rectify_missing_dates=[f.task_id for f in body.findings if f.outcome == "rectify" and not f.rectify_by])
        if problems:
            raise unprocessable(problems)
        officers = list(dict.fromkeys(body.officers))
        findings = [Finding(task_id=f.task_id, outcome=f.outcome, note=f.note, rectify_by=f.rectify_by)
                    for f in body.findings]
        await store.set_inspection(conn, row["inspection_id"], status="done", finished_at=now,
                                   officers=officers, present_units=body.present_units,
                                   findings=[f.model_dump(mode="json") for f in findings])
        first_request = next((n["request_id"] for n in needs if n["request_id"]), str(row["inspection_id"]))
        await enqueue(conn, flows.event(town.code, InspectionDone, InspectionDoneData(
            inspection_id=str(row["inspection_id"]), target=row["target"], task_ids=covered,
            units=row["units"], officers=officers, findings=findings, started_at=row["started_at"],
            finished_at=now), row["inspection_id"], first_request, now))
        need_by_task = {n["task_id"]: n for n in needs if n["task_id"]}
        cases = []
        for finding in findings:
            need = need_by_task[finding.task_id]
            if finding.outcome in ("violation", "not_delegated", "criminal"):
                cases.append(str(await flows.open_case(conn, town, need=need, inspection_id=row["inspection_id"],
                                                       outcome=finding.outcome, by=principal.sub, now=now)))
            elif finding.outcome == "rectify":
                due = datetime.combine(present(finding.rectify_by, "a rectify finding's rectify_by"), time(17, 30), tzinfo=town.calendar.tz)
                await flows.add_need(conn, town, target=row["target"], item_code=need["item_code"],
                                     source="rectify", task_id=need["task_id"], request_id=need["request_id"],
                                     now=now, due=due)
        done = await store.inspection(conn, row["inspection_id"])
    view = await _inspection_view(runtime, present(done, "the finished inspection"))
    view["cases"] = cases
    return view


def _case_view(runtime: ServiceRuntime, row: asyncpg.Record, steps: list[asyncpg.Record] | None = None) -> dict[str, Any]:
    town = _town(runtime, row["town_code"])
    view = _plain(row, town.calendar.tz)
    decided = row["step"] in ("decided", "closed", "transferred")
    view["flag"] = rules.case_flag(row["filed_at"], row["extended"], decided, runtime.clock.now(),
                                   town.rules.enforcement)
    if steps is not None:
        view["steps"] = [_plain(s, town.calendar.tz) for s in steps]
    return view


@router.get("/v1/cases")
async def list_cases(runtime: Runtime, principal: Reader, step: str | None = None, overdue: bool | None = None,
                     inspection_id: uuid.UUID | None = None, town: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    rows = await store.list_cases(runtime.pool, _listed_town(runtime, principal, town), step, inspection_id, limit)
    views = [_case_view(runtime, r) for r in rows]
    if overdue is not None:
        views = [v for v in views if (v["flag"] == "overdue") == overdue]
    return views


@router.get("/v1/cases/{case_id}")
async def get_case(case_id: str, runtime: Runtime, principal: Reader) -> dict[str, Any]:
    row = await store.case(runtime.pool, _id(case_id, "case"))
    if row is None:
        raise HTTPException(404, detail="no such case")
    town_to_read(principal, row["town_code"])
    return _case_view(runtime, row, await store.case_steps(runtime.pool, row["case_id"]))


@router.post("/v1/cases/{case_id}/steps")
async def add_step(case_id: str, body: StepIn, runtime: Runtime, principal: Officer) -> dict[str, Any]:
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        row = await store.case_for_update(conn, _id(case_id, "case"))
        if row is None:
            raise HTTPException(404, detail="no such case")
        town_to_act(principal, row["town_code"])
        if body.step == "transferred":
            raise HTTPException(409, detail="transfers follow from a not_delegated or criminal finding")
        if error := rules.step_error(row["step"], body.step):
            raise HTTPException(409, detail=error)
        if body.step == "decided" and not body.decision:
            raise unprocessable([("decision", "a decision step records the decision")])
        fields: dict[str, Any] = {"step": body.step}
        if body.step == "decided":
            fields.update(decision=body.decision, decided_at=now, next_flag_at=None)
        await store.set_case(conn, row["case_id"], **fields)
        await store.add_case_step(conn, row["town_code"], row["case_id"], body.step, now, principal.sub, body.note)
        await flows.case_event(conn, row, body.step, now, decision=body.decision)
        updated = await store.case(conn, row["case_id"])
        steps = await store.case_steps(conn, row["case_id"])
    return _case_view(runtime, present(updated, "the case"), steps)


@router.post("/v1/cases/{case_id}/extension")
async def extend_case(case_id: str, body: ExtensionIn, runtime: Runtime, principal: Officer) -> dict[str, Any]:
    """The one 30-day extension of the decision limit, recorded before day 90."""
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        row = await store.case_for_update(conn, _id(case_id, "case"))
        if row is None:
            raise HTTPException(404, detail="no such case")
        town_to_act(principal, row["town_code"])
        limits = _town(runtime, row["town_code"]).rules.enforcement
        if row["step"] not in ("filed", "investigated", "reviewed"):
            raise HTTPException(409, detail=f"the case is {row['step']}; nothing left to extend")
        if error := rules.extension_error(row["filed_at"], row["extended"], now, limits):
            raise HTTPException(409, detail=error)
        flagged = {"warning"} if row["warned_at"] else set()
        await store.set_case(conn, row["case_id"], extended=True, extension_reason=body.reason,
                             decision_due=rules.decision_due(row["filed_at"], True, limits), overdue_at=None,
                             next_flag_at=rules.next_case_flag_at(row["filed_at"], True, flagged, limits))
        updated = await store.case(conn, row["case_id"])
    return _case_view(runtime, present(updated, "the extended case"))


@router.post("/v1/random-plans", status_code=201)
async def random_plan(body: PlanIn, runtime: Runtime, principal: Officer) -> dict[str, Any]:
    """双随机一公开: random targets and two random certified officers each of the caller's town (or
    the town county_admin names), reproducible by seed."""
    town = _acting_town(runtime, principal, body.town_code)
    officers = [s.id for s in town.staff.values() if s.enforcement_certificate]
    try:
        drawn = rules.draw_plan(body.targets, body.sample_size, body.seed, officers)
    except ValueError as exc:
        raise unprocessable([("sample_size", str(exc))]) from exc
    now = runtime.clock.now()
    plan_id = uuid.uuid4()
    targets = [PlannedTarget(target=t, officers=o) for t, o in drawn]
    async with transaction(runtime.pool) as conn:
        await store.save_plan(conn, town.code, plan_id, body.seed, body.sample_size, sorted(set(body.targets)),
                              [t.model_dump() for t in targets], now, principal.sub)
        await enqueue(conn, flows.event(town.code, PlanPublished, PlanPublishedData(
            plan_id=str(plan_id), seed=body.seed, targets=targets, published_at=now), plan_id, plan_id, now))
    return {"plan_id": str(plan_id), "town_code": town.code, "seed": body.seed, "targets": [t.model_dump() for t in targets],
            "published_at": now.isoformat()}


@router.get("/v1/plans")
async def list_plans(runtime: Runtime, principal: Reader, town: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    rows = await store.plans(runtime.pool, _listed_town(runtime, principal, town), limit)
    return [_plain(p, _town(runtime, p["town_code"]).calendar.tz) for p in rows]


@router.get("/v1/plans/{plan_id}")
async def get_plan(plan_id: str, runtime: Runtime, principal: Reader) -> dict[str, Any]:
    row = await store.plan(runtime.pool, _id(plan_id, "plan"))
    if row is None:
        raise HTTPException(404, detail="no such plan")
    town_to_read(principal, row["town_code"])
    return _plain(row, _town(runtime, row["town_code"]).calendar.tz)
