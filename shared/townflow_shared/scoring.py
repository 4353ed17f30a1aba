"""The arithmetic of appraisal's scores that more than one service needs (SPEC §5.5): what the tasks
of a month add up to (counts, 三率, the composite) and the points ledger (积分), as pure functions.

Appraisal scores the live month with it (appraisal/rules.py builds on it); dispatch's rehearsal
(dispatch/rehearsal.py) scores a replayed month with the same functions, so a rehearsed composite
is the one appraisal would give. Services share nothing but topics and this library: the formulas
live here once instead of dispatch importing appraisal (which its image does not carry)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .town import AppraisalRules, Town

SubjectType = Literal["staff", "module", "village", "seconded_unit"]
SUBJECT_TYPES: tuple[SubjectType, ...] = ("staff", "module", "village", "seconded_unit")


@dataclass(frozen=True)
class TaskFact:
    task_id: str
    period: str
    assignee: str
    module: str | None
    village: str | None
    seconded_unit: str | None
    colour: str
    difficulty: float
    responded: bool
    completions: int
    failed_checks: int
    last_on_time: bool | None
    extensions: int
    superseded: bool
    returned_invalid: bool
    rating: str | None = None
    completed_event: str | None = None
    overdue_event: str | None = None
    escalated_event: str | None = None
    invalid_return_event: str | None = None
    rated_event: str | None = None
    merged: bool = False      # 重复件: merged into another matter now (its latest merge event says so)
    passed_checks: int = 0    # closure checks passed: the task was closed
    reopens: int = 0          # 重办: reopened by an unsatisfied callback after closure
    suspensions: int = 0      # 挂起: suspended while waiting on the citizen or a third party

    @property
    def counted(self) -> bool:
        """In the rates and points at all: not redispatched away, not merged into another matter."""
        return not self.superseded and not self.merged

    @property
    def resolved(self) -> bool:
        """Completed by its deadline and not sent back since, by a failed closure check or by a
        callback's reopening (重办): each sending back needs a completion of its own after it.
        `last_on_time` is the completion's own, against the deadline the task had then (a reopened
        task's or an unmerged one's new window)."""
        return self.completions > self.failed_checks + self.reopens and bool(self.last_on_time)

    def subject(self, subject_type: SubjectType) -> str | None:
        return {"staff": self.assignee, "module": self.module, "village": self.village,
                "seconded_unit": self.seconded_unit}[subject_type]


@dataclass(frozen=True)
class InspectionFact:
    inspection_id: str
    period: str
    officers: tuple[str, ...]
    task_count: int
    event_id: str


@dataclass
class Counts:
    dispatched: int = 0
    responded: int = 0
    resolved: int = 0
    completed: int = 0
    reworked: int = 0
    extended: int = 0
    rated: int = 0
    satisfied: int = 0
    overdue: int = 0
    escalated: int = 0
    escalated_red: int = 0
    closed: int = 0
    reopened: int = 0
    suspended: int = 0


def counts(tasks: Iterable[TaskFact]) -> Counts:
    """Counts over the tasks that stand: a returned-and-redispatched matter counts once, against
    its final assignee; a matter merged into another (重复件) not at all, its primary stands for it.
    A task reopened by a callback (重办) counts once in `reopened` however often it was, and not
    in `reworked` (返工, failed closure checks)."""
    c = Counts()
    for t in tasks:
        if not t.counted:
            continue
        c.dispatched += 1
        c.responded += t.responded
        c.resolved += t.resolved
        c.completed += t.completions > 0
        c.reworked += t.failed_checks > 0
        c.extended += t.extensions > 0
        c.overdue += t.overdue_event is not None
        c.escalated += t.escalated_event is not None
        c.escalated_red += t.escalated_event is not None and t.colour == "red"
        c.closed += t.passed_checks > 0
        c.reopened += t.reopens > 0
        c.suspended += t.suspensions > 0
        if t.rating is not None:
            c.rated += 1
            c.satisfied += t.rating in ("satisfied", "basically_satisfied")
    return c


def ratio(numerator: int, denominator: int) -> float | None:
    """A rate with no denominator is null, not 0."""
    return numerator / denominator if denominator else None


def rates(c: Counts) -> dict[str, float | None]:
    return {
        "response": ratio(c.responded, c.dispatched),
        "resolution": ratio(c.resolved, c.dispatched),
        "satisfaction": ratio(c.satisfied, c.rated),
        "rework": ratio(c.reworked, c.completed),
        "extension": ratio(c.extended, c.dispatched),
        "reopen": ratio(c.reopened, c.closed),  # 重办率
        "suspension": ratio(c.suspended, c.dispatched),  # 挂起率: tasks suspended at least once
    }


def weighted(values: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    """Weighted mean over the values that exist; the weights of null values are renormalised away."""
    present = {k: v for k, v in values.items() if v is not None and weights.get(k, 0) > 0}
    total = sum(weights[k] for k in present)
    if not present or total == 0:
        return None
    return sum(weights[k] * v for k, v in present.items()) / total


def composite(r: Mapping[str, float | None], rules: AppraisalRules) -> float | None:
    w = rules.weights
    value = weighted({k: r[k] for k in ("response", "resolution", "satisfaction")},
                     {"response": w.response, "resolution": w.resolution, "satisfaction": w.satisfaction})
    return None if value is None else round(100 * value, 4)


@dataclass(frozen=True)
class LedgerEntry:
    staff_id: str
    module: str | None
    village: str | None
    seconded_unit: str | None
    reason: str
    points: float
    event_id: str | None
    ref: str  # task or inspection id

    def subject(self, subject_type: SubjectType) -> str | None:
        return {"staff": self.staff_id, "module": self.module, "village": self.village,
                "seconded_unit": self.seconded_unit}[subject_type]


def ledger(tasks: Iterable[TaskFact], inspections: Iterable[InspectionFact], town: Town,
           rules: AppraisalRules) -> list[LedgerEntry]:
    """Every points entry (积分) with the event that caused it."""
    p = rules.points
    entries: list[LedgerEntry] = []
    for t in tasks:
        if t.merged:
            continue  # 重复件: no points, the supervision's penalties before the merge included

        def entry(reason: str, points: float, event_id: str | None, t: TaskFact = t) -> None:
            entries.append(LedgerEntry(t.assignee, t.module, t.village, t.seconded_unit, reason,
                                       round(points, 4), event_id, t.task_id))

        if t.completions > 0:
            factor = p.colour_factor.get(t.colour, 1.0)  # type: ignore[call-overload]
            entry("completed", p.completed * t.difficulty * factor, t.completed_event)
        if t.resolved:
            entry("on_time", p.on_time, t.completed_event)
        if t.overdue_event:
            entry("overdue", p.overdue, t.overdue_event)
        if t.escalated_event:
            entry("escalated", p.escalated, t.escalated_event)
        if t.returned_invalid:
            entry("invalid_return", p.invalid_return, t.invalid_return_event)
        if not t.superseded and t.rating == "satisfied":
            entry("satisfied", p.satisfied, t.rated_event)
        if not t.superseded and t.rating == "unsatisfied":
            entry("unsatisfied", p.unsatisfied, t.rated_event)
    for i in inspections:
        for officer in i.officers:
            staff = town.staff.get(officer)
            module = staff.module if staff else None
            seconded = module if module and town.modules[module].kind == "seconded" else None
            entries.append(LedgerEntry(officer, module, None, seconded, "inspection_officer",
                                       p.inspection_officer, i.event_id, i.inspection_id))
            if i.task_count > 1:
                entries.append(LedgerEntry(officer, module, None, seconded, "combined_extra_tasks",
                                           p.combined_extra_task * (i.task_count - 1), i.event_id,
                                           i.inspection_id))
    return entries


def contribution(task: TaskFact, town: Town, rules: AppraisalRules) -> tuple[Counts, float]:
    """What one task adds to its subjects' counts and points: the same rules as for a whole
    month, applied to the task alone, so sums of contributions equal the month's figures."""
    return counts([task]), round(sum(e.points for e in ledger([task], [], town, rules)), 4)
