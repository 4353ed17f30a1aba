"""Appraisal's operations: a consumer batch's facts applied set-based in the caller's transaction,
the changed subjects' figures published once per batch; and the figures of a town's month read
from what is stored. Live consumption and the rebuild apply batches with the same function."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from townflow_shared.county import County
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
from .facts import Cause, FactBatch, SubjectKey


class Batches:
    """Each consumer transaction's batch of facts: the handlers add to it event by event; when
    they are all done, still inside the transaction, it is applied in one set of statements."""

    def __init__(self, county: County, publishing: bool = True) -> None:
        self.county = county
        self.publishing = publishing  # a rebuild keeps alerts but publishes nothing: subscribers have had it
        self._open: dict[asyncpg.Connection, FactBatch] = {}

    def of(self, conn: asyncpg.Connection) -> FactBatch:
        return self._open[conn]

    def cause(self, conn: asyncpg.Connection, event: Envelope) -> tuple[FactBatch, Cause]:
        """The transaction's batch, and the event as a cause of changed figures with its trace
        (which only a published score needs: formatting it is a good part of a replay's time)."""
        batch = self._open[conn]
        return batch, batch.cause(event, current_trace_headers() if self.publishing else {})

    @asynccontextmanager
    async def scope(self, conn: asyncpg.Connection) -> AsyncIterator[None]:
        self._open[conn] = FactBatch()
        try:
            yield
        finally:
            batch = self._open.pop(conn)
        await apply_batch(conn, batch, self.county, self.publishing)  # only when every handler succeeded


async def apply_batch(conn: asyncpg.Connection, batch: FactBatch, county: County, publishing: bool) -> None:
    """The one way appraisal takes in events: facts by kind in one statement each, the touched
    tasks' contributions recomputed and written in one (statement triggers add them to the
    subjects' totals), then the changed subjects' figures and alerts."""
    await store.record_matters(conn, batch)
    await store.record_dispatches(conn, batch)
    await store.record_task_events(conn, batch)
    await store.record_lifecycles(conn, batch)
    await store.record_inspections(conn, batch)
    changed = await _refresh_contributions(conn, batch, county)
    for subject, causes in batch.subject_causes.items():
        changed.setdefault(subject, []).extend(causes)
    if changed:
        await _figures_changed(conn, changed, county, publishing)


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
        rated_event=text(row["rated_event"]), merged=row["merged"], passed_checks=row["passed_checks"],
        reopens=row["reopens"])


def inspection_fact(row: asyncpg.Record) -> rules.InspectionFact:
    return rules.InspectionFact(row["inspection_id"], row["period"], tuple(row["officers"]), row["task_count"],
                                str(row["event_id"]))


def subjects_of_task(row: asyncpg.Record) -> list[tuple[rules.SubjectType, str]]:
    return [(t, i) for t in rules.SUBJECT_TYPES if (i := row[_SUBJECT_COLUMN[t]])]


_SUBJECT_COLUMN = {"staff": "assignee", "module": "module", "village": "village", "seconded_unit": "seconded_unit"}


async def _refresh_contributions(conn: asyncpg.Connection, batch: FactBatch,
                                 county: County) -> dict[SubjectKey, list[Cause]]:
    """Recompute what each touched task adds to its subjects (the rules on its facts, whatever
    order they came in); write those that changed; return the subjects touched, with why."""
    touched: dict[SubjectKey, list[Cause]] = {}
    changed = []
    for row in await store.facts_of_tasks(conn, batch.task_causes, batch.matter_causes):
        town = county.town(row["town_code"])
        if town is None:  # a town no longer served: its facts are kept, its figures not computed
            continue
        counts, points = rules.contribution(task_fact(row), town, town.rules.appraisal)
        c = vars(counts)
        if any(row[f"c_{k}"] != v for k, v in c.items()) or row["c_points"] != points:
            changed.append((row["town_code"], row["task_id"], c, points))
        causes = list(batch.task_causes.get((row["town_code"], row["task_id"]), ()))
        if not row["superseded"]:  # a rating counts for the matter's standing task only (none if merged)
            causes += batch.matter_causes.get((row["town_code"], row["request_id"]), ())
        for subject_type, subject_id in subjects_of_task(row) if causes else ():
            touched.setdefault((town.code, subject_type, subject_id, row["period"]), []).extend(causes)
    await store.set_contributions(conn, changed)
    return touched


async def _figures_changed(conn: asyncpg.Connection, changed: dict[SubjectKey, list[Cause]], county: County,
                           publishing: bool) -> None:
    """Alerts due to the changed staff, raised once per level; with `publishing`, score.updated
    for every changed subject (once per batch, with the figures after all of it) and
    alert.raised, through the outbox."""
    totals = await _totals_of_months(conn, {(town, period) for town, _, _, period in changed})
    of_subject = {(code, t.subject_type, t.subject_id, period): t
                  for (code, period), subjects in totals.items() for t in subjects}
    ordered = sorted(changed.items(), key=lambda kv: (min(c.order for c in kv[1]), kv[0]))
    due: dict[tuple[str, str, str], list[tuple[str, list[str], Envelope]]] = {}
    for (code, subject_type, subject_id, period), causes in ordered:
        mine = of_subject.get((code, subject_type, subject_id, period)) if subject_type == "staff" else None
        town = county.town(code)
        if mine is None or town is None:
            continue
        last = max(causes, key=lambda c: c.order).event
        due[(code, subject_id, period)] = [(level, reasons, last) for level, reasons in
                                           rules.alert_levels(mine.counts, town.rules.appraisal).items()]
    raised = await store.raise_alerts(conn, [(*staff, level, reasons, cause.time, cause.id)
                                             for staff, levels in due.items() for level, reasons, cause in levels])
    if not publishing:
        return
    figures = _figures_of_months(totals, county)
    events: list[Envelope] = []
    traces: list[dict[str, str]] = []
    for (code, subject_type, subject_id, period), causes in ordered:
        f = figures.get((code, subject_type, subject_id, period))
        if f is None:
            continue
        in_order = sorted(causes, key=lambda c: c.order)
        trace = in_order[-1].trace  # the score follows the trace of the matter that changed it last
        events.append(_score_updated(code, f, in_order))
        traces.append(trace)
        for level, reasons, cause in due.get((code, subject_id, period), []) if subject_type == "staff" else []:
            if (code, subject_id, period, level) in raised:
                events.append(_alert_raised(code, subject_id, period, level, reasons, cause))
                traces.append(trace)
    await enqueue(conn, *events, trace_headers=traces)


