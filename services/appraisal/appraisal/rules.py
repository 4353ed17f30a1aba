"""Appraisal's business rules as pure functions (SPEC §5.5): what one task adds to its subjects'
counts and points, and from a subject's month of totals its rates, four dimensions, composite
and rank; alerts, the bonus split and the two-way score of seconded units.

A task's contribution is computed from its facts, never from the order they arrived; subjects'
totals are sums of contributions, so replaying the topics in any batching gives the same scores."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

from townflow_shared.town import AppraisalRules, Town

SubjectType = Literal["staff", "module", "village", "seconded_unit"]
SUBJECT_TYPES: tuple[SubjectType, ...] = ("staff", "module", "village", "seconded_unit")


def period_of(moment: datetime, tz: ZoneInfo) -> str:
    """The appraisal period: the calendar month in the town's time zone."""
    return moment.astimezone(tz).strftime("%Y-%m")


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


def dimensions(r: Mapping[str, float | None], c: Counts, points: float, median_points: float | None,
               rules: AppraisalRules) -> dict[str, float | None]:
    """月度四维考核, each 0–25: efficiency, quality, workload (points against the median of the
    subject's peers: the median earns half marks), discipline."""
    d = rules.dimensions
    full = d.max_each
    efficiency = weighted({"response": r["response"], "resolution": r["resolution"]}, d.efficiency_weights)
    no_rework = None if r["rework"] is None else 1 - r["rework"]
    quality = weighted({"satisfaction": r["satisfaction"], "no_rework": no_rework}, d.quality_weights)
    if median_points is not None and median_points > 0:
        workload = min(full, full / 2 * points / median_points)
    else:
        workload = full if points > 0 else 0.0
    discipline = max(0.0, full - d.discipline_penalty_overdue * c.overdue - d.discipline_penalty_escalated * c.escalated)
    return {
        "efficiency": None if efficiency is None else round(full * efficiency, 4),
        "quality": None if quality is None else round(full * quality, 4),
        "workload": round(max(workload, 0.0), 4),
        "discipline": round(discipline, 4),
    }


@dataclass
class Figures:
    subject_type: SubjectType
    subject_id: str
    period: str
    counts: Counts
    rates: dict[str, float | None]
    points: float
    dimensions: dict[str, float | None]
    composite: float | None
    rank: int | None = None


def median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class SubjectTotals:
    """A subject's month as kept: the sums of its tasks' and inspections' contributions."""
    subject_type: SubjectType
    subject_id: str
    counts: Counts
    points: float


def month_figures(period: str, totals: Iterable[SubjectTotals], town: Town,
                  rules: AppraisalRules) -> dict[SubjectType, list[Figures]]:
    """Every subject's figures of a town's month from its totals, with workload against peers
    and ranks within the town. Its work grows with the town's subjects, not with its matters."""
    by_type: dict[SubjectType, list[SubjectTotals]] = {t: [] for t in SUBJECT_TYPES}
    for t in totals:
        by_type[t.subject_type].append(t)
    result: dict[SubjectType, list[Figures]] = {}
    for subject_type, subjects in by_type.items():
        subjects.sort(key=lambda t: t.subject_id)
        points = {t.subject_id: t.points for t in subjects}
        peers = _peer_medians(subject_type, list(points), points, town)
        figs = []
        for t in subjects:
            r = rates(t.counts)
            figs.append(Figures(subject_type, t.subject_id, period, t.counts, r, t.points,
                                dimensions(r, t.counts, t.points, peers[t.subject_id], rules), composite(r, rules)))
        ranked = ranks({f.subject_id: f.composite for f in figs})
        for f in figs:
            f.rank = ranked.get(f.subject_id)
        result[subject_type] = figs
    return result


