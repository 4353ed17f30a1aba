"""Enforcement's reads: what each read route answers (one call each), and the answers the
commands give back. Times are shown in the record's town's time zone."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from townflow_shared import scope
from townflow_shared.auth import Principal
from townflow_shared.problems import Code
from townflow_shared.town import Town
from townflow_shared.views import record_id

from . import models, rules
from .deps import Deps
from .refusals import CODES
from .store import Row, Store


def in_town_time(row: Mapping[str, Any], town: Town) -> dict[str, Any]:
    """A stored row as answered: its times in its town's time zone."""
    return {k: v.astimezone(town.calendar.tz) if isinstance(v, datetime) else v for k, v in dict(row).items()}


def _stored_town(deps: Deps, row: Row, not_found: Code) -> Town:
    """The town of a row listed or just written (a town no longer served: not found)."""
    return scope.town_of_record(deps.county, None, row["town_code"], acting=False, not_found=not_found)


def _readable(deps: Deps, actor: Principal, row: Row | None, not_found: Code) -> Row:
    """A record asked for by id, if it exists and its town is the actor's to read; else `not_found`
    (one answer for both)."""
    if row is None:
        raise not_found()
    scope.town_of_record(deps.county, actor, row["town_code"], acting=False, not_found=not_found)
    return row


def _listed(deps: Deps, actor: Principal, town: str | None) -> str | None:
    """The town a list is filtered to; None: every town (a county role naming none)."""
    towns = scope.towns_to_read(deps.county, actor, town)
    return None if town is None and actor.county_wide else towns[0].code


# --- inspections --------------------------------------------------------------------------------
def evidence_answers(rows: Sequence[Row], town: Town) -> list[models.Evidence]:
    """A record's evidence as its read view lists it: by reference and digest."""
    return [models.Evidence.model_validate(in_town_time(r, town) | {"size": r["bytes"]}) for r in rows]


async def inspection_answers(deps: Deps, store: Store, rows: Sequence[Row]) -> list[models.Inspection]:
    """Inspections as answered, each with its needs and its evidence (each read in one round trip)."""
    ids = [r["inspection_id"] for r in rows]
    needs = await store.needs_of_each(ids)
    evidence = await store.evidence_of_each("inspection_id", ids)
    answers = []
    for row in rows:
        town = _stored_town(deps, row, CODES["inspection.not_found"])
        answers.append(models.Inspection.model_validate(
            in_town_time(row, town) | {"needs": [in_town_time(n, town) for n in needs[row["inspection_id"]]],
                                       "evidence": evidence_answers(evidence[row["inspection_id"]], town)}))
    return answers


@dataclass(frozen=True)
class InspectionFilter:
    status: str | None = None
    target: str | None = None
    unit: str | None = None
    town: str | None = None
    limit: int = 200


async def list_inspections(deps: Deps, actor: Principal, query: InspectionFilter) -> list[models.Inspection]:
    listed = _listed(deps, actor, query.town)
    # The inspections and their needs as of one moment: a need that joins meanwhile (its units
    # added to the inspection in the same transaction) is listed with its units or not at all.
    async with deps.transactions.reading(snapshot=True) as work:
        rows = await work.store.list_inspections(listed, query.status, query.target, query.unit, query.limit)
        return await inspection_answers(deps, work.store, rows)


async def get_inspection(deps: Deps, actor: Principal, inspection_id: str) -> models.Inspection:
    async with deps.transactions.reading(snapshot=True) as work:  # with its needs as of one moment
        row = _readable(deps, actor, await work.store.inspection(record_id(inspection_id, CODES["inspection.not_found"])),
                        CODES["inspection.not_found"])
        return (await inspection_answers(deps, work.store, [row]))[0]


async def repeated_targets(store: Store, town: Town, now: datetime,
                           target: str | None = None) -> dict[str, list[rules.Visit]]:
    """The town's targets flagged for 多头检查 now (or whether `target` is), with their visits."""
    limits = town.rules.enforcement
    rows = await store.visits_since(town.code, rules.visits_since(now, limits), target)
    return rules.repeated_inspections(
        [rules.Visit(str(r["inspection_id"]), r["target"], tuple(r["units"]), r["started_at"]) for r in rows],
        now, limits)


