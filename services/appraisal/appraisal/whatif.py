"""What-if (SPEC §10): every figure of a town's month under other rules (weights, points,
thresholds), computed from the stored facts by the same rules functions the consumer uses, beside
the live figures, subject by subject. Nothing is written: the facts and the live totals are read
in one read-only snapshot (the caller's unit of work), and the month's work (it grows with the month's tasks) runs in a worker
thread, never on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from townflow_shared.town import AppraisalRules, Town

from . import flows, rules, store

FIGURES = ("composite", "points", "rank")


def rules_with(base: AppraisalRules, changes: Mapping[str, Any]) -> AppraisalRules:
    """The town's appraisal rules with `changes` laid over them, section by section (a rules.yaml's
    `appraisal:` section, or any part of it). Raises pydantic's ValidationError on a wrong one."""
    def merged(old: Any, new: Any) -> Any:
        if isinstance(old, dict) and isinstance(new, Mapping):
            return {**old, **{k: merged(old.get(k), v) for k, v in new.items()}}
        return new

    section = changes.get("appraisal", changes) if isinstance(changes.get("appraisal"), Mapping) else changes
    return AppraisalRules.model_validate(merged(base.model_dump(), section))


def _numeric(points: float) -> Decimal:
    """A float as PostgreSQL's float8::numeric reads it (15 significant digits), so sums here are
    the stored totals' sums to the last digit."""
    return Decimal(format(points, ".15g"))


def month_totals(tasks: Iterable[rules.TaskFact], task_subjects: Iterable[Mapping[rules.SubjectType, str | None]],
                 inspections: Iterable[rules.InspectionFact], town: Town,
                 appraisal: AppraisalRules) -> list[rules.SubjectTotals]:
    """The month's subject totals as the consumer would keep them under `appraisal`: each task's
    contribution added to each of its subjects (every subject of a dispatched task is listed, zero
    or not), each inspection's officers' points to their staff, module and seconded unit."""
    counts: dict[tuple[rules.SubjectType, str], rules.Counts] = {}
    points: dict[tuple[rules.SubjectType, str], Decimal] = {}

    def add(subject: tuple[rules.SubjectType, str], c: rules.Counts | None, p: Decimal) -> None:
        into = counts.setdefault(subject, rules.Counts())
        for name, value in vars(c or rules.Counts()).items():
            setattr(into, name, getattr(into, name) + value)
        points[subject] = points.get(subject, Decimal(0)) + p

    for task, subjects in zip(tasks, task_subjects, strict=True):
        c, p = rules.contribution(task, town, appraisal)
        for subject_type, subject_id in subjects.items():
            if subject_id:
                add((subject_type, subject_id), c, _numeric(p))
    for inspection in inspections:
        per_officer: dict[tuple[str, str | None, str | None], float] = {}
        for e in rules.ledger([], [inspection], town, appraisal):  # summed per officer as the consumer keeps them
            key = (e.staff_id, e.module, e.seconded_unit)
            per_officer[key] = per_officer.get(key, 0.0) + e.points
        for (staff_id, module, seconded), p in per_officer.items():
            for subject_type, subject_id in (("staff", staff_id), ("module", module), ("seconded_unit", seconded)):
                if subject_id:
                    add((subject_type, subject_id), None, _numeric(p))  # type: ignore[arg-type]
    return [rules.SubjectTotals(t, i, counts[(t, i)], round(float(points[(t, i)]), 4)) for t, i in sorted(counts)]


@dataclass(frozen=True)
class Comparison:
    subject_type: rules.SubjectType
    subject_id: str
    live: rules.Figures | None
    what_if: rules.Figures | None
    live_alerts: list[str]
    what_if_alerts: list[str]


