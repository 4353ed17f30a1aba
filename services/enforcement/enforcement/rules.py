"""Enforcement's business rules as pure functions: no I/O, the time comes in as an argument."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from townflow_shared.auth import Principal
from townflow_shared.events import CaseFlag
from townflow_shared.problems import FieldError, Refusal
from townflow_shared.town import CatalogItem, EnforcementRules, Town

from .refusals import CODES

CASE_STEPS = ("filed", "investigated", "reviewed", "decided", "closed")
UNDECIDED_STEPS = ("filed", "investigated", "reviewed")
DECIDED_STEPS = ("decided", "closed", "transferred")
OUTCOMES_FILED = ("violation", "not_delegated", "criminal")  # a finding that opens a case (立案)
OFFICERS_PER_TARGET = 2  # 双随机: two officers drawn for each target
JUDICIAL_ORGANS = "公安机关（涉嫌犯罪移送）"


def need_units(item: CatalogItem) -> list[str]:
    """Who must attend: every joint unit of a joint-visit item; for an enforcement item, the
    county department whose power it is (delegated or not)."""
    if item.joint_units:
        return list(item.joint_units)
    if item.department:
        return [item.department]
    return [item.lead_module]


def union_units(*groups: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(unit for group in groups for unit in group))


def visits_saved(needs_units: Sequence[Sequence[str]]) -> int:
    """Without 综合查一次 each unit of each matter visits on its own; combined, it is one visit."""
    separate = sum(len(units) for units in needs_units)
    return max(separate - 1, 0)


def result_problems(*, town: Town, rules: EnforcementRules, units: Sequence[str], officers: Sequence[str],
                    present_units: Sequence[str], finding_task_ids: Sequence[str],
                    covered_task_ids: Sequence[str], rectify_missing_dates: Sequence[str]) -> list[FieldError]:
    """Every reason a result may not be recorded (Administrative Penalty Law art. 42: at least
    two certified officers; every unit present; one finding per covered task)."""
    problems: list[FieldError] = []
    if unknown := unknown_staff(town, officers):
        problems.append(CODES["inspection.unknown_staff"].error("officers", staff=unknown))
    if too_few := too_few_certified(town, rules, officers):
        problems.append(CODES["inspection.too_few_certified"].error("officers", **too_few))
    if absent := [u for u in units if u not in present_units]:
        problems.append(CODES["inspection.unit_absent"].error("present_units", units=absent))
    if strangers := [u for u in present_units if u not in units]:
        problems.append(CODES["inspection.unit_foreign"].error("present_units", units=strangers))
    if missing := [t for t in covered_task_ids if t not in finding_task_ids]:
        problems.append(CODES["inspection.finding_missing"].error("findings", tasks=missing))
    if extra_tasks := [t for t in finding_task_ids if t not in covered_task_ids]:
        problems.append(CODES["inspection.finding_not_covered"].error("findings", tasks=extra_tasks))
    if repeated := [t for t, n in Counter(finding_task_ids).items() if n > 1]:
        problems.append(CODES["inspection.finding_repeated"].error("findings", tasks=repeated))
    for task_id in rectify_missing_dates:
        problems.append(CODES["inspection.rectify_by_missing"].error("findings", task=task_id))
    return problems


def unknown_staff(town: Town, staff_ids: Iterable[str]) -> list[str]:
    return [s for s in dict.fromkeys(staff_ids) if s not in town.staff]


def certified(town: Town, staff_id: str) -> bool:
    """Staff of `town` holding an enforcement certificate (执法证)."""
    return staff_id in town.staff and town.staff[staff_id].enforcement_certificate


def too_few_certified(town: Town, rules: EnforcementRules, officers: Sequence[str]) -> dict[str, Any] | None:
    """The params of `inspection.too_few_certified` when fewer than `rules.min_officers` of
    `officers` hold a certificate (Administrative Penalty Law art. 42), else None."""
    holders = {o for o in officers if certified(town, o)}
    if len(holders) >= rules.min_officers:
        return None
    return {"required": rules.min_officers, "certified": len(holders),
            "uncertified": [o for o in dict.fromkeys(officers) if o in town.staff and o not in holders]}


SENDERS = frozenset({"module_leader", "admin", "county_admin"})  # may send a team without going


def start_team(principal: Principal, named: Sequence[str], *, town: Town,
               rules: EnforcementRules) -> tuple[list[str], Refusal | None]:
    """The team an inspection of `town` starts with, and the refusal if it may not start (the
    caller acts in `town`, checked before). Whoever starts must be able to post the result:

    - The team is the officers named (each once, in order); every one must be staff of `town`
      (`inspection.unknown_staff`).
    - A starter who is an officer of `town` (the role or a certificate in the town's file) goes
      on the visit: they are added to the team, first, if not named.
    - A starter who is not an officer of `town` but a module leader, an admin or a county admin
      may send a team without themselves; anyone else may not start (`inspection.starter_not_officer`).
    - The team, the starter included, must hold at least `rules.min_officers` certified officers
      (`inspection.too_few_certified`); an uncertified member may go along but does not count.

    So a team of one, or of uncertified officers, never starts, and the officer who pressed
    开始检查 is always on the inspection they started."""
    team = list(dict.fromkeys(named))
    if unknown := unknown_staff(town, team):
        return team, CODES["inspection.unknown_staff"]("officers", staff=unknown)
    me = town.staff.get(principal.sub) if principal.town == town.code else None
    if me is not None and ("officer" in me.roles or me.enforcement_certificate):
        if principal.sub not in team:
            team.insert(0, principal.sub)
    elif not principal.roles & SENDERS:
        return team, CODES["inspection.starter_not_officer"]("officers", starter=principal.sub)
    if too_few := too_few_certified(town, rules, team):
        return team, CODES["inspection.too_few_certified"]("officers", **too_few)
    return team, None


def enforcement_leaders(town: Town) -> set[str]:
    """The leaders of the town's modules of kind enforcement (综合行政执法队长)."""
    return {m.leader for m in town.modules.values() if m.kind == "enforcement"}


def result_poster_error(principal: Principal, *, assigned: Sequence[str], named: Sequence[str],
                        town: Town) -> Refusal | None:
    """Who may post an inspection's result (SPEC §6.1): one of its officers or the enforcement
    module's leader (or an admin). Its officers are the team assigned when it was started; an
    inspection started without a team has only the officers the result names, so the caller
    must be one of them. None if the caller may post, else the refusal. The caller acts in the
    inspection's town (checked before), and `town` is that town."""
    if principal.roles & {"admin", "county_admin"} or principal.sub in enforcement_leaders(town):
        return None
    if assigned:
        if principal.sub in assigned:
            return None
        return CODES["inspection.not_officer"](officer=principal.sub, officers=", ".join(assigned))
    if principal.sub in named:
        return None
    return CODES["inspection.poster_not_named"]("officers", officer=principal.sub)


def evidence_taker_error(principal: Principal, *, team: Sequence[str], town: Town) -> Refusal | None:
    """Who records an inspection's evidence (执法全过程记录): whoever may post its result, one of
    its team or the enforcement module's leader (or an admin). An inspection started before teams
    were recorded has none: then any officer of its town (the route admits officers alone, and the
    caller acts in `town`, checked before)."""
    if principal.roles & {"admin", "county_admin"} or principal.sub in enforcement_leaders(town):
        return None
    if not team or principal.sub in team:
        return None
    return CODES["inspection.evidence_not_officer"](officer=principal.sub, officers=", ".join(team))


def inspection_evidence_error(status: str) -> Refusal | None:
    """Evidence is recorded during the visit: once started, until its result is recorded (the
    result is signed on the evidence then recorded; what is gathered after goes on its cases)."""
    if status != "started":
        return CODES["inspection.evidence_not_open"](status=status)
    return None


def evidence_step(current: str, taken: Sequence[str], requested: str | None) -> tuple[str, Refusal | None]:
    """The case step a piece of evidence documents, and the refusal if it may not: a step the
    case has taken or the one it works towards (the next), the current one when none is named;
    none on a closed case or one transferred away."""
    if current == "transferred":
        return current, CODES["case.transferred"]()
    if current == "closed":
        return current, CODES["case.closed"]()
    step = requested or current
    if step not in CASE_STEPS:
        return step, CODES["case.step_unknown"]("step", step=step)
    open_steps = [s for s in CASE_STEPS if s in taken or s == current]
    open_steps.append(CASE_STEPS[CASE_STEPS.index(current) + 1])
    if step not in open_steps:
        return step, CODES["case.evidence_step_not_reached"]("step", current=current, requested=step,
                                                             steps=open_steps)
    return step, None


def transfer_destination(outcome: str, item: CatalogItem) -> str | None:
    """not_delegated goes back to the county department that keeps the power; criminal to the
    judicial organs (行刑衔接)."""
    if outcome == "not_delegated":
        return item.department or "县级主管部门"
    if outcome == "criminal":
        return JUDICIAL_ORGANS
    return None


def step_error(current: str, requested: str) -> Refusal | None:
    """Case steps go filed → investigated → reviewed (法制审核) → decided → closed, in order."""
    if current == "transferred":
        return CODES["case.transferred"]()
    if requested not in CASE_STEPS:
        return CODES["case.step_unknown"]("step", step=requested)
    expected_index = CASE_STEPS.index(current) + 1
    if expected_index >= len(CASE_STEPS):
        return CODES["case.closed"]()
    if CASE_STEPS.index(requested) != expected_index:
        return CODES["case.step_out_of_order"]("step", current=current, expected=CASE_STEPS[expected_index],
                                          requested=requested)
    return None


def decision_due(filed_at: datetime, extended: bool, rules: EnforcementRules) -> datetime:
    days = rules.decision_limit_days + (rules.extension_days if extended else 0)
    return filed_at + timedelta(days=days)


def extension_error(filed_at: datetime, extended: bool, now: datetime, rules: EnforcementRules) -> Refusal | None:
    """The one 30-day extension, recorded before the decision limit."""
    if extended:
        return CODES["case.already_extended"]()
    if now >= filed_at + timedelta(days=rules.decision_limit_days):
        return CODES["case.extension_too_late"](day=rules.decision_limit_days)
    return None


# "Past the limit" begins one instant after it; PostgreSQL keeps times to the microsecond.
_INSTANT = timedelta(microseconds=1)


def case_flag_moments(filed_at: datetime, extended: bool, rules: EnforcementRules) -> dict[CaseFlag, datetime]:
    """The first instant each flag holds: the day-60 warning, and past the decision limit."""
    return {
        "warning": filed_at + timedelta(days=rules.decision_warning_day),
        "overdue": decision_due(filed_at, extended, rules) + _INSTANT,
    }


def case_flag(filed_at: datetime, extended: bool, decided: bool, now: datetime,
              rules: EnforcementRules) -> str:
    """'ok', 'warning' (past day 60 without a decision) or 'overdue' (past the limit)."""
    if decided:
        return "ok"
    moments = case_flag_moments(filed_at, extended, rules)
    if now >= moments["overdue"]:
        return "overdue"
    if now >= moments["warning"]:
        return "warning"
    return "ok"


def case_flags_due(filed_at: datetime, extended: bool, flagged: Collection[str], now: datetime,
                   rules: EnforcementRules) -> list[CaseFlag]:
    """Flags that hold by `now` and are not yet set (an overdue case is also past its warning)."""
    moments = case_flag_moments(filed_at, extended, rules)
    return [flag for flag, moment in moments.items() if moment <= now and flag not in flagged]


def next_case_flag_at(filed_at: datetime, extended: bool, flagged: Collection[str],
                      rules: EnforcementRules) -> datetime | None:
    """When the earliest flag not yet set falls due; None once both are set. Stored on the case,
    so the deadline loop reads only the cases that are due."""
    moments = case_flag_moments(filed_at, extended, rules)
    return min((moment for flag, moment in moments.items() if flag not in flagged), default=None)


def draw_plan(targets: Sequence[str], sample_size: int, seed: int,
              officers: Sequence[str]) -> list[tuple[str, list[str]]]:
    """双随机一公开: draw targets and two certified officers per target, reproducibly from the
    seed (the same seed and lists always draw the same plan, whatever their order). Refused
    (raised) when there are fewer distinct targets than the sample or too few officers."""
    if sample_size > len(set(targets)):
        raise CODES["plan.sample_too_large"]("sample_size", sample_size=sample_size, targets=len(set(targets)))
    if len(set(officers)) < OFFICERS_PER_TARGET:
        raise CODES["plan.too_few_officers"](officers=len(set(officers)))
    rng = random.Random(seed)  # noqa: S311 - 双随机 must be reproducible from its published seed, not secret
    chosen = rng.sample(sorted(set(targets)), sample_size)
    pool = sorted(set(officers))
    return [(target, sorted(rng.sample(pool, OFFICERS_PER_TARGET))) for target in chosen]


# --- 多头检查 (SPEC §10) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Visit:
    """An inspection that went to its target (started, or done), as store reads it."""

    inspection_id: str
    target: str
    units: tuple[str, ...]
    at: datetime  # when it started: the day the enterprise was visited


def repeated_inspections(visits: Iterable[Visit], now: datetime,
                         rules: EnforcementRules) -> dict[str, list[Visit]]:
    """Targets visited separately at least twice within the window by at least
    `repeated_inspection_units` units together (多头检查), with those visits, oldest first. One
    combined visit by many units is what 综合查一次 wants, so it alone is never flagged; nor is one
    unit coming back (a re-inspection after rectification)."""
    since = now - timedelta(days=rules.repeated_inspection_window_days)
    by_target: dict[str, list[Visit]] = {}
    for visit in sorted(visits, key=lambda v: v.at):
        if since <= visit.at <= now:
            by_target.setdefault(visit.target, []).append(visit)
    return {target: vs for target, vs in by_target.items()
            if len(vs) >= 2 and len(union_units(*(v.units for v in vs))) >= rules.repeated_inspection_units}


def visits_since(now: datetime, rules: EnforcementRules) -> datetime:
    return now - timedelta(days=rules.repeated_inspection_window_days)
