"""Enforcement's command handlers: each state change is one function `(deps, actor, command)`
that opens a unit of work, reads, lets `rules` decide, writes and publishes its events, and
returns the answer or raises a refusal of `refusals.py`. The event handlers and the deadline loop
call the flows below them on their own unit of work."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from townflow_shared import audit_trail, events, scope
from townflow_shared.auth import Principal
from townflow_shared.checks import present
from townflow_shared.deadlines import DueBatch
from townflow_shared.dlq import Rejected
from townflow_shared.events import Envelope as _Envelope
from townflow_shared.events import EventData, new_event
from townflow_shared.problems import invalid
from townflow_shared.telemetry import current_trace_headers, link_to
from townflow_shared.town import EnforcementRules, Town
from townflow_shared.views import record_id

from . import models, queries, rules
from .deps import Deps
from .refusals import CODES
from .store import Row, Store
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def event(town_code: str, event_type: type[_Envelope], data: EventData, subject: Any,
          correlation_id: Any, now: datetime, causation_id: Any = None) -> _Envelope:
    """An event of enforcement about a record of `town_code`."""
    return new_event(event_type, data, source="enforcement", town_code=town_code,
                     subject=str(subject), correlation_id=str(correlation_id), time=now,
                     causation_id=causation_id)


# --- needs: 综合查一次 -----------------------------------------------------------------------------
async def add_need(work: UnitOfWork, town: Town, *, target: str, item_code: str, source: str,
                   task_id: str | None, request_id: str | None, now: datetime,
                   due: datetime | None = None) -> uuid.UUID | None:
    """综合查一次: join the target's planned inspection in `town`, or plan a new one there (the
    same target in another town is another town's visit). None if the task already has its need
    (a redelivered event)."""
    store = work.store
    units = rules.need_units(town.catalog[item_code])
    planned = await store.planned_inspection(town.code, target, lock=True)
    if planned is None:
        inspection_id = await store.create_inspection(town.code, target, units, now)
    else:
        inspection_id = planned["inspection_id"]
    added = await store.add_need(town_code=town.code, inspection_id=inspection_id, source=source, task_id=task_id,
                                 request_id=request_id, item_code=item_code, target=target, units=units,
                                 due=due, now=now, trace_headers=current_trace_headers())
    if not added:
        return None
    if source == "task" and task_id is not None and target in await queries.repeated_targets(store, town, now, target):
        # 多头检查: the target's latest planned inspection (this one) is proposed as its visit.
        await store.mark_repeated_need(town.code, task_id)
    needs = (await store.needs_of_each([inspection_id]))[inspection_id]
    await store.set_inspection(inspection_id, units=rules.union_units(*(n["units"] for n in needs)),
                               visits_saved=rules.visits_saved([n["units"] for n in needs]))
    return inspection_id


async def task_dispatched(deps: Deps, work: UnitOfWork, town_code: str, task: events.TaskDispatchedData) -> None:
    """An enforcement or joint-visit task becomes an inspection need for its target in the
    event's town (a town this deployment does not serve, or an item not in its catalogue:
    dead-lettered)."""
    if task.kind not in ("enforcement", "joint_visit"):
        return
    town = scope.town_of_event(deps.county, town_code)
    if task.item_code not in town.catalog:
        raise Rejected(f"item {task.item_code!r} is not in the catalog of town {town.code}")
    await add_need(work, town, target=task.target or task.location, item_code=task.item_code, source="task",
                   task_id=task.task_id, request_id=task.request_id, now=deps.clock.now())


# --- inspections --------------------------------------------------------------------------------
async def _inspection_to_act_on(deps: Deps, store: Store, actor: Principal, inspection_id: str) -> tuple[Row, Town]:
    """The inspection the caller acts on, locked, and its town: not found if none, refused if it
    is another town's."""
    row = await store.inspection(record_id(inspection_id, CODES["inspection.not_found"]), lock=True)
    if row is None:
        raise CODES["inspection.not_found"]()
    town = scope.town_of_record(deps.county, actor, row["town_code"], acting=True, not_found=CODES["inspection.not_found"])
    return row, town


async def _answer(deps: Deps, store: Store, inspection_id: uuid.UUID) -> models.Inspection:
    row = present(await store.inspection(inspection_id), "the inspection")
    return (await queries.inspection_answers(deps, store, [row]))[0]