def compare(period: str, live_totals: list[rules.SubjectTotals], what_if_totals: list[rules.SubjectTotals],
            town: Town, appraisal: AppraisalRules) -> list[Comparison]:
    """Each subject's live figures (the stored totals under the town's rules) against its figures
    under `appraisal`, with the accountability levels each would raise for staff."""
    live = rules.month_figures(period, live_totals, town, town.rules.appraisal)
    other = rules.month_figures(period, what_if_totals, town, appraisal)
    result = []
    for subject_type in rules.SUBJECT_TYPES:
        a = {f.subject_id: f for f in live[subject_type]}
        b = {f.subject_id: f for f in other[subject_type]}
        for subject_id in sorted(set(a) | set(b)):
            fa, fb = a.get(subject_id), b.get(subject_id)
            alerts_a = sorted(rules.alert_levels(fa.counts, town.rules.appraisal)) if fa and subject_type == "staff" else []
            alerts_b = sorted(rules.alert_levels(fb.counts, appraisal)) if fb and subject_type == "staff" else []
            result.append(Comparison(subject_type, subject_id, fa, fb, alerts_a, alerts_b))
    return result


def _difference(a: float | int | None, b: float | int | None) -> float | None:
    return None if a is None or b is None else round(b - a, 4)


def as_dict(c: Comparison) -> dict[str, Any]:
    def side(f: rules.Figures | None, alerts: list[str]) -> dict[str, Any] | None:
        if f is None:
            return None
        return {"composite": f.composite, "points": f.points, "rank": f.rank, "rates": f.rates,
                "dimensions": f.dimensions, **({"alerts": alerts} if c.subject_type == "staff" else {})}

    live, other = c.live, c.what_if
    difference: dict[str, Any] = {name: _difference(getattr(live, name, None), getattr(other, name, None))
                                  for name in FIGURES}
    difference["dimensions"] = {k: _difference(v, other.dimensions.get(k))
                                for k, v in live.dimensions.items()} if live and other else None
    return {"subject_type": c.subject_type, "subject_id": c.subject_id, "live": side(live, c.live_alerts),
            "what_if": side(other, c.what_if_alerts), "difference": difference}


@dataclass(frozen=True)
class MonthRows:
    """What a what-if reads of a town's month: the live totals, the tasks and the inspections."""

    live: Sequence[store.Row]
    tasks: Sequence[store.Row]
    inspections: Sequence[store.Row]


async def read_month(db: store.AppraisalStore, town: Town, period: str) -> MonthRows:
    """The month's rows, from one snapshot (`db`: a read-only unit of work's store)."""
    return MonthRows(await db.month_totals([(town.code, period)]), await db.tasks_of_month(town.code, period),
                     await db.inspections_of_month(town.code, period))


async def what_if(month: MonthRows, town: Town, period: str, appraisal: AppraisalRules) -> dict[str, Any]:
    """Every subject of a town's month, live and under `appraisal`, with the differences."""
    live_rows, task_rows, inspection_rows = month.live, month.tasks, month.inspections

    def compute() -> dict[str, Any]:
        tasks = [flows.task_fact(r) for r in task_rows]
        subjects = [dict(zip(rules.SUBJECT_TYPES, (r["assignee"], r["module"], r["village"], r["seconded_unit"]),
                             strict=True)) for r in task_rows]
        inspections = [flows.inspection_fact(r) for r in inspection_rows]
        other = month_totals(tasks, subjects, inspections, town, appraisal)
        rows = compare(period, [flows.subject_totals(r) for r in live_rows], other, town, appraisal)
        return {"town_code": town.code, "period": period, "rules": appraisal.model_dump(mode="json"),
                "subjects": [as_dict(c) for c in rows]}

    return await asyncio.to_thread(compute)


def table(result: Mapping[str, Any]) -> str:
    """The comparison as a plain table, one subject a line, for the command line."""
    lines = [f"what-if for town {result['town_code']}, {result['period']}",
             f"{'subject':<26} {'composite live':>14} {'what-if':>9} {'diff':>9} {'points live':>12} {'what-if':>9}"
             f" {'diff':>9} {'rank':>9}"]

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")

    for s in result["subjects"]:
        live, other, diff = s["live"] or {}, s["what_if"] or {}, s["difference"]
        rank = f"{num(live.get('rank'))}→{num(other.get('rank'))}"
        lines.append(f"{s['subject_type'] + ':' + s['subject_id']:<26} {num(live.get('composite')):>14}"
                     f" {num(other.get('composite')):>9} {num(diff['composite']):>9} {num(live.get('points')):>12}"
                     f" {num(other.get('points')):>9} {num(diff['points']):>9} {rank:>9}")
    return "\n".join(lines)
