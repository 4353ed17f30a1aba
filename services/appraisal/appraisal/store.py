"""Every SQL statement of appraisal, as named functions over asyncpg. A consumer batch is written
with one statement per kind of fact (arrays unnested server-side); the statement triggers of
migration 006 add the contributions' change to subject_totals in the same transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeAlias

import asyncpg

from townflow_shared.db import FIGURES_LOCK

from .facts import FactBatch, MatterKey, TaskKey

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

COUNT_COLUMNS = ("dispatched", "responded", "resolved", "completed", "reworked", "extended", "rated",
                 "satisfied", "overdue", "escalated", "escalated_red", "closed", "reopened",
                 "suspended")

# The columns a dispatch sets, in the order of upsert_dispatched's arrays.
DISPATCH_COLUMNS = ("town_code", "task_id", "request_id", "dispatched_event", "period", "assignee", "post", "module",
                    "village", "seconded_unit", "item_code", "colour", "difficulty", "dispatched_at", "respond_by",
                    "resolve_by", "redispatch_of")


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column, for unnest."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


# --- a consumer batch's facts ---------------------------------------------------------------
async def record_matters(conn: asyncpg.Connection, batch: FactBatch) -> None:
    """Filings and ratings: each sets its own columns, a later one of the batch already won."""
    if batch.filed:
        await conn.execute(
            "INSERT INTO matter_facts (town_code, request_id, village, filed_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
            " ON CONFLICT (town_code, request_id) DO UPDATE SET village = EXCLUDED.village, filed_at = EXCLUDED.filed_at",
            *_columns([(*k, *v) for k, v in sorted(batch.filed.items())], 4))
    if batch.located:
        await conn.execute(
            "INSERT INTO located_matters (town_code, request_id, period, grid_cell, item_code)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
            " ON CONFLICT (town_code, request_id) DO NOTHING",  # a filing's place never changes
            *_columns([(*k, *v) for k, v in sorted(batch.located.items())], 5))
    if batch.rated:
        await conn.execute(
            "INSERT INTO matter_facts (town_code, request_id, rating, rated_at, rated_event)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::uuid[])"
            " ON CONFLICT (town_code, request_id) DO UPDATE SET rating = EXCLUDED.rating,"
            " rated_at = EXCLUDED.rated_at, rated_event = EXCLUDED.rated_event",
            *_columns([(*k, *v) for k, v in sorted(batch.rated.items())], 5))


async def record_dispatches(conn: asyncpg.Connection, batch: FactBatch) -> None:
    if not batch.dispatched:
        return
    rows = [tuple(row[c] for c in DISPATCH_COLUMNS) for _, row in sorted(batch.dispatched.items())]
    await conn.execute(
        "INSERT INTO task_facts (town_code, task_id, request_id, dispatched_event, period, assignee, post, module,"
        " village, seconded_unit, item_code, colour, difficulty, dispatched_at, respond_by, resolve_by, redispatch_of)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],"
        " $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::float8[], $14::timestamptz[],"
        " $15::timestamptz[], $16::timestamptz[], $17::text[])"
        " ON CONFLICT (town_code, task_id) DO UPDATE SET request_id = EXCLUDED.request_id,"
        " dispatched_event = EXCLUDED.dispatched_event, period = EXCLUDED.period, assignee = EXCLUDED.assignee,"
        " post = EXCLUDED.post, module = EXCLUDED.module, village = EXCLUDED.village,"
        " seconded_unit = EXCLUDED.seconded_unit, item_code = EXCLUDED.item_code, colour = EXCLUDED.colour,"
        " difficulty = EXCLUDED.difficulty, dispatched_at = EXCLUDED.dispatched_at,"
        " respond_by = EXCLUDED.respond_by, resolve_by = EXCLUDED.resolve_by, redispatch_of = EXCLUDED.redispatch_of",
        *_columns(rows, len(DISPATCH_COLUMNS)))


async def record_task_events(conn: asyncpg.Connection, batch: FactBatch) -> None:
    """Every other fact of the batch's tasks in one upsert: a task not dispatched yet gets its row
    (topics are consumed side by side), one already known folds the batch's facts into its own."""
    if not batch.task_events:
        return
    rows = [(town, task, e.request_id, e.accepted_at, e.accepted_event, e.completions.count, e.first_completed_at,
             e.last_completed_at, e.last_on_time, e.completions.first_event, e.overdue_event, e.escalated_event,
             e.extensions.count, e.extensions.first_event, e.failed_checks.count, e.failed_checks.first_event,
             e.invalid_return_event is not None, e.invalid_return_event)
            for (town, task), e in sorted(batch.task_events.items())]
    await conn.execute(
        "INSERT INTO task_facts AS t (town_code, task_id, request_id, accepted_at, accepted_event, completions,"
        " first_completed_at, last_completed_at, last_on_time, completed_event, overdue_event, escalated_event,"
        " extensions, extended_event, failed_checks, rework_event, returned_invalid, invalid_return_event)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::uuid[], $6::int[],"
        " $7::timestamptz[], $8::timestamptz[], $9::bool[], $10::uuid[], $11::uuid[], $12::uuid[], $13::int[],"
        " $14::uuid[], $15::int[], $16::uuid[], $17::bool[], $18::uuid[])"
        " ON CONFLICT (town_code, task_id) DO UPDATE SET"
        "  accepted_at = least(t.accepted_at, EXCLUDED.accepted_at),"
        "  accepted_event = coalesce(t.accepted_event, EXCLUDED.accepted_event),"
        "  completions = t.completions + EXCLUDED.completions,"
        "  first_completed_at = least(t.first_completed_at, EXCLUDED.first_completed_at),"
        # the timeliness of the latest completion; of two at the same moment, the one handled last
        "  last_on_time = CASE WHEN EXCLUDED.last_completed_at IS NULL THEN t.last_on_time"
        "   WHEN t.last_completed_at IS NULL OR EXCLUDED.last_completed_at >= t.last_completed_at"
        "   THEN EXCLUDED.last_on_time ELSE t.last_on_time END,"
        "  last_completed_at = greatest(t.last_completed_at, EXCLUDED.last_completed_at),"
        "  completed_event = coalesce(t.completed_event, EXCLUDED.completed_event),"
        "  overdue_event = coalesce(t.overdue_event, EXCLUDED.overdue_event),"
        "  escalated_event = coalesce(t.escalated_event, EXCLUDED.escalated_event),"
        "  extensions = t.extensions + EXCLUDED.extensions,"
        "  extended_event = coalesce(t.extended_event, EXCLUDED.extended_event),"
        "  failed_checks = t.failed_checks + EXCLUDED.failed_checks,"
        "  rework_event = coalesce(t.rework_event, EXCLUDED.rework_event),"
        "  returned_invalid = t.returned_invalid OR EXCLUDED.returned_invalid,"
        "  invalid_return_event = coalesce(EXCLUDED.invalid_return_event, t.invalid_return_event)",
        *_columns(rows, 18))


