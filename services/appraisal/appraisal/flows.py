"""Appraisal's operations inside the caller's transaction: read facts, let the rules compute,
publish score.updated and alert.raised through the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from townflow_shared.events import (
    AlertRaised,
    AlertRaisedData,
    Envelope,
    ScoreUpdated,
    ScoreUpdatedData,
    new_event,
)
from townflow_shared.outbox import enqueue
from townflow_shared.telemetry import current_trace_headers
from townflow_shared.town import Town

from . import rules, store

Subject = tuple[rules.SubjectType, str]


def task_fact(row: asyncpg.Record) -> rules.TaskFact:
    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return rules.TaskFact(
        task_id=row["task_id"], period=row["period"], assignee=row["assignee"], module=row["module"],
        village=row["village"], seconded_unit=row["seconded_unit"], colour=row["colour"],
        difficulty=row["difficulty"] or 1.0, responded=row["responded"], completions=row["completions"],
        failed_checks=row["failed_checks"], last_on_time=row["last_on_time"], extensions=row["extensions"],
        superseded=row["superseded"], returned_invalid=row["returned_invalid"], rating=row["rating"],
        completed_event=text(row["completed_event"]), overdue_event=text(row["overdue_event"]),
        escalated_event=text(row["escalated_event"]), invalid_return_event=text(row["invalid_return_event"]),
        rated_event=text(row["rated_event"]))


def inspection_fact(row: asyncpg.Record) -> rules.InspectionFact:
    return rules.InspectionFact(row["inspection_id"], row["period"], tuple(row["officers"]), row["task_count"],
                                str(row["event_id"]))


def subjects_of_task(row: asyncpg.Record | None) -> list[Subject]:
    if row is None or row["dispatched_event"] is None:
        return []
    pairs: list[Subject] = [("staff", row["assignee"]), ("module", row["module"]),
                            ("village", row["village"]), ("seconded_unit", row["seconded_unit"])]
    return [(t, i) for t, i in pairs if i]


def module_staff(town: Town, module: str) -> list[str]:
    return [s.id for s in town.staff.values() if s.module == module]


async def refresh_contribution(conn: asyncpg.Connection, town: Town, task_id: str) -> asyncpg.Record | None:
    """Recompute what a task adds to its subjects, after any of its facts changed; return the
    task's facts (its subjects and period), or None while its dispatch has not arrived."""
    row = await store.fact_of_task(conn, town.code, task_id)
    if row is None:
        return None  # not dispatched yet: it counts once its dispatch arrives
    c, points = rules.contribution(task_fact(row), town, town.rules.appraisal)
    await store.set_contribution(conn, town.code, task_id, vars(c), points)
    return row


def figures_of(town: Town, subject_type: rules.SubjectType, subject_id: str, period: str,
               state: store.SubjectState) -> rules.Figures:
    """A subject's figures from the sums of its contributions and its peers' points."""
    c = rules.Counts(**state.sums)
    r = rules.rates(c)
    a = town.rules.appraisal
    return rules.Figures(subject_type, subject_id, period, c, r, state.points,
                         rules.dimensions(r, c, state.points, rules.median(state.peers), a), rules.composite(r, a))


@dataclass
class _Changed:
    """A subject's figures changed in this transaction: in which town, by which events, under
    whose trace."""
    town: Town
    causes: list[Envelope] = field(default_factory=list)
    trace: dict[str, str] = field(default_factory=dict)


# A subject of a town in a month: (town_code, subject_type, subject_id, period).
_Key = tuple[str, rules.SubjectType, str, str]

_changed_in_transaction: ContextVar[dict[_Key, _Changed] | None] = ContextVar(
    "appraisal_changed_in_transaction", default=None)


def scores_once_per_transaction() -> Callable[[asyncpg.Connection], AbstractAsyncContextManager[None]]:
    """A consumer batch publishes each changed subject's figures once, after all its events:
    at load a batch holds many events of the same staff, module and village, and one
    score.updated with the final figures says all that the intermediate ones would have."""

    @asynccontextmanager
    async def scope(conn: asyncpg.Connection) -> AsyncIterator[None]:
        changed: dict[_Key, _Changed] = {}
        token = _changed_in_transaction.set(changed)
        try:
            yield
        finally:
            _changed_in_transaction.reset(token)
        await _publish(conn, changed)  # only when every handler succeeded

    return scope


async def publish_scores(conn: asyncpg.Connection, town: Town, subjects: Iterable[Subject],
                         period: str | None, cause: Envelope) -> None:
    """score.updated for each subject of the town whose figures the event touched (once per
    consumer transaction, see scores_once_per_transaction; at once elsewhere); alerts for staff."""
    if period is None:
        return
    batch = _changed_in_transaction.get()
    changed = batch if batch is not None else {}
    trace = current_trace_headers()  # the score follows the trace of the matter that changed it last
    for subject_type, subject_id in dict.fromkeys(subjects):
        entry = changed.setdefault((town.code, subject_type, subject_id, period), _Changed(town))
        entry.causes.append(cause)
        entry.trace = trace
    if batch is None:
        await _publish(conn, changed)