def _peer_medians(subject_type: SubjectType, ids: Sequence[str], points: Mapping[str, float],
                  town: Town) -> dict[str, float | None]:
    """Staff are measured against their module's median; other subjects against their type's."""
    if subject_type != "staff":
        m = median(points.values())
        return dict.fromkeys(ids, m)
    by_module: dict[str, list[float]] = {}
    for i in ids:
        module = town.staff[i].module if i in town.staff else ""
        by_module.setdefault(module, []).append(points[i])
    return {i: median(by_module[town.staff[i].module if i in town.staff else ""]) for i in ids}


def ranks(composites: Mapping[str, float | None]) -> dict[str, int]:
    """1 is best; equal composites share a rank; subjects without a composite are unranked."""
    ordered = sorted((v for v in composites.values() if v is not None), reverse=True)
    return {k: 1 + ordered.index(v) for k, v in composites.items() if v is not None}


def red_and_black_lists(figs: Sequence[Figures], size: int) -> tuple[list[Figures], list[Figures]]:
    """红黑榜: the top and the bottom `size` subjects by composite."""
    ranked = sorted((f for f in figs if f.composite is not None),
                    key=lambda f: (-f.composite, f.subject_id))  # type: ignore[operator]
    black = sorted(ranked, key=lambda f: (f.composite, f.subject_id))[:size]  # type: ignore[arg-type, return-value]
    return ranked[:size], black


def alert_levels(c: Counts, rules: AppraisalRules) -> dict[str, list[str]]:
    """提醒 / 约谈 / 问责 due for a staff member's month, with the reasons."""
    a = rules.alerts
    due: dict[str, list[str]] = {}
    if c.overdue >= a.reminder_overdue:
        due["reminder"] = [f"{c.overdue} overdue tasks this month (threshold {a.reminder_overdue})"]
    talk = []
    if c.overdue >= a.talk_overdue:
        talk.append(f"{c.overdue} overdue tasks this month (threshold {a.talk_overdue})")
    satisfaction = ratio(c.satisfied, c.rated)
    if c.rated >= a.talk_min_ratings and satisfaction is not None and satisfaction < a.talk_satisfaction_below:
        talk.append(f"satisfaction {satisfaction:.0%} over {c.rated} ratings (below {a.talk_satisfaction_below:.0%})")
    if talk:
        due["talk"] = talk
    accountability = []
    if c.overdue >= a.accountability_overdue:
        accountability.append(f"{c.overdue} overdue tasks this month (threshold {a.accountability_overdue})")
    if a.accountability_on_escalated_red and c.escalated_red > 0:
        accountability.append(f"{c.escalated_red} red task(s) escalated")
    if accountability:
        due["accountability"] = accountability
    return due


def bonus_split(pool: Decimal, weights: Mapping[str, float]) -> dict[str, Decimal]:
    """差异化分配: split the pool in proportion to the weights, to the cent, by the largest
    remainder method, so the shares sum exactly to the pool and none is negative. The arithmetic
    is in exact fractions: Decimal's 28 digits made a large pool's split inexact (and could give
    a cent too many or too few)."""
    cents = pool * 100
    if cents != cents.to_integral_value(rounding=ROUND_FLOOR):
        raise ValueError("the pool must be given in yuan to the cent")
    whole = int(cents)
    positive = {k: Fraction(Decimal(str(max(w, 0.0)))) for k, w in weights.items()}
    total = sum(positive.values(), Fraction(0))
    if total == 0:
        raise ValueError("no one has a positive weight to share the pool by")
    exact = {k: whole * w / total for k, w in positive.items()}
    floors = {k: math.floor(v) for k, v in exact.items()}
    left = whole - sum(floors.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - floors[k]), k))
    for k in by_remainder[:left]:
        floors[k] += 1
    with localcontext() as exact_enough:  # yuan from cents, every digit kept
        exact_enough.prec = max(28, len(str(whole)) + 3)
        return {k: Decimal(v) / 100 for k, v in floors.items()}