async def record_lifecycles(conn: asyncpg.Connection, batch: FactBatch) -> None:
    """Merges, closures and reopenings (issue #18) onto the tasks' rows, which record_task_events
    has made: the later merge state by its moment, counts added. Callback ratings onto the
    matters, the latest by its moment; the citizen's own rating is a column of its own."""
    if batch.lifecycles:
        await conn.execute(
            "UPDATE task_facts t SET"
            "  merged = CASE WHEN l.merge_at IS NULL THEN t.merged"
            "   WHEN t.merge_at IS NULL OR l.merge_at >= t.merge_at THEN l.merged ELSE t.merged END,"
            "  merge_event = CASE WHEN l.merge_at IS NULL THEN t.merge_event"
            "   WHEN t.merge_at IS NULL OR l.merge_at >= t.merge_at THEN l.merge_event ELSE t.merge_event END,"
            "  merge_at = greatest(t.merge_at, l.merge_at),"
            "  passed_checks = t.passed_checks + l.passed_checks, reopens = t.reopens + l.reopens,"
            "  reopen_event = coalesce(t.reopen_event, l.reopen_event),"
            "  suspensions = t.suspensions + l.suspensions,"
            "  suspended_event = coalesce(t.suspended_event, l.suspended_event)"
            " FROM unnest($1::text[], $2::text[], $3::bool[], $4::timestamptz[], $5::uuid[], $6::int[], $7::int[],"
            "  $8::uuid[], $9::int[], $10::uuid[]) AS l(town_code, task_id, merged, merge_at, merge_event,"
            "  passed_checks, reopens, reopen_event, suspensions, suspended_event)"
            " WHERE t.town_code = l.town_code AND t.task_id = l.task_id",
            *_columns([(town, task, x.merged, x.merge_at, x.merge_event, x.passed_checks, x.reopens.count,
                        x.reopens.first_event, x.suspensions.count, x.suspensions.first_event)
                       for (town, task), x in sorted(batch.lifecycles.items())], 10))
    if batch.called_back:
        await conn.execute(
            "INSERT INTO matter_facts AS m (town_code, request_id, callback_rating, callback_at, callback_event)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::uuid[])"
            " ON CONFLICT (town_code, request_id) DO UPDATE SET"
            "  callback_rating = CASE WHEN m.callback_at IS NULL OR EXCLUDED.callback_at >= m.callback_at"
            "   THEN EXCLUDED.callback_rating ELSE m.callback_rating END,"
            "  callback_event = CASE WHEN m.callback_at IS NULL OR EXCLUDED.callback_at >= m.callback_at"
            "   THEN EXCLUDED.callback_event ELSE m.callback_event END,"
            "  callback_at = greatest(m.callback_at, EXCLUDED.callback_at)",
            *_columns([(*k, *v) for k, v in sorted(batch.called_back.items())], 5))