async def repeated_inspections(deps: Deps, actor: Principal, town: str | None) -> list[models.RepeatedInspection]:
    """多头检查 (SPEC §10): targets visited separately by several units within each town's window,
    each with its visits, the latest planned inspection proposed for any new need, and the needs
    that arrived while it was flagged. The caller's town; county roles every town or `town`."""
    towns = scope.towns_to_read(deps.county, actor, town)
    now = deps.clock.now()
    alerts = []
    async with deps.transactions.reading(snapshot=True) as work:
        for each in towns:
            flagged = await repeated_targets(work.store, each, now)
            planned = await work.store.planned_inspections_of(each.code, list(flagged))
            needs = await work.store.repeated_needs_of([p["inspection_id"] for p in planned.values()])
            tz = each.calendar.tz
            for target, visits in sorted(flagged.items()):
                proposal = planned.get(target)
                alerts.append(models.RepeatedInspection(
                    town_code=each.code, target=target,
                    window_days=each.rules.enforcement.repeated_inspection_window_days,
                    units=rules.union_units(*(v.units for v in visits)),
                    visits=[models.Visit(inspection_id=v.inspection_id, units=list(v.units),
                                         started_at=v.at.astimezone(tz)) for v in visits],
                    proposed_inspection_id=proposal["inspection_id"] if proposal else None,
                    proposed_needs=[models.ProposedNeed.model_validate(in_town_time(n, each)) for n in needs
                                    if proposal and n["inspection_id"] == proposal["inspection_id"]]))
    return alerts


# --- cases --------------------------------------------------------------------------------------
def _case_fields(deps: Deps, row: Row) -> tuple[dict[str, Any], Town]:
    town = _stored_town(deps, row, CODES["case.not_found"])
    flag = rules.case_flag(row["filed_at"], row["extended"], row["step"] in rules.DECIDED_STEPS, deps.clock.now(),
                           town.rules.enforcement)
    return in_town_time(row, town) | {"flag": flag}, town


def case_answer(deps: Deps, row: Row) -> models.Case:
    """A case as answered, with its flag now."""
    return models.Case.model_validate(_case_fields(deps, row)[0])


def case_with_steps(deps: Deps, row: Row, steps: Sequence[Row], evidence: Sequence[Row]) -> models.CaseWithSteps:
    fields, town = _case_fields(deps, row)
    return models.CaseWithSteps.model_validate(fields | {"steps": [in_town_time(s, town) for s in steps],
                                                         "evidence": evidence_answers(evidence, town)})


async def case_view(deps: Deps, store: Store, row: Row) -> models.CaseWithSteps:
    """A case with its steps and its evidence, as its read view answers it."""
    evidence = await store.evidence_of_each("case_id", [row["case_id"]])
    return case_with_steps(deps, row, await store.case_steps(row["case_id"]), evidence[row["case_id"]])


@dataclass(frozen=True)
class CaseFilter:
    step: str | None = None
    overdue: bool | None = None
    inspection_id: uuid.UUID | None = None
    town: str | None = None
    limit: int = 200


async def list_cases(deps: Deps, actor: Principal, query: CaseFilter) -> list[models.Case]:
    listed = _listed(deps, actor, query.town)
    async with deps.transactions.reading() as work:
        rows = await work.store.list_cases(listed, query.step, query.inspection_id, query.limit)
    answers = [case_answer(deps, r) for r in rows]
    if query.overdue is not None:
        answers = [a for a in answers if (a.flag == "overdue") == query.overdue]
    return answers


async def get_case(deps: Deps, actor: Principal, case_id: str) -> models.CaseWithSteps:
    async with deps.transactions.reading(snapshot=True) as work:  # its steps and evidence as of one moment
        row = _readable(deps, actor, await work.store.case(record_id(case_id, CODES["case.not_found"])), CODES["case.not_found"])
        return await case_view(deps, work.store, row)


# --- plans --------------------------------------------------------------------------------------
def plan_answer(deps: Deps, row: Row) -> models.Plan:
    return models.Plan.model_validate(in_town_time(row, _stored_town(deps, row, CODES["plan.not_found"])))


async def list_plans(deps: Deps, actor: Principal, town: str | None, limit: int) -> list[models.Plan]:
    listed = _listed(deps, actor, town)
    async with deps.transactions.reading() as work:
        rows = await work.store.plans(listed, limit)
    return [plan_answer(deps, r) for r in rows]


async def get_plan(deps: Deps, actor: Principal, plan_id: str) -> models.Plan:
    async with deps.transactions.reading() as work:
        row = await work.store.plan(record_id(plan_id, CODES["plan.not_found"]))
    return plan_answer(deps, _readable(deps, actor, row, CODES["plan.not_found"]))