def seconded_final(town_score: float | None, department_score: float | None,
                   rules: AppraisalRules) -> float | None:
    """双向考评: 0.6 × the town's composite + 0.4 × the parent department's score."""
    if town_score is None or department_score is None:
        return None
    s = rules.seconded
    return round(s.town_weight * town_score + s.department_weight * department_score, 4)


COUNTY_MEASURES = ("composite", "response", "resolution", "satisfaction")


@dataclass(frozen=True)
class TownFigures:
    """A town as one subject over all its tasks of a month (SPEC §8)."""
    town_code: str
    name: str
    counts: Counts
    rates: dict[str, float | None]
    composite: float | None


def town_figures(town_code: str, name: str, c: Counts, rules: AppraisalRules) -> TownFigures:
    """A town's figures from the counts of all its standing tasks, by the town's own weights."""
    r = rates(c)
    return TownFigures(town_code, name, c, r, composite(r, rules))


def county_rankings(towns: Sequence[TownFigures]) -> dict[str, object]:
    """The county's towns ranked by the composite of their matters and by each of the three rates
    (渠县 ranks its towns on 社会满意度 every year): 1 is best, equal figures share a rank, a town
    without a figure (no task, or no rating) is unranked. Plain data, towns in code order."""
    def measure(t: TownFigures, name: str) -> float | None:
        return t.composite if name == "composite" else t.rates[name]

    ranked = {name: ranks({t.town_code: measure(t, name) for t in towns}) for name in COUNTY_MEASURES}
    rows = [{"town_code": t.town_code, "name": t.name, "dispatched": t.counts.dispatched,
             "responded": t.counts.responded, "resolved": t.counts.resolved, "rated": t.counts.rated,
             "satisfied": t.counts.satisfied, "composite": t.composite,
             "rates": {k: t.rates[k] for k in ("response", "resolution", "satisfaction")},
             "ranks": {name: ranked[name].get(t.town_code) for name in COUNTY_MEASURES}}
            for t in sorted(towns, key=lambda t: t.town_code)]
    orders = {name: [code for code, _ in sorted(ranked[name].items(), key=lambda kv: (kv[1], kv[0]))]
              for name in COUNTY_MEASURES}
    return {"towns": rows, "rankings": orders}


# --- hotspots (热点, issue #30) --------------------------------------------------------------------
# How many of the cells that rose most a hotspot table names (每月一题 picks from the top few).
RISING_CELLS = 5


def previous_period(period: str) -> str:
    """The month before `period` (YYYY-MM)."""
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


@dataclass(frozen=True)
class CellMonth:
    """A grid cell's located matters of a month, the month before, and by item (most first)."""

    cell: str
    count: int
    previous: int
    items: tuple[tuple[str, int], ...]

    @property
    def rise(self) -> int:
        return self.count - self.previous


def hotspots(period: str, counts: Iterable[tuple[str, str, str, int]]) -> list[CellMonth]:
    """Every cell with a matter in `period` or the month before, from (period, cell, item, n)
    counts: the busiest first (then by code), each with its items by count (then by code)."""
    before = previous_period(period)
    now: dict[str, dict[str, int]] = {}
    previous: dict[str, int] = {}
    for month, cell, item, n in counts:
        if month == period:
            now.setdefault(cell, {})[item] = now.get(cell, {}).get(item, 0) + n
        elif month == before:
            previous[cell] = previous.get(cell, 0) + n
    cells = [CellMonth(cell, sum(now.get(cell, {}).values()), previous.get(cell, 0),
                       tuple(sorted(now.get(cell, {}).items(), key=lambda kv: (-kv[1], kv[0]))))
             for cell in set(now) | set(previous)]
    return sorted(cells, key=lambda c: (-c.count, c.cell))


def rising(cells: Iterable[CellMonth], size: int = RISING_CELLS) -> list[CellMonth]:
    """The cells that rose most over the month before (a rise of at least one), the largest rise
    first, then the busier, then by code."""
    return sorted((c for c in cells if c.rise > 0), key=lambda c: (-c.rise, -c.count, c.cell))[:size]