async def record_inspections(conn: asyncpg.Connection, batch: FactBatch) -> None:
    """Inspections and their officers' points (the statement trigger adds these to the totals)."""
    if batch.inspections:
        await conn.execute(
            "INSERT INTO inspection_facts (town_code, inspection_id, period, officers, task_count, finished_at,"
            " event_id) SELECT i.town_code, i.inspection_id, i.period,"
            "  ARRAY(SELECT jsonb_array_elements_text(i.officers::jsonb)), i.task_count, i.finished_at, i.event_id"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::uuid[])"
            "  AS i(town_code, inspection_id, period, officers, task_count, finished_at, event_id)"
            " ON CONFLICT DO NOTHING",
            *_columns([(f.town_code, f.inspection_id, f.period, _json_list(f.officers), f.task_count, f.finished_at,
                        f.event_id) for _, f in sorted(batch.inspections.items())], 7))
    if batch.officer_points:
        await conn.execute(
            "INSERT INTO inspection_points (town_code, inspection_id, staff_id, module, seconded_unit, period, points)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
            " $7::float8[]) ON CONFLICT DO NOTHING",
            *_columns([(*k, p.module, p.seconded_unit, p.period, p.points)
                       for k, p in sorted(batch.officer_points.items())], 7))


def _json_list(values: Iterable[str]) -> str:
    """A list of text as JSON: unnest cannot take an array of arrays of different lengths."""
    return json.dumps(list(values), ensure_ascii=False)


# What the rules read of a task to say what it adds (flows.task_fact), and what it adds now: only
# these, not the row's every moment and event id (decoding those was a tenth of a replay's time).
_CONTRIBUTION_INPUTS = (
    "town_code", "task_id", "request_id", "period", "assignee", "module", "village", "seconded_unit", "colour",
    "difficulty", "responded", "completions", "failed_checks", "last_on_time", "extensions", "superseded",
    "returned_invalid", "rating", "completed_event", "overdue_event", "escalated_event", "invalid_return_event",
    "rated_event", "merged", "passed_checks", "reopens", "suspensions", *(f"c_{c}" for c in COUNT_COLUMNS),
    "c_points")
_FACTS_OF_TASKS = (  # built from this module's own column names
    "WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[]) AS k(town_code, task_id)"  # noqa: S608
    " UNION SELECT t.town_code, t.task_id FROM unnest($3::text[], $4::text[]) AS r(town_code, request_id)"
    "  JOIN task_facts t ON t.town_code = r.town_code AND t.request_id = r.request_id)"
    " SELECT " + ", ".join(f"f.{c}" for c in _CONTRIBUTION_INPUTS) +
    " FROM wanted w JOIN task_fact_rows f ON f.town_code = w.town_code AND f.task_id = w.task_id")


