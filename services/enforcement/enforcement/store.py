"""Every SQL statement of enforcement: `PgStore`, the operations on one transaction's connection,
and `Store`, their shape, which the unit tests' fake store has too (mypy checks both against it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias

import asyncpg

# A stored row as the flows read it: an asyncpg Record, or a dict in the fake store.
Row: TypeAlias = Mapping[str, Any]


class Store(Protocol):
    """What the flows ask of the database, inside one unit of work."""

    async def inspection(self, inspection_id: uuid.UUID, *, lock: bool = False) -> Row | None: ...
    async def planned_inspection(self, town_code: str, target: str, *, lock: bool = False) -> Row | None: ...
    async def create_inspection(self, town_code: str, target: str, units: list[str], now: datetime) -> uuid.UUID: ...
    async def set_inspection(self, inspection_id: uuid.UUID, **fields: Any) -> None: ...
    async def list_inspections(self, town_code: str | None, status: str | None, target: str | None,
                               unit: str | None, limit: int) -> list[Row]: ...
    async def add_need(self, *, town_code: str, inspection_id: uuid.UUID, source: str, task_id: str | None,
                       request_id: str | None, item_code: str, target: str, units: list[str],
                       due: datetime | None, now: datetime, trace_headers: dict[str, str]) -> bool: ...
    async def needs_of_each(self, inspection_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Row]]: ...
    async def mark_repeated_need(self, town_code: str, task_id: str) -> None: ...
    async def visits_since(self, town_code: str, since: datetime, target: str | None = None) -> list[Row]: ...
    async def planned_inspections_of(self, town_code: str, targets: list[str]) -> dict[str, Row]: ...
    async def repeated_needs_of(self, inspection_ids: list[uuid.UUID]) -> list[Row]: ...
    async def case(self, case_id: uuid.UUID, *, lock: bool = False) -> Row | None: ...
    async def create_case(self, row: dict[str, Any]) -> None: ...
    async def set_case(self, case_id: uuid.UUID, **fields: Any) -> None: ...
    async def add_case_step(self, town_code: str, case_id: uuid.UUID, step: str, at: datetime, by: str,
                            note: str | None) -> None: ...
    async def case_steps(self, case_id: uuid.UUID) -> list[Row]: ...
    async def list_cases(self, town_code: str | None, step: str | None, inspection_id: uuid.UUID | None,
                         limit: int) -> list[Row]: ...
    async def claim_due_cases(self, towns: Sequence[str], now: datetime, limit: int) -> list[Row]: ...
    async def set_case_flags(self, flags: Sequence[tuple[uuid.UUID, bool, bool, datetime | None]],
                             at: datetime) -> None: ...
    async def save_plan(self, town_code: str, plan_id: uuid.UUID, seed: int, sample_size: int,
                        population: list[str], targets: list[dict[str, Any]], at: datetime, by: str) -> None: ...
    async def plan(self, plan_id: uuid.UUID) -> Row | None: ...
    async def plans(self, town_code: str | None, limit: int) -> list[Row]: ...
    async def counts(self) -> list[Row]: ...
    async def insert_evidence(self, rows: Sequence[Mapping[str, Any]]) -> None: ...
    async def evidence_of_each(self, column: EvidenceOf, record_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Row]]: ...
    async def evidence_item(self, column: EvidenceOf, record_id: uuid.UUID, attachment_id: uuid.UUID) -> Row | None: ...
    async def known_evidence(self, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]: ...


# A filter of a list: the clause given its placeholder (`$n`), and the value (None: not filtered).
Filter: TypeAlias = tuple[Callable[[str], str], Any]


def _newest(table: str, newest_by: str, filters: Sequence[Filter], limit: int) -> tuple[str, list[Any]]:
    """`SELECT * FROM table` with only the filters given, newest first. `$1 IS NULL OR town_code =
    $1` in one fixed statement gave the prepared statement a generic plan that sorted every town's
    rows of every year, where a town's index (or the county's, by time) stops at `limit`."""
    where: list[str] = []
    args: list[Any] = []
    for clause, value in filters:
        if value is not None:
            args.append(value)
            where.append(clause(f"${len(args)}"))
    args.append(limit)
    sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608 - table, columns and clauses are this module's own; every value is a bound parameter
    return sql + f" ORDER BY {newest_by} DESC LIMIT ${len(args)}", args


# What a record's evidence is listed by: an inspection's or a case's (the two columns of `evidence`).
EvidenceOf: TypeAlias = Literal["inspection_id", "case_id"]
# A record's evidence as its read view shows it (never its keys or where it was taken), and one
# piece with its keys to read its bytes: an inspection's, or a case's.
_EVIDENCE_SHOWN = ("SELECT attachment_id, inspection_id, case_id, step, note, kind, seq, content_type, bytes, sha256,"
                   " width, height, original_sha256, captured_at, uploaded_by, uploaded_at FROM evidence")
_EVIDENCE_OF_EACH = {
    "inspection_id": _EVIDENCE_SHOWN + " WHERE inspection_id = ANY($1::uuid[]) ORDER BY inspection_id, seq",
    "case_id": _EVIDENCE_SHOWN + " WHERE case_id = ANY($1::uuid[]) ORDER BY case_id, seq"}
_EVIDENCE_ITEM = {
    "inspection_id": "SELECT attachment_id, content_type, stored_key, thumbnail_key FROM evidence"
                     " WHERE inspection_id = $1 AND attachment_id = $2",
    "case_id": "SELECT attachment_id, content_type, stored_key, thumbnail_key FROM evidence"
               " WHERE case_id = $1 AND attachment_id = $2"}


def _town(p: str) -> str:
    return f"town_code = {p}"


def _assignments(fields: Mapping[str, Any]) -> str:
    """`a = $2, b = $3` for an UPDATE whose $1 is the row's id: column names are the flows' own
    keywords, every value a bound parameter."""
    return ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))


class PgStore:
    """The store's operations on one transaction's connection (the unit of work's)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # --- inspections and their needs ----------------------------------------------------------
    async def inspection(self, inspection_id: uuid.UUID, *, lock: bool = False) -> Row | None:
        if lock:
            return await self.conn.fetchrow("SELECT * FROM inspections WHERE inspection_id = $1 FOR UPDATE",
                                            inspection_id)
        return await self.conn.fetchrow("SELECT * FROM inspections WHERE inspection_id = $1", inspection_id)

    async def planned_inspection(self, town_code: str, target: str, *, lock: bool = False) -> Row | None:
        sql = "SELECT * FROM inspections WHERE town_code = $1 AND target = $2 AND status = 'planned'"
        return await self.conn.fetchrow(sql + " FOR UPDATE" if lock else sql, town_code, target)

    async def create_inspection(self, town_code: str, target: str, units: list[str], now: datetime) -> uuid.UUID:
        inspection_id = uuid.uuid4()
        await self.conn.execute(
            "INSERT INTO inspections (inspection_id, town_code, target, status, units, created_at)"
            " VALUES ($1, $2, $3, 'planned', $4, $5)", inspection_id, town_code, target, units, now)
        return inspection_id

    async def set_inspection(self, inspection_id: uuid.UUID, **fields: Any) -> None:
        await self.conn.execute(f"UPDATE inspections SET {_assignments(fields)} WHERE inspection_id = $1",  # noqa: S608 - see _assignments
                                inspection_id, *fields.values())

    async def list_inspections(self, town_code: str | None, status: str | None, target: str | None,
                               unit: str | None, limit: int) -> list[Row]:
        """One town's inspections, or every town's (None), newest first."""
        sql, args = _newest("inspections", "created_at", [
            (_town, town_code), (lambda p: f"status = {p}", status), (lambda p: f"target = {p}", target),
            (lambda p: f"{p} = ANY(units)", unit)], limit)
        return await self.conn.fetch(sql, *args)

    async def add_need(self, *, town_code: str, inspection_id: uuid.UUID, source: str, task_id: str | None,
                       request_id: str | None, item_code: str, target: str, units: list[str],
                       due: datetime | None, now: datetime, trace_headers: dict[str, str]) -> bool:
        """False when the task already has its need (a redelivered event)."""
        return bool(await self.conn.fetchval(
            "INSERT INTO needs (need_id, town_code, inspection_id, source, task_id, request_id, item_code, target,"
            " units, due, created_at, trace_headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT DO NOTHING RETURNING true",
            uuid.uuid4(), town_code, inspection_id, source, task_id, request_id, item_code, target, units, due, now,
            trace_headers))

    async def needs_of_each(self, inspection_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Row]]:
        """The needs of several inspections in one round trip (a list of 200 asked 201 before)."""
        found: dict[uuid.UUID, list[Row]] = {i: [] for i in inspection_ids}
        for row in await self.conn.fetch("SELECT * FROM needs WHERE inspection_id = ANY($1::uuid[])"
                                         " ORDER BY inspection_id, created_at", inspection_ids):
            found[row["inspection_id"]].append(row)
        return found

    async def mark_repeated_need(self, town_code: str, task_id: str) -> None:
        await self.conn.execute("UPDATE needs SET repeated_inspection = true WHERE town_code = $1 AND task_id = $2"
                                " AND source = 'task'", town_code, task_id)

    # --- 多头检查 ---------------------------------------------------------------------------------
    async def visits_since(self, town_code: str, since: datetime, target: str | None = None) -> list[Row]:
        """Inspections of a town that went to their target since `since`; of one target when given."""
        return await self.conn.fetch(
            "SELECT inspection_id, town_code, target, units, started_at, status FROM inspections"
            " WHERE started_at IS NOT NULL AND started_at >= $2 AND town_code = $1"
            " AND ($3::text IS NULL OR target = $3) ORDER BY started_at", town_code, since, target)

    async def planned_inspections_of(self, town_code: str, targets: list[str]) -> dict[str, Row]:
        """The planned inspection (at most one, see inspections_one_planned) of each target of a town."""
        rows = await self.conn.fetch(
            "SELECT * FROM inspections WHERE town_code = $1 AND target = ANY($2) AND status = 'planned'",
            town_code, targets)
        return {row["target"]: row for row in rows}

    async def repeated_needs_of(self, inspection_ids: list[uuid.UUID]) -> list[Row]:
        return await self.conn.fetch(
            "SELECT need_id, inspection_id, task_id, request_id, item_code, created_at FROM needs"
            " WHERE inspection_id = ANY($1) AND repeated_inspection ORDER BY created_at", inspection_ids)

    # --- cases ------------------------------------------------------------------------------------
    async def case(self, case_id: uuid.UUID, *, lock: bool = False) -> Row | None:
        if lock:
            return await self.conn.fetchrow("SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id)
        return await self.conn.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)

    async def create_case(self, row: dict[str, Any]) -> None:
        placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
        await self.conn.execute(f"INSERT INTO cases ({', '.join(row)}) VALUES ({placeholders})",  # noqa: S608 - column names are the flows' own keywords; every value is a bound parameter
                                *row.values())

    async def set_case(self, case_id: uuid.UUID, **fields: Any) -> None:
        await self.conn.execute(f"UPDATE cases SET {_assignments(fields)} WHERE case_id = $1",  # noqa: S608 - see _assignments
                                case_id, *fields.values())

    async def add_case_step(self, town_code: str, case_id: uuid.UUID, step: str, at: datetime, by: str,
                            note: str | None) -> None:
        await self.conn.execute("INSERT INTO case_steps (town_code, case_id, step, at, by, note)"
                                " VALUES ($1, $2, $3, $4, $5, $6)", town_code, case_id, step, at, by, note)

    async def case_steps(self, case_id: uuid.UUID) -> list[Row]:
        return await self.conn.fetch("SELECT step, at, by, note FROM case_steps WHERE case_id = $1 ORDER BY at",
                                     case_id)

    async def list_cases(self, town_code: str | None, step: str | None, inspection_id: uuid.UUID | None,
                         limit: int) -> list[Row]:
        """One town's cases, or every town's (None), newest first."""
        sql, args = _newest("cases", "filed_at", [
            (_town, town_code), (lambda p: f"step = {p}", step), (lambda p: f"inspection_id = {p}", inspection_id)],
            limit)
        return await self.conn.fetch(sql, *args)

    async def claim_due_cases(self, towns: Sequence[str], now: datetime, limit: int) -> list[Row]:
        """Up to `limit` undecided cases of the served `towns` with a deadline flag due by `now`,
        earliest first, with their inspection's officers (told of the flag), locked for this transaction. SKIP LOCKED: another replica's pass takes the
        next ones instead of waiting. Only served towns: a town gone from the county's files would
        keep the oldest due rows and fill every batch with cases that cannot be worked."""
        return await self.conn.fetch(
            "SELECT c.case_id, c.town_code, c.task_id, c.request_id, c.item_code, c.target, c.filed_at, c.extended,"
            " c.warned_at, c.overdue_at, coalesce(i.officers, '{}') AS officers"
            " FROM cases c JOIN inspections i ON i.inspection_id = c.inspection_id"
            " WHERE c.step IN ('filed', 'investigated', 'reviewed') AND c.next_flag_at <= $1 AND c.town_code = ANY($3)"
            " ORDER BY c.next_flag_at LIMIT $2 FOR UPDATE OF c SKIP LOCKED", now, limit, list(towns))

    async def set_case_flags(self, flags: Sequence[tuple[uuid.UUID, bool, bool, datetime | None]],
                             at: datetime) -> None:
        """(case, warn, overdue, next flag at) in one statement; a flag already set keeps its time."""
        await self.conn.execute(
            "UPDATE cases c SET warned_at = coalesce(c.warned_at, CASE WHEN u.warn THEN $5::timestamptz END),"
            " overdue_at = coalesce(c.overdue_at, CASE WHEN u.overdue THEN $5::timestamptz END),"
            " next_flag_at = u.next_at"
            " FROM unnest($1::uuid[], $2::bool[], $3::bool[], $4::timestamptz[]) AS u(case_id, warn, overdue, next_at)"
            " WHERE c.case_id = u.case_id",
            [f[0] for f in flags], [f[1] for f in flags], [f[2] for f in flags], [f[3] for f in flags], at)

    # --- random inspection plans ------------------------------------------------------------------
    async def save_plan(self, town_code: str, plan_id: uuid.UUID, seed: int, sample_size: int,
                        population: list[str], targets: list[dict[str, Any]], at: datetime, by: str) -> None:
        await self.conn.execute(
            "INSERT INTO plans (plan_id, town_code, seed, sample_size, population, targets, published_at,"
            " published_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            plan_id, town_code, seed, sample_size, population, targets, at, by)

    async def plan(self, plan_id: uuid.UUID) -> Row | None:
        return await self.conn.fetchrow("SELECT * FROM plans WHERE plan_id = $1", plan_id)

    async def plans(self, town_code: str | None, limit: int) -> list[Row]:
        """One town's plans, or every town's (None), newest first."""
        sql, args = _newest("plans", "published_at", [(_town, town_code)], limit)
        return await self.conn.fetch(sql, *args)

    # --- gauges -----------------------------------------------------------------------------------
    async def counts(self) -> list[Row]:
        """Per town with any: planned inspections, undecided cases warned (not overdue), overdue."""
        return await self.conn.fetch(
            "SELECT town_code, sum(planned) AS planned, sum(near_limit) AS near_limit, sum(overdue) AS overdue FROM ("
            " SELECT town_code, count(*) AS planned, 0 AS near_limit, 0 AS overdue FROM inspections"
            "  WHERE status = 'planned' GROUP BY town_code"
            " UNION ALL SELECT town_code, 0, count(*) FILTER (WHERE warned_at IS NOT NULL AND overdue_at IS NULL),"
            "  count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM cases"
            "  WHERE step IN ('filed', 'investigated', 'reviewed') GROUP BY town_code) AS c GROUP BY town_code")

    # --- evidence (write-once: rows are inserted, never changed or removed) ------------------------
    async def insert_evidence(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The rows in one statement (no pipeline: see shared/tests/test_no_statement_pipelines.py)."""
        if rows:
            await self.conn.execute(
                "INSERT INTO evidence SELECT * FROM jsonb_populate_recordset(NULL::evidence, $1::text::jsonb)",
                json.dumps([dict(r) for r in rows], default=str, ensure_ascii=False))

    async def evidence_of_each(self, column: EvidenceOf, record_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Row]]:
        """The evidence of several inspections (`column` inspection_id) or cases (case_id), in one
        round trip, each record's in the order recorded."""
        found: dict[uuid.UUID, list[Row]] = {i: [] for i in record_ids}
        for row in await self.conn.fetch(_EVIDENCE_OF_EACH[column], record_ids):
            found[row[column]].append(row)
        return found

    async def evidence_item(self, column: EvidenceOf, record_id: uuid.UUID, attachment_id: uuid.UUID) -> Row | None:
        """One piece of a record's evidence with its keys (to read its bytes); None if not the record's."""
        return await self.conn.fetchrow(_EVIDENCE_ITEM[column], record_id, attachment_id)

    async def known_evidence(self, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.conn.fetch("SELECT attachment_id FROM evidence WHERE attachment_id = ANY($1::uuid[])",
                                     attachment_ids)
        return {row["attachment_id"] for row in rows}