@dataclass(frozen=True)
class StartInspection:
    inspection_id: str
    # The team going on the visit (the starter is added when they are an officer of the town):
    # from now on only they (or the enforcement module's leader) post the result.
    officers: list[str] = field(default_factory=list)


async def start_inspection(deps: Deps, actor: Principal, command: StartInspection) -> models.Inspection:
    """Start the visit with its team (rules.start_team: at least the town's number of certified
    officers, the starter among them unless a leader sends the team). From now on new needs for
    this target open a new inspection."""
    now = deps.clock.now()
    async with deps.transactions.writing() as work:
        row, town = await _inspection_to_act_on(deps, work.store, actor, command.inspection_id)
        if row["status"] != "planned":
            raise CODES["inspection.not_planned"](status=row["status"])
        team, refusal = rules.start_team(actor, command.officers, town=town, rules=town.rules.enforcement)
        if refusal:
            raise refusal
        for need in (await work.store.needs_of_each([row["inspection_id"]]))[row["inspection_id"]]:
            link_to(need["trace_headers"])  # the visit: its own trace, linked to each matter
        await work.store.set_inspection(row["inspection_id"], status="started", started_at=now,
                                        started_by=actor.sub, assigned_officers=team)
        return await _answer(deps, work.store, row["inspection_id"])


@dataclass(frozen=True)
class RecordResult:
    inspection_id: str
    result: models.ResultIn


async def record_result(deps: Deps, actor: Principal, command: RecordResult) -> models.InspectionDone:
    """The visit's result: every unit present, at least two certified officers, one finding per
    covered task. A violation opens a case (立案); a not-delegated or criminal finding is filed and
    transferred at once; a rectify finding plans the follow-up visit for its date."""
    body = command.result
    now = deps.clock.now()
    async with deps.transactions.writing() as work:
        store = work.store
        row, town = await _inspection_to_act_on(deps, store, actor, command.inspection_id)
        if refusal := rules.result_poster_error(actor, assigned=row["assigned_officers"], named=body.officers,
                                                town=town):
            raise refusal
        if row["status"] != "started":
            raise CODES["inspection.not_started"](status=row["status"])
        needs = (await store.needs_of_each([row["inspection_id"]]))[row["inspection_id"]]
        for need in needs:
            link_to(need["trace_headers"])  # the officer's result: its own trace, linked to each matter
        covered = list(dict.fromkeys(n["task_id"] for n in needs if n["task_id"]))
        if problems := rules.result_problems(
                town=town, rules=town.rules.enforcement, units=row["units"], officers=body.officers,
                present_units=body.present_units, finding_task_ids=[f.task_id for f in body.findings],
                covered_task_ids=covered,
                rectify_missing_dates=[f.task_id for f in body.findings if f.outcome == "rectify" and not f.rectify_by]):
            raise invalid(problems)
        officers = list(dict.fromkeys(body.officers))
        findings = [events.Finding(task_id=f.task_id, outcome=f.outcome, note=f.note, rectify_by=f.rectify_by)
                    for f in body.findings]
        await store.set_inspection(row["inspection_id"], status="done", finished_at=now, officers=officers,
                                   present_units=body.present_units,
                                   findings=[f.model_dump(mode="json") for f in findings])
        first_request = next((n["request_id"] for n in needs if n["request_id"]), str(row["inspection_id"]))
        await work.publish(event(town.code, events.InspectionDone, events.InspectionDoneData(
            inspection_id=str(row["inspection_id"]), target=row["target"], task_ids=covered, units=row["units"],
            officers=officers, findings=findings, started_at=row["started_at"], finished_at=now),
            row["inspection_id"], first_request, now))
        need_of_task = {n["task_id"]: n for n in needs if n["task_id"]}
        cases = []
        for finding in findings:
            need = need_of_task[finding.task_id]
            if finding.outcome in rules.OUTCOMES_FILED:
                cases.append(await open_case(work, town, need=need, inspection_id=row["inspection_id"],
                                             outcome=finding.outcome, by=actor.sub, now=now))
            elif finding.outcome == "rectify":
                # Rectified by the close of the town's working day of `rectify_by`.
                due = town.calendar.close_of(present(finding.rectify_by, "a rectify finding's rectify_by"))
                await add_need(work, town, target=row["target"], item_code=need["item_code"], source="rectify",
                               task_id=need["task_id"], request_id=need["request_id"], now=now, due=due)
        done = await _answer(deps, store, row["inspection_id"])
    return models.InspectionDone.model_validate(done.model_dump() | {"cases": cases})