async def facts_of_tasks(conn: asyncpg.Connection, tasks: Iterable[TaskKey],
                         matters: Iterable[MatterKey]) -> list[asyncpg.Record]:
    """The dispatched tasks among `tasks` and every task of `matters`, as the rules read them,
    with their contributions as they stand."""
    task_list, matter_list = sorted(tasks), sorted(matters)
    return await conn.fetch(_FACTS_OF_TASKS, *_columns(task_list, 2), *_columns(matter_list, 2))


async def set_contributions(conn: asyncpg.Connection,
                            rows: Sequence[tuple[str, str, dict[str, int], float]]) -> None:
    """Each (town_code, task_id, counts, points): what the task adds to its subjects now."""
    if not rows:
        return
    await conn.execute(
        "UPDATE task_facts t SET c_dispatched = c.dispatched, c_responded = c.responded, c_resolved = c.resolved,"
        " c_completed = c.completed, c_reworked = c.reworked, c_extended = c.extended, c_rated = c.rated,"
        " c_satisfied = c.satisfied, c_overdue = c.overdue, c_escalated = c.escalated,"
        " c_escalated_red = c.escalated_red, c_closed = c.closed, c_reopened = c.reopened, c_suspended = c.suspended,"
        " c_points = c.points"
        " FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int[],"
        "  $9::int[], $10::int[], $11::int[], $12::int[], $13::int[], $14::int[], $15::int[], $16::int[],"
        "  $17::float8[])"
        "  AS c(town_code, task_id, dispatched, responded, resolved, completed, reworked, extended, rated,"
        "  satisfied, overdue, escalated, escalated_red, closed, reopened, suspended, points)"
        " WHERE t.town_code = c.town_code AND t.task_id = c.task_id",
        *_columns([(town, task, *(counts[c] for c in COUNT_COLUMNS), points)
                   for town, task, counts, points in sorted(rows, key=lambda r: (r[0], r[1]))],
                  2 + len(COUNT_COLUMNS) + 1))


# --- figures ----------------------------------------------------------------------------------
async def lock_months(conn: asyncpg.Connection, months: Iterable[tuple[str, str]]) -> None:
    """Wait for, then hold until the commit, each (town_code, period)'s figures lock, in one
    order so two transactions never wait for each other."""
    for town_code, period in sorted(set(months)):
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", FIGURES_LOCK, f"{town_code} {period}")


async def month_totals(db: Db, months: Iterable[tuple[str, str]]) -> list[asyncpg.Record]:
    """Every subject's totals of each (town_code, period): the rows of those months only."""
    month_list = sorted(set(months))
    return await db.fetch(
        "SELECT s.* FROM unnest($1::text[], $2::text[]) AS m(town_code, period)"
        " JOIN subject_totals s ON s.town_code = m.town_code AND s.period = m.period"
        " WHERE s.subject_id <> ''",  # a subject without a name is nobody's figure
        *_columns(month_list, 2))


async def town_counts(db: Db, town_codes: Sequence[str], period: str) -> list[asyncpg.Record]:
    """Each town's counts of a month: every standing task has one assignee, so its staff's
    totals add up to the town's."""
    return await db.fetch(
        "SELECT town_code, sum(dispatched)::int AS dispatched, sum(responded)::int AS responded,"
        " sum(resolved)::int AS resolved, sum(completed)::int AS completed, sum(reworked)::int AS reworked,"
        " sum(extended)::int AS extended, sum(rated)::int AS rated, sum(satisfied)::int AS satisfied,"
        " sum(overdue)::int AS overdue, sum(escalated)::int AS escalated, sum(escalated_red)::int AS escalated_red,"
        " sum(closed)::int AS closed, sum(reopened)::int AS reopened, sum(suspended)::int AS suspended"
        " FROM subject_totals WHERE town_code = ANY($1::text[]) AND period = $2 AND subject_type = 'staff'"
        " GROUP BY town_code", list(town_codes), period)


async def months(db: Db) -> list[asyncpg.Record]:
    """Every (town_code, period) that holds figures."""
    return await db.fetch("SELECT DISTINCT town_code, period FROM subject_totals ORDER BY 1, 2")


