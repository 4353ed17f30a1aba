"""Appraisal's operations: a consumer batch's facts applied set-based in the caller's transaction,
the changed subjects' figures published once per batch; and the figures of a town's month read
from what is stored. Live consumption and the rebuild apply batches with the same function."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import ValidationError

from townflow_shared import events, problems
from townflow_shared.auth import Principal
from townflow_shared.clock import Clock
from townflow_shared.county import County
from townflow_shared.db import Database
from townflow_shared.events import Envelope, new_event
from townflow_shared.outbox import enqueue
from townflow_shared.problems import TOWN_REQUIRED
from townflow_shared.scope import town_of_new_record, towns_to_read
from townflow_shared.telemetry import current_trace_headers
from townflow_shared.town import AppraisalRules, Town

from . import bulletin as monthly
from . import rules, store, whatif
from .bulletin import Workbooks
from .facts import Cause, FactBatch, SubjectKey
from .refusals import CODES
from .settings import AppraisalSettings
from .unit_of_work import UnitsOfWork


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


def task_fact(row: store.Row) -> rules.TaskFact:
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
        reopens=row["reopens"], suspensions=row["suspensions"])


def inspection_fact(row: store.Row) -> rules.InspectionFact:
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
    months = {(town, period) for town, _, _, period in changed}
    if publishing:
        # Two replicas' batches may touch one subject (a village, a module) through different
        # tasks, and a batch that changes none of its totals takes no row lock on it. Without this
        # lock both read the figures, and the one that read first may commit last: its older
        # figures would reach the topic after the newer ones (seen in the rolling upgrade).
        # Held to the commit, it makes each month's score.updated rows leave in the order read.
        await store.lock_months(conn, months)
    totals = await _totals_of_months(conn, months)
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
    outgoing: list[Envelope] = []
    traces: list[dict[str, str]] = []
    for (code, subject_type, subject_id, period), causes in ordered:
        f = figures.get((code, subject_type, subject_id, period))
        if f is None:
            continue
        in_order = sorted(causes, key=lambda c: c.order)
        trace = in_order[-1].trace  # the score follows the trace of the matter that changed it last
        outgoing.append(_score_updated(code, f, in_order))
        traces.append(trace)
        for level, reasons, cause in due.get((code, subject_id, period), []) if subject_type == "staff" else []:
            if (code, subject_id, period, level) in raised:
                outgoing.append(_alert_raised(code, subject_id, period, level, reasons, cause))
                traces.append(trace)
    await enqueue(conn, *outgoing, trace_headers=traces)


def _score_updated(town_code: str, f: rules.Figures, causes: list[Cause]) -> Envelope:
    cause = causes[-1].event
    return new_event(events.ScoreUpdated, events.ScoreUpdatedData(
        subject_type=f.subject_type, subject_id=f.subject_id, period=f.period, rates=f.rates, points=f.points,
        dimensions=f.dimensions, composite=f.composite, rank=f.rank, cause_event_id=str(cause.id),
        cause_event_ids=list(dict.fromkeys(str(c.event.id) for c in causes)),
        correlation_ids=list(dict.fromkeys(c.event.correlation_id for c in causes))),
        source="appraisal", town_code=town_code, subject=f"{f.subject_type}:{f.subject_id}",
        correlation_id=cause.correlation_id, time=cause.time, causation_id=cause.id)


def _alert_raised(town_code: str, staff_id: str, period: str, level: str, reasons: list[str],
                  cause: Envelope) -> Envelope:
    return new_event(events.AlertRaised, events.AlertRaisedData(
        staff_id=staff_id, period=period, level=level, reasons=reasons),  # type: ignore[arg-type]
        source="appraisal", town_code=town_code, subject=f"staff:{staff_id}",
        correlation_id=cause.correlation_id, time=cause.time, causation_id=cause.id)


async def _totals_of_months(db: asyncpg.Connection, months: Iterable[tuple[str, str]]
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


def subject_totals(row: store.Row) -> rules.SubjectTotals:
    return rules.SubjectTotals(row["subject_type"], row["subject_id"],
                               rules.Counts(**{c: row[c] for c in store.COUNT_COLUMNS}),
                               round(float(row["points"]), 4))


async def month_figures(db: store.AppraisalStore, town: Town,
                        period: str) -> dict[rules.SubjectType, list[rules.Figures]]:
    """Every subject's figures of a town's month, from its stored totals (that month's rows only)."""
    totals = [subject_totals(row) for row in await db.month_totals([(town.code, period)])]
    return rules.month_figures(period, totals, town, town.rules.appraisal)


async def ledger_entries(tasks: Sequence[store.Row], inspections: Sequence[store.Row], town: Town,
                         subject_type: rules.SubjectType, subject_id: str) -> list[rules.LedgerEntry]:
    """Every points entry of a subject's month with the event behind it: the same rules that made
    its contributions, over its own tasks and inspections. A busy module's month is thousands of
    tasks: the entries are made in a worker thread, so the event loop (the consumer, the relay,
    the probes) never waits on them."""
    return await asyncio.to_thread(_entries_of, tasks, inspections, town, subject_type, subject_id)


def _entries_of(tasks: Sequence[store.Row], inspections: Sequence[store.Row], town: Town,
                subject_type: rules.SubjectType, subject_id: str) -> list[rules.LedgerEntry]:
    return [e for e in rules.ledger([task_fact(r) for r in tasks], [inspection_fact(r) for r in inspections],
                                    town, town.rules.appraisal)
            if e.subject(subject_type) == subject_id]


async def town_rankings(db: store.AppraisalStore, towns: Iterable[Town], period: str) -> dict[str, Any]:
    """The county's towns ranked by the composite of their matters and by each rate (SPEC §8)."""
    towns = list(towns)
    counts = {r["town_code"]: rules.Counts(**{c: r[c] for c in store.COUNT_COLUMNS})
              for r in await db.town_counts([t.code for t in towns], period)}
    return {"period": period, **rules.county_rankings([
        rules.town_figures(t.code, t.info.name, counts.get(t.code, rules.Counts()), t.rules.appraisal)
        for t in towns])}


def as_dict(f: rules.Figures, extra: dict[str, object] | None = None) -> dict[str, object]:
    return {"subject_type": f.subject_type, "subject_id": f.subject_id, "period": f.period,
            "rates": f.rates, "points": f.points, "dimensions": f.dimensions, "composite": f.composite,
            "rank": f.rank, "counts": vars(f.counts), **(extra or {})}


# --- the bootstrap's dependencies, and the command handlers behind the routes -------------------
@dataclass(frozen=True)
class Deps:
    """What appraisal's handlers are handed (built once by app.py): by name, nothing else."""

    settings: AppraisalSettings
    county: County
    clock: Clock
    database: Database
    unit_of_work: UnitsOfWork
    batches: Batches
    workbooks: Workbooks


@dataclass(frozen=True)
class MonthOf:
    """A town's month: the town named (`?town=`, a county role's) and the period (default: now's)."""

    town: str | None = None
    period: str | None = None


@dataclass(frozen=True)
class ScoresOf(MonthOf):
    subject_type: rules.SubjectType | None = None
    subject_id: str | None = None


@dataclass(frozen=True)
class RatesOf(MonthOf):
    group_by: rules.SubjectType = "module"


@dataclass(frozen=True)
class BonusOf(MonthOf):
    pool: Decimal = Decimal(0)


@dataclass(frozen=True)
class AlertsOf:
    town: str | None = None
    period: str | None = None  # every month when not named
    staff_id: str | None = None


@dataclass(frozen=True)
class LedgerOf:
    subject_type: rules.SubjectType
    subject_id: str
    period: str
    town: str | None = None


@dataclass(frozen=True)
class PostSecondedScore:
    unit: str
    period: str
    score: float
    town: str | None = None


@dataclass(frozen=True)
class WhatIfOf:
    period: str
    rules: Mapping[str, Any]
    town: str | None = None


@dataclass(frozen=True)
class BulletinOf(MonthOf):
    file_format: str = "xlsx"
    pool: Decimal | None = None


@dataclass(frozen=True)
class Ledger:
    town_code: str
    subject_type: rules.SubjectType
    subject_id: str
    period: str
    entries: list[rules.LedgerEntry]


@dataclass(frozen=True)
class BulletinFile:
    content: bytes
    media_type: str
    filename: str


# The bonus split and its sheet: the appraisal office (the county roles hold every role).
BONUS_READERS = ("appraisal_admin",)


def _one_town(deps: Deps, actor: Principal, named: str | None) -> Town:
    """The one town a figure is of: a town's staff's own (another: 404); a county role names it
    (a one-town deployment's by default). The shared scope decides; a figure covers one town."""
    towns = towns_to_read(deps.county, actor, named)
    if len(towns) != 1:
        raise TOWN_REQUIRED("town", towns=sorted(deps.county.towns))
    return towns[0]


def _period(deps: Deps, town: Town, period: str | None) -> str:
    return period or rules.period_of(deps.clock.now(), town.calendar.tz)


async def scores(deps: Deps, actor: Principal, query: ScoresOf) -> list[dict[str, object]]:
    """Every subject's figures of a town's month (a seconded unit's with its parent's score)."""
    town = _one_town(deps, actor, query.town)
    period = _period(deps, town, query.period)
    async with deps.unit_of_work(readonly=True) as uow:
        figures = await month_figures(uow.store, town, period)
        department = await uow.store.seconded_scores(town.code, period)
    out = []
    for kind, figs in figures.items():
        if query.subject_type and kind != query.subject_type:
            continue
        for f in figs:
            if query.subject_id and f.subject_id != query.subject_id:
                continue
            extra: dict[str, object] = {"town_code": town.code}
            if kind == "seconded_unit":
                extra |= {"department_score": department.get(f.subject_id),
                          "final": rules.seconded_final(f.composite, department.get(f.subject_id),
                                                        town.rules.appraisal)}
            out.append(as_dict(f, extra))
    return out


async def rates(deps: Deps, actor: Principal, query: RatesOf) -> list[dict[str, Any]]:
    town = _one_town(deps, actor, query.town)
    period = _period(deps, town, query.period)
    async with deps.unit_of_work(readonly=True) as uow:
        figures = await month_figures(uow.store, town, period)
    return [{"subject_id": f.subject_id, "period": period, **f.rates, "dispatched": f.counts.dispatched,
             "rated": f.counts.rated} for f in figures[query.group_by]]


async def rankings(deps: Deps, actor: Principal, query: MonthOf) -> dict[str, Any]:
    """红黑榜: the top and bottom of each subject type of a town by composite."""
    town = _one_town(deps, actor, query.town)
    period = _period(deps, town, query.period)
    async with deps.unit_of_work(readonly=True) as uow:
        figures = await month_figures(uow.store, town, period)
    size = town.rules.appraisal.rankings_size
    result: dict[str, Any] = {"period": period, "town_code": town.code}
    for kind, figs in figures.items():
        red, black = rules.red_and_black_lists(figs, size)
        result[kind] = {"red": [{"subject_id": f.subject_id, "composite": f.composite, "rank": f.rank} for f in red],
                        "black": [{"subject_id": f.subject_id, "composite": f.composite, "rank": f.rank}
                                  for f in black]}
    return result


async def county_rankings(deps: Deps, actor: Principal, query: MonthOf) -> dict[str, Any]:
    """The county's towns ranked by the composite of their matters and by each rate (SPEC §8)."""
    if not actor.county_wide:
        raise CODES["ranking.county_only"]()
    towns = list(deps.county.towns.values())
    info = deps.county.info
    tz = ZoneInfo(info.timezone) if info is not None else towns[0].calendar.tz  # a county of one
    period = query.period or rules.period_of(deps.clock.now(), tz)
    async with deps.unit_of_work(readonly=True) as uow:
        return await town_rankings(uow.store, towns, period)


def bonus_weights(town: Town, staff: Iterable[rules.Figures]) -> tuple[dict[str, float], dict[str, float]]:
    """Each staff member's points and weight: post coefficient × max(points, 0) (SPEC §5.5)."""
    points = {f.subject_id: f.points for f in staff}
    return points, {s.id: s.post_coefficient * max(points.get(s.id, 0.0), 0.0) for s in town.staff.values()}


async def bonus(deps: Deps, actor: Principal, query: BonusOf) -> dict[str, Any]:
    """差异化分配: a town's pool split by post coefficient × max(points, 0), to the cent."""
    town = _one_town(deps, actor, query.town)
    period = _period(deps, town, query.period)
    async with deps.unit_of_work(readonly=True) as uow:
        figures = await month_figures(uow.store, town, period)
    points, weights = bonus_weights(town, figures["staff"])
    if not any(w > 0 for w in weights.values()):
        raise CODES["bonus.no_weights"]("pool", period=period)
    shares = rules.bonus_split(query.pool, weights)
    rows = [{"staff_id": sid, "module": town.staff[sid].module, "post_coefficient": town.staff[sid].post_coefficient,
             "points": points.get(sid, 0.0), "weight": round(weights[sid], 4), "share": str(share)}
            for sid, share in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {"period": period, "town_code": town.code, "pool": str(query.pool),
            "total": str(sum(shares.values(), Decimal(0))), "shares": rows}


async def cell_months(db: store.AppraisalStore, town: Town, period: str) -> list[rules.CellMonth]:
    """The town's month's located matters per cell (and the month before's), as the rules count them."""
    rows = await db.cell_counts(town.code, [period, rules.previous_period(period)])
    return rules.hotspots(period, ((r["period"], r["grid_cell"], r["item_code"], r["n"]) for r in rows))


async def hotspots(deps: Deps, actor: Principal, query: MonthOf) -> dict[str, Any]:
    """热点: a town's month's located matters per grid cell and item, and the cells that rose most."""
    town = _one_town(deps, actor, query.town)
    period = _period(deps, town, query.period)
    async with deps.unit_of_work(readonly=True) as uow:
        cells = await cell_months(uow.store, town, period)
    places = town.places
    return {"town_code": town.code, "period": period, "previous_period": rules.previous_period(period),
            "cells": [{"grid_cell": c.cell, "village": places.village_of_cell(c.cell) if places else None,
                       "count": c.count, "previous": c.previous, "rise": c.rise,
                       "items": [{"item_code": i, "count": n} for i, n in c.items]} for c in cells],
            "rising": [c.cell for c in rules.rising(cells)]}


async def alerts(deps: Deps, actor: Principal, query: AlertsOf) -> list[dict[str, Any]]:
    town = _one_town(deps, actor, query.town)
    async with deps.unit_of_work(readonly=True) as uow:
        rows = await uow.store.alerts(town.code, query.period, query.staff_id)
    return [{"staff_id": a["staff_id"], "period": a["period"], "level": a["level"], "reasons": list(a["reasons"]),
             "raised_at": a["raised_at"].isoformat(), "cause_event_id": str(a["cause_event_id"])} for a in rows]


async def ledger(deps: Deps, actor: Principal, query: LedgerOf) -> Ledger:
    """Every points entry of a subject's month with the event behind it, for audit."""
    town = _one_town(deps, actor, query.town)
    async with deps.unit_of_work(readonly=True) as uow:
        tasks = await uow.store.tasks_of_subject(town.code, query.subject_type, query.subject_id, query.period)
        inspections = await uow.store.inspections_of_subject(town.code, query.subject_type, query.subject_id,
                                                             query.period)
    entries = await ledger_entries(tasks, inspections, town, query.subject_type, query.subject_id)
    return Ledger(town.code, query.subject_type, query.subject_id, query.period, entries)


async def post_seconded_score(deps: Deps, actor: Principal, command: PostSecondedScore) -> dict[str, Any]:
    """The parent county department's score of a seconded unit of a town (双向考评), and the
    unit's final score with it."""
    town = town_of_new_record(deps.county, actor, command.town, field="town")
    module = town.modules.get(command.unit)
    if module is None or module.kind != "seconded":
        raise CODES["score.unit_not_seconded"]("unit", unit=command.unit)
    async with deps.unit_of_work() as uow:
        await uow.store.post_seconded_score(town.code, command.unit, command.period, command.score, actor.sub,
                                            deps.clock.now())
        figures = await month_figures(uow.store, town, command.period)
    town_score = next((f.composite for f in figures["seconded_unit"] if f.subject_id == command.unit), None)
    return {"town_code": town.code, "unit": command.unit, "period": command.period, "town_score": town_score,
            "department_score": command.score,
            "final": rules.seconded_final(town_score, command.score, town.rules.appraisal)}


def rules_laid_over(town: Town, changes: Mapping[str, Any]) -> AppraisalRules:
    """The town's appraisal rules with `changes` over them; each wrong one a field error."""
    try:
        return whatif.rules_with(town.rules.appraisal, changes)
    except ValidationError as exc:
        raise problems.invalid([
            CODES["whatif.rule_invalid"].error(".".join(str(x) for x in ("rules", *e["loc"])), why=e["msg"])
            for e in exc.errors()[:problems.MAX_ERRORS]]) from exc


async def what_if(deps: Deps, actor: Principal, query: WhatIfOf) -> dict[str, Any]:
    """Every figure of a month under other rules, beside the live ones, subject by subject; the
    live figures are only read (SPEC §10)."""
    town = _one_town(deps, actor, query.town)
    other = rules_laid_over(town, query.rules)
    async with deps.unit_of_work(readonly=True) as uow:
        month = await whatif.read_month(uow.store, town, query.period)
    return await whatif.what_if(month, town, query.period, other)  # worked out with the connection back


async def bulletin(deps: Deps, actor: Principal, query: BulletinOf) -> BulletinFile:
    """月度通报: rates by module, village and staff, the red and black lists, the alerts and the
    bonus split of a town's month, as a workbook or one CSV of its sheets."""
    town = _one_town(deps, actor, query.town)
    period = _period(deps, town, query.period)
    async with deps.unit_of_work(readonly=True) as uow:
        figures = await month_figures(uow.store, town, period)
        if not any(figures.values()):
            raise CODES["period.no_figures"]("period", period=period)
        raised = [dict(a) for a in await uow.store.alerts(town.code, period, None)]
        cells = await cell_months(uow.store, town, period)
    with_bonus = actor.has_any(BONUS_READERS, reading=True)  # the leaders get the rest
    sheets = monthly.sheets(town, period, figures, raised, query.pool, with_bonus, cells)
    if query.file_format == "csv":
        content = await asyncio.to_thread(monthly.to_csv, sheets)  # the csv module writes in C
        media_type = monthly.CSV
    else:
        try:
            content = await deps.workbooks.xlsx(f"{town.info.name} {period} 月度通报", deps.clock.now(), sheets)
        except BrokenProcessPool as exc:  # the worker died twice over: a refusal to try again, not a 500
            raise CODES["bulletin.workbook_unavailable"]() from exc
        media_type = monthly.XLSX
    return BulletinFile(content, media_type, monthly.filename(town, period, query.file_format))
