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
from zoneinfo import ZoneInfo

# The month's arithmetic (counts, 三率, composite, ledger) lives in the shared library, where
# dispatch's rehearsal scores a replayed month with it too; appraisal's names for it stay these.
from townflow_shared.scoring import (
    SUBJECT_TYPES,
    Counts,
    InspectionFact,
    LedgerEntry,
    SubjectType,
    TaskFact,
    composite,
    contribution,
    counts,
    ledger,
    rates,
    ratio,
    weighted,
)
from townflow_shared.town import AppraisalRules, Town

# Appraisal's callers (flows, rebuild, what-if, the tests) keep reading these names here.
REEXPORTED = (SUBJECT_TYPES, Counts, InspectionFact, LedgerEntry, TaskFact, composite, contribution, counts, ledger,
              rates, ratio, weighted)


def period_of(moment: datetime, tz: ZoneInfo) -> str:
    """The appraisal period: the calendar month in the town's time zone."""
    return moment.astimezone(tz).strftime("%Y-%m")


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