_SUBJECT_TASKS = {
    "staff": "SELECT * FROM task_fact_rows WHERE town_code = $1 AND period = $2 AND assignee = $3",
    "module": "SELECT * FROM task_fact_rows WHERE town_code = $1 AND period = $2 AND module = $3",
    "village": "SELECT * FROM task_fact_rows WHERE town_code = $1 AND period = $2 AND village = $3",
    "seconded_unit": "SELECT * FROM task_fact_rows WHERE town_code = $1 AND period = $2 AND seconded_unit = $3",
}
_SUBJECT_INSPECTIONS = {
    "staff": "SELECT f.* FROM inspection_facts f JOIN inspection_points p USING (town_code, inspection_id)"
             " WHERE p.town_code = $1 AND p.period = $2 AND p.staff_id = $3",
    "module": "SELECT DISTINCT f.* FROM inspection_facts f JOIN inspection_points p USING (town_code, inspection_id)"
              " WHERE p.town_code = $1 AND p.period = $2 AND p.module = $3",
    "seconded_unit": "SELECT DISTINCT f.* FROM inspection_facts f"
                     " JOIN inspection_points p USING (town_code, inspection_id)"
                     " WHERE p.town_code = $1 AND p.period = $2 AND p.seconded_unit = $3",
}


async def tasks_of_month(db: Db, town_code: str, period: str) -> list[asyncpg.Record]:
    """Every dispatched task of a town's month as the rules read them (what-if, the bulletin)."""
    return await db.fetch("SELECT * FROM task_fact_rows WHERE town_code = $1 AND period = $2 ORDER BY task_id",
                          town_code, period)


async def inspections_of_month(db: Db, town_code: str, period: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM inspection_facts WHERE town_code = $1 AND period = $2"
                          " ORDER BY inspection_id", town_code, period)


async def tasks_of_subject(db: Db, town_code: str, subject_type: str, subject_id: str,
                           period: str) -> list[asyncpg.Record]:
    return await db.fetch(_SUBJECT_TASKS[subject_type], town_code, period, subject_id)


async def inspections_of_subject(db: Db, town_code: str, subject_type: str, subject_id: str,
                                 period: str) -> list[asyncpg.Record]:
    if subject_type not in _SUBJECT_INSPECTIONS:
        return []  # inspections count for their officers, not for villages
    return await db.fetch(_SUBJECT_INSPECTIONS[subject_type], town_code, period, subject_id)


# --- alerts and the parent departments' scores -------------------------------------------------
async def raise_alerts(conn: asyncpg.Connection,
                       rows: Sequence[tuple[str, str, str, str, list[str], datetime, uuid.UUID]]
                       ) -> set[tuple[str, str, str, str]]:
    """Each (town_code, staff_id, period, level, reasons, raised_at, cause) not raised before;
    return the (town_code, staff_id, period, level) raised now (each level once per month)."""
    if not rows:
        return set()
    raised = await conn.fetch(
        "INSERT INTO alerts (town_code, staff_id, period, level, reasons, raised_at, cause_event_id)"
        " SELECT a.town_code, a.staff_id, a.period, a.level,"
        "  ARRAY(SELECT jsonb_array_elements_text(a.reasons::jsonb)), a.raised_at, a.cause"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::uuid[])"
        "  AS a(town_code, staff_id, period, level, reasons, raised_at, cause)"
        " ORDER BY 1, 2, 3, 4 ON CONFLICT DO NOTHING RETURNING town_code, staff_id, period, level",
        *_columns([(t, s, p, lv, _json_list(reasons), at, cause) for t, s, p, lv, reasons, at, cause in rows], 7))
    return {(r["town_code"], r["staff_id"], r["period"], r["level"]) for r in raised}


async def alerts(db: Db, town_code: str, period: str | None, staff_id: str | None) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM alerts WHERE town_code = $1 AND ($2::text IS NULL OR period = $2)"
        " AND ($3::text IS NULL OR staff_id = $3) ORDER BY raised_at, staff_id, level", town_code, period, staff_id)