async def _publish(conn: asyncpg.Connection, changed: dict[_Key, _Changed]) -> None:
    """Every changed subject's figures in one query and their cache in one statement: the
    peers' points and ranks are those from before this batch, within the subject's town."""
    keys = [(code, subject_type, subject_id, period, _module_of(entry.town, subject_type, subject_id))
            for (code, subject_type, subject_id, period), entry in changed.items()]
    states = await store.subjects_state(conn, keys)
    figures = [figures_of(entry.town, t, i, p, state)
               for (_, t, i, p, _), entry, state in zip(keys, changed.values(), states, strict=True)]
    ranks = await store.cache_scores(conn, [(c, t, i, p, f.composite, f.points, m)
                                            for (c, t, i, p, m), f in zip(keys, figures, strict=True)])
    events: list[Envelope] = []
    traces: list[dict[str, str]] = []
    for ((_, subject_type, subject_id, period, _), figs, rank, entry) in zip(
            keys, figures, ranks, changed.values(), strict=True):
        cause = entry.causes[-1]
        events.append(new_event(ScoreUpdated, ScoreUpdatedData(
            subject_type=subject_type, subject_id=subject_id, period=period, rates=figs.rates,
            points=figs.points, dimensions=figs.dimensions, composite=figs.composite, rank=rank,
            cause_event_id=str(cause.id),
            cause_event_ids=list(dict.fromkeys(str(c.id) for c in entry.causes)),
            correlation_ids=list(dict.fromkeys(c.correlation_id for c in entry.causes))),
            source="appraisal", town_code=entry.town.code,
            subject=f"{subject_type}:{subject_id}", correlation_id=cause.correlation_id,
            time=cause.time, causation_id=cause.id))
        traces.append(entry.trace)
        if subject_type == "staff":
            alerts = await _alerts(conn, entry.town, subject_id, period, figs, cause)
            events.extend(alerts)
            traces.extend([entry.trace] * len(alerts))
    await enqueue(conn, *events, trace_headers=traces)


def _module_of(town: Town, subject_type: str, subject_id: str) -> str | None:
    """A staff member's module: their peers for the workload median are its staff."""
    return town.staff[subject_id].module if subject_type == "staff" and subject_id in town.staff else None


async def _alerts(conn: asyncpg.Connection, town: Town, staff_id: str, period: str,
                  figs: rules.Figures, cause: Envelope) -> list[Envelope]:
    raised = []
    for level, reasons in rules.alert_levels(figs.counts, town.rules.appraisal).items():
        if await store.raise_alert(conn, town.code, staff_id, period, level, reasons, cause.time, cause.id):
            raised.append(new_event(AlertRaised, AlertRaisedData(
                staff_id=staff_id, period=period, level=level, reasons=reasons),  # type: ignore[arg-type]
                source="appraisal", town_code=town.code, subject=f"staff:{staff_id}",
                correlation_id=cause.correlation_id, time=cause.time, causation_id=cause.id))
    return raised


async def period_figures(db: asyncpg.Pool | asyncpg.Connection, town: Town,
                         period: str) -> dict[rules.SubjectType, list[rules.Figures]]:
    """Every subject's exact figures of a town for a period, straight from the facts."""
    tasks = [task_fact(r) for r in await store.facts_of_period(db, town.code, period)]
    inspections = [inspection_fact(r) for r in await store.inspections_of(db, town.code, period)]
    return rules.all_figures(period, tasks, inspections, town, town.rules.appraisal)


async def county_rankings(db: asyncpg.Pool | asyncpg.Connection, towns: Iterable[Town],
                          period: str) -> dict[str, Any]:
    """The county's towns ranked by the composite of their matters and by each rate (SPEC §8)."""
    figures = {}
    for town in towns:
        tasks = [task_fact(r) for r in await store.facts_of_period(db, town.code, period)]
        figures[town.code] = rules.town_figures(town.code, town.info.name, rules.counts(tasks), town.rules.appraisal)
    return {"period": period, **rules.county_rankings(list(figures.values()))}


def as_dict(f: rules.Figures, extra: dict[str, object] | None = None) -> dict[str, object]:
    return {"subject_type": f.subject_type, "subject_id": f.subject_id, "period": f.period,
            "rates": f.rates, "points": f.points, "dimensions": f.dimensions, "composite": f.composite,
            "rank": f.rank, "counts": vars(f.counts), **(extra or {})}