# --- cases --------------------------------------------------------------------------------------
async def case_event(work: UnitOfWork, case: Mapping[str, Any], step: str, now: datetime, *,
                     decision: str | None = None, transferred_to: str | None = None,
                     causation_id: Any = None) -> None:
    await work.publish(event(case["town_code"], events.CaseUpdated, events.CaseUpdatedData(
        case_id=str(case["case_id"]), task_id=case["task_id"], request_id=case["request_id"],
        step=step, decision=decision, transferred_to=transferred_to, at=now),  # type: ignore[arg-type]
        case["case_id"], case["request_id"], now, causation_id))


async def open_case(work: UnitOfWork, town: Town, *, need: Row, inspection_id: uuid.UUID, outcome: str, by: str,
                    now: datetime) -> uuid.UUID:
    """立案 for a violation, with `town`'s decision limits; a not-delegated or criminal finding is
    filed and transferred at once."""
    item = town.catalog[need["item_code"]]
    case_id = uuid.uuid4()
    destination = rules.transfer_destination(outcome, item)
    limits = town.rules.enforcement
    row = {
        "case_id": case_id, "town_code": town.code, "task_id": need["task_id"], "request_id": need["request_id"],
        "inspection_id": inspection_id, "item_code": item.code, "target": need["target"],
        "step": "transferred" if destination else "filed", "filed_at": now,
        "decision_due": rules.decision_due(now, False, limits),
        "transferred_to": destination,
        "next_flag_at": None if destination else rules.next_case_flag_at(now, False, (), limits),
    }
    await work.store.create_case(row)
    await work.store.add_case_step(town.code, case_id, "filed", now, by, f"inspection finding: {outcome}")
    await case_event(work, row, "filed", now)
    if destination:
        await work.store.add_case_step(town.code, case_id, "transferred", now, by, destination)
        await case_event(work, row, "transferred", now, transferred_to=destination)
    return case_id


async def _case_to_act_on(deps: Deps, store: Store, actor: Principal, case_id: str) -> tuple[Row, Town]:
    row = await store.case(record_id(case_id, CODES["case.not_found"]), lock=True)
    if row is None:
        raise CODES["case.not_found"]()
    return row, scope.town_of_record(deps.county, actor, row["town_code"], acting=True, not_found=CODES["case.not_found"])


@dataclass(frozen=True)
class TakeCaseStep:
    case_id: str
    step: str
    decision: str | None = None
    note: str | None = None


async def take_case_step(deps: Deps, actor: Principal, command: TakeCaseStep) -> models.CaseWithSteps:
    """The case's next step: filed → investigated → reviewed (法制审核) → decided → closed."""
    now = deps.clock.now()
    async with deps.transactions.writing() as work:
        row, _ = await _case_to_act_on(deps, work.store, actor, command.case_id)
        if command.step == "transferred":
            raise CODES["case.transfer_by_finding_only"]("step")
        if refusal := rules.step_error(row["step"], command.step):
            raise refusal
        if command.step == "decided" and not command.decision:
            raise CODES["case.decision_missing"]("decision")
        fields: dict[str, Any] = {"step": command.step}
        if command.step == "decided":
            fields.update(decision=command.decision, decided_at=now, next_flag_at=None)
        await work.store.set_case(row["case_id"], **fields)
        await work.store.add_case_step(row["town_code"], row["case_id"], command.step, now, actor.sub, command.note)
        await case_event(work, row, command.step, now, decision=command.decision)
        return await queries.case_view(deps, work.store, present(await work.store.case(row["case_id"]), "the case"))


@dataclass(frozen=True)
class ExtendCase:
    case_id: str
    reason: str