async def cell_counts(db: Db, town_code: str, periods: Sequence[str]) -> list[asyncpg.Record]:
    """Located matters filed in the town's `periods`, by month, grid cell and item (the hotspots)."""
    return await db.fetch(
        "SELECT period, grid_cell, item_code, count(*)::int AS n FROM located_matters"
        " WHERE town_code = $1 AND period = ANY($2::text[]) GROUP BY period, grid_cell, item_code",
        town_code, list(periods))


async def post_seconded_score(conn: asyncpg.Connection, town_code: str, unit: str, period: str, score: float,
                              by: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO seconded_scores (town_code, unit, period, score, posted_by, posted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (town_code, unit, period) DO UPDATE SET score = EXCLUDED.score,"
        " posted_by = EXCLUDED.posted_by, posted_at = EXCLUDED.posted_at", town_code, unit, period, score, by, at)


async def seconded_scores(db: Db, town_code: str, period: str) -> dict[str, float]:
    return {r["unit"]: r["score"] for r in await db.fetch(
        "SELECT unit, score FROM seconded_scores WHERE town_code = $1 AND period = $2", town_code, period)}


async def all_seconded_scores(db: Db) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM seconded_scores")


# --- the store as the command handlers see it -------------------------------------------------
class Row(Protocol):
    """A row as the flows read it: asyncpg's Record, or a plain dict in the unit tests' fake."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class AppraisalStore(Protocol):
    """The store operations of the command handlers, over one unit of work's transaction: the
    real one (`Store`, asyncpg) and the unit tests' fake are checked against this shape."""

    async def month_totals(self, months: Iterable[tuple[str, str]]) -> Sequence[Row]: ...
    async def town_counts(self, town_codes: Sequence[str], period: str) -> Sequence[Row]: ...
    async def tasks_of_month(self, town_code: str, period: str) -> Sequence[Row]: ...
    async def inspections_of_month(self, town_code: str, period: str) -> Sequence[Row]: ...
    async def tasks_of_subject(self, town_code: str, subject_type: str, subject_id: str,
                               period: str) -> Sequence[Row]: ...
    async def inspections_of_subject(self, town_code: str, subject_type: str, subject_id: str,
                                     period: str) -> Sequence[Row]: ...
    async def alerts(self, town_code: str, period: str | None, staff_id: str | None) -> Sequence[Row]: ...
    async def seconded_scores(self, town_code: str, period: str) -> dict[str, float]: ...
    async def cell_counts(self, town_code: str, periods: Sequence[str]) -> Sequence[Row]: ...
    async def post_seconded_score(self, town_code: str, unit: str, period: str, score: float, by: str,
                                  at: datetime) -> None: ...


class Store:
    """The store's operations on one connection (a unit of work's transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def month_totals(self, months: Iterable[tuple[str, str]]) -> Sequence[Row]:
        return await month_totals(self.conn, months)

    async def town_counts(self, town_codes: Sequence[str], period: str) -> Sequence[Row]:
        return await town_counts(self.conn, town_codes, period)

    async def tasks_of_month(self, town_code: str, period: str) -> Sequence[Row]:
        return await tasks_of_month(self.conn, town_code, period)

    async def inspections_of_month(self, town_code: str, period: str) -> Sequence[Row]:
        return await inspections_of_month(self.conn, town_code, period)

    async def tasks_of_subject(self, town_code: str, subject_type: str, subject_id: str,
                               period: str) -> Sequence[Row]:
        return await tasks_of_subject(self.conn, town_code, subject_type, subject_id, period)

    async def inspections_of_subject(self, town_code: str, subject_type: str, subject_id: str,
                                     period: str) -> Sequence[Row]:
        return await inspections_of_subject(self.conn, town_code, subject_type, subject_id, period)

    async def alerts(self, town_code: str, period: str | None, staff_id: str | None) -> Sequence[Row]:
        return await alerts(self.conn, town_code, period, staff_id)

    async def seconded_scores(self, town_code: str, period: str) -> dict[str, float]:
        return await seconded_scores(self.conn, town_code, period)

    async def cell_counts(self, town_code: str, periods: Sequence[str]) -> Sequence[Row]:
        return await cell_counts(self.conn, town_code, periods)

    async def post_seconded_score(self, town_code: str, unit: str, period: str, score: float, by: str,
                                  at: datetime) -> None:
        await post_seconded_score(self.conn, town_code, unit, period, score, by, at)