def _score_updated(town_code: str, f: rules.Figures, causes: list[Cause]) -> Envelope:
    cause = causes[-1].event
    return new_event(ScoreUpdated, ScoreUpdatedData(
        subject_type=f.subject_type, subject_id=f.subject_id, period=f.period, rates=f.rates, points=f.points,
        dimensions=f.dimensions, composite=f.composite, rank=f.rank, cause_event_id=str(cause.id),
        cause_event_ids=list(dict.fromkeys(str(c.event.id) for c in causes)),
        correlation_ids=list(dict.fromkeys(c.event.correlation_id for c in causes))),
        source="appraisal", town_code=town_code, subject=f"{f.subject_type}:{f.subject_id}",
        correlation_id=cause.correlation_id, time=cause.time, causation_id=cause.id)


def _alert_raised(town_code: str, staff_id: str, period: str, level: str, reasons: list[str],
                  cause: Envelope) -> Envelope:
    return new_event(AlertRaised, AlertRaisedData(
        staff_id=staff_id, period=period, level=level, reasons=reasons),  # type: ignore[arg-type]
        source="appraisal", town_code=town_code, subject=f"staff:{staff_id}",
        correlation_id=cause.correlation_id, time=cause.time, causation_id=cause.id)


async def _totals_of_months(db: store.Db, months: Iterable[tuple[str, str]]
                            ) -> dict[tuple[str, str], list[rules.SubjectTotals]]:
    by_month: dict[tuple[str, str], list[rules.SubjectTotals]] = {}
    for row in await store.month_totals(db, months):
        by_month.setdefault((row["town_code"], row["period"]), []).append(subject_totals(row))
    return by_month


def _figures_of_months(totals: dict[tuple[str, str], list[rules.SubjectTotals]],
                       county: County) -> dict[SubjectKey, rules.Figures]:
    figures: dict[SubjectKey, rules.Figures] = {}
    for (code, period), subjects in totals.items():
        town = county.town(code)
        if town is None:
            continue
        for subject_type, figs in rules.month_figures(period, subjects, town, town.rules.appraisal).items():
            for f in figs:
                figures[(code, subject_type, f.subject_id, period)] = f
    return figures


def subject_totals(row: asyncpg.Record) -> rules.SubjectTotals:
    return rules.SubjectTotals(row["subject_type"], row["subject_id"],
                               rules.Counts(**{c: row[c] for c in store.COUNT_COLUMNS}),
                               round(float(row["points"]), 4))


async def month_figures(db: store.Db, town: Town, period: str) -> dict[rules.SubjectType, list[rules.Figures]]:
    """Every subject's figures of a town's month, from its stored totals (that month's rows only)."""
    totals = [subject_totals(row) for row in await store.month_totals(db, [(town.code, period)])]
    return rules.month_figures(period, totals, town, town.rules.appraisal)


async def ledger(db: store.Db, town: Town, subject_type: rules.SubjectType, subject_id: str,
                 period: str) -> list[rules.LedgerEntry]:
    """Every points entry of a subject's month with the event behind it: the same rules that made
    its contributions, over its own tasks and inspections. A busy module's month is thousands of
    tasks: the entries are made in a worker thread, so the event loop (the consumer, the relay,
    the probes) never waits on them."""
    tasks = await store.tasks_of_subject(db, town.code, subject_type, subject_id, period)
    inspections = await store.inspections_of_subject(db, town.code, subject_type, subject_id, period)
    return await asyncio.to_thread(_entries_of, tasks, inspections, town, subject_type, subject_id)


def _entries_of(tasks: list[asyncpg.Record], inspections: list[asyncpg.Record], town: Town,
                subject_type: rules.SubjectType, subject_id: str) -> list[rules.LedgerEntry]:
    return [e for e in rules.ledger([task_fact(r) for r in tasks], [inspection_fact(r) for r in inspections],
                                    town, town.rules.appraisal)
            if e.subject(subject_type) == subject_id]


async def county_rankings(db: store.Db, towns: Iterable[Town], period: str) -> dict[str, Any]:
    """The county's towns ranked by the composite of their matters and by each rate (SPEC §8)."""
    towns = list(towns)
    counts = {r["town_code"]: rules.Counts(**{c: r[c] for c in store.COUNT_COLUMNS})
              for r in await store.town_counts(db, [t.code for t in towns], period)}
    return {"period": period, **rules.county_rankings([
        rules.town_figures(t.code, t.info.name, counts.get(t.code, rules.Counts()), t.rules.appraisal)
        for t in towns])}


def as_dict(f: rules.Figures, extra: dict[str, object] | None = None) -> dict[str, object]:
    return {"subject_type": f.subject_type, "subject_id": f.subject_id, "period": f.period,
            "rates": f.rates, "points": f.points, "dimensions": f.dimensions, "composite": f.composite,
            "rank": f.rank, "counts": vars(f.counts), **(extra or {})}