async def extend_case(deps: Deps, actor: Principal, command: ExtendCase) -> models.Case:
    """The one 30-day extension of the decision limit, recorded before day 90."""
    now = deps.clock.now()
    async with deps.transactions.writing() as work:
        row, town = await _case_to_act_on(deps, work.store, actor, command.case_id)
        limits = town.rules.enforcement
        if row["step"] not in rules.UNDECIDED_STEPS:
            raise CODES["case.decided"](step=row["step"])
        if refusal := rules.extension_error(row["filed_at"], row["extended"], now, limits):
            raise refusal
        flagged = {"warning"} if row["warned_at"] else set()
        await work.store.set_case(row["case_id"], extended=True, extension_reason=command.reason,
                                  decision_due=rules.decision_due(row["filed_at"], True, limits), overdue_at=None,
                                  next_flag_at=rules.next_case_flag_at(row["filed_at"], True, flagged, limits))
        return queries.case_answer(deps, present(await work.store.case(row["case_id"]), "the extended case"))


async def flag_due_cases(work: UnitOfWork, limits_of: Mapping[str, EnforcementRules], now: datetime,
                         limit: int) -> DueBatch:
    """Flag up to `limit` undecided cases of every town past day 60 (warning) or past their
    decision limit (overdue), each by its town's limits (`limits_of` by town code), earliest due
    first, and move each case's next due moment on. Each flag once, with one `case.flagged` event
    in the same transaction (its officers are told: notify): the claim locks the rows (another
    replica skips them) and a flag already set keeps its time. A case of a town no longer served
    fails alone (logged) and is tried again next pass."""
    store = work.store
    claimed = await store.claim_due_cases(list(limits_of), now, limit)
    flags: list[tuple[uuid.UUID, bool, bool, datetime | None]] = []
    flagged_events: list[_Envelope] = []
    flagged = failed = 0
    for case in claimed:
        try:
            done = {flag for flag, at in (("warning", case["warned_at"]), ("overdue", case["overdue_at"])) if at}
            limits = limits_of[case["town_code"]]
            due = rules.case_flags_due(case["filed_at"], case["extended"], done, now, limits)
            flags.append((case["case_id"], "warning" in due, "overdue" in due,
                          rules.next_case_flag_at(case["filed_at"], case["extended"], done | set(due), limits)))
            flagged_events += [event(case["town_code"], events.CaseFlagged, events.CaseFlaggedData(
                case_id=str(case["case_id"]), task_id=case["task_id"], request_id=case["request_id"],
                item_code=case["item_code"], target=case["target"], officers=list(case["officers"]), flag=flag,
                filed_at=case["filed_at"], decision_due=rules.decision_due(case["filed_at"], case["extended"], limits),
                extended=case["extended"], at=now), case["case_id"], case["request_id"], now) for flag in due]
            flagged += len(due)
        except Exception:  # one bad row never stops the rest
            log.exception("deadline check of case %s failed; it is tried again next pass", case["case_id"])
            failed += 1
    if flags:
        await store.set_case_flags(flags, now)
        await work.publish(*flagged_events)
    return DueBatch(len(claimed), flagged, failed)


# --- random inspection plans (双随机一公开) -------------------------------------------------------
@dataclass(frozen=True)
class PublishPlan:
    targets: list[str]
    sample_size: int
    seed: int
    town_code: str | None = None  # the town whose officers are drawn; county_admin names it


async def publish_plan(deps: Deps, actor: Principal, command: PublishPlan) -> models.PublishedPlan:
    """Random targets and two random certified officers each, of the caller's town (or the town
    county_admin names), reproducible by seed."""
    town = scope.town_of_new_record(deps.county, actor, command.town_code)
    officers = [s.id for s in town.staff.values() if s.enforcement_certificate]
    drawn = rules.draw_plan(command.targets, command.sample_size, command.seed, officers)
    now = deps.clock.now()
    plan_id = uuid.uuid4()
    audit_trail.name_target("random_plan", str(plan_id))  # the audit record names the plan it made
    targets = [events.PlannedTarget(target=t, officers=o) for t, o in drawn]
    async with deps.transactions.writing() as work:
        await work.store.save_plan(town.code, plan_id, command.seed, command.sample_size,
                                   sorted(set(command.targets)), [t.model_dump() for t in targets], now, actor.sub)
        await work.publish(event(town.code, events.PlanPublished, events.PlanPublishedData(
            plan_id=str(plan_id), seed=command.seed, targets=targets, published_at=now), plan_id, plan_id, now))
    return models.PublishedPlan(plan_id=plan_id, town_code=town.code, seed=command.seed, targets=targets,
                                published_at=now)
