"""Every SQL statement of enforcement, as named functions over asyncpg."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def planned_inspection_for_update(conn: asyncpg.Connection, town_code: str,
                                        target: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM inspections WHERE town_code = $1 AND target = $2 AND status = 'planned' FOR UPDATE",
        town_code, target)


async def create_inspection(conn: asyncpg.Connection, town_code: str, target: str, units: list[str],
                            now: datetime) -> uuid.UUID:
    inspection_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO inspections (inspection_id, town_code, target, status, units, created_at)"
        " VALUES ($1, $2, $3, 'planned', $4, $5)", inspection_id, town_code, target, units, now)
    return inspection_id


async def set_inspection(conn: asyncpg.Connection, inspection_id: uuid.UUID, **fields: Any) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE inspections SET {sets} WHERE inspection_id = $1", inspection_id,  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter
                       *fields.values())


async def add_need(conn: asyncpg.Connection, *, town_code: str, inspection_id: uuid.UUID, source: str,
                   task_id: str | None, request_id: str | None, item_code: str, target: str, units: list[str],
                   due: datetime | None, now: datetime, trace_headers: dict[str, str]) -> bool:
    return bool(await conn.fetchval(
        "INSERT INTO needs (need_id, town_code, inspection_id, source, task_id, request_id, item_code, target,"
        " units, due, created_at, trace_headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT DO NOTHING RETURNING true",
        uuid.uuid4(), town_code, inspection_id, source, task_id, request_id, item_code, target, units, due, now,
        trace_headers))


async def needs_of(db: Db, inspection_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM needs WHERE inspection_id = $1 ORDER BY created_at", inspection_id)


async def needs_of_each(db: Db, inspection_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[asyncpg.Record]]:
    """The needs of several inspections in one round trip (a list of 200 asked 201 before)."""
    found: dict[uuid.UUID, list[asyncpg.Record]] = {i: [] for i in inspection_ids}
    for row in await db.fetch("SELECT * FROM needs WHERE inspection_id = ANY($1::uuid[])"
                              " ORDER BY inspection_id, created_at", inspection_ids):
        found[row["inspection_id"]].append(row)
    return found


async def inspection(db: Db, inspection_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM inspections WHERE inspection_id = $1", inspection_id)


async def inspection_for_update(conn: asyncpg.Connection, inspection_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM inspections WHERE inspection_id = $1 FOR UPDATE", inspection_id)


def _newest(table: str, newest_by: str, filters: Sequence[tuple[str, Any]], limit: int) -> tuple[str, list[Any]]:
    """`SELECT * FROM table` with only the filters given (a clause each, `$` for its value), newest
    first. `$1 IS NULL OR town_code = $1` in one fixed statement gave the prepared statement a
    generic plan that sorted every town's rows of every year, where a town's index (or the
    county's, by time) stops at `limit`."""
    where: list[str] = []
    args: list[Any] = []
    for clause, value in filters:
        if value is not None:
            args.append(value)
            where.append(clause.replace("$", f"${len(args)}"))
    args.append(limit)
    sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608 - table, columns and clauses are this module's own; every value is a bound parameter
    return sql + f" ORDER BY {newest_by} DESC LIMIT ${len(args)}", args


async def list_inspections(db: Db, town_code: str | None, status: str | None, target: str | None,
                           unit: str | None, limit: int) -> list[asyncpg.Record]:
    """One town's inspections, or every town's (None), newest first."""
    sql, args = _newest("inspections", "created_at", [("town_code = $", town_code), ("status = $", status),
                                                      ("target = $", target), ("$ = ANY(units)", unit)], limit)
    return await db.fetch(sql, *args)


async def create_case(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO cases ({', '.join(columns)}) VALUES ({placeholders})", *row.values())  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter


async def add_case_step(conn: asyncpg.Connection, town_code: str, case_id: uuid.UUID, step: str, at: datetime,
                        by: str, note: str | None) -> None:
    await conn.execute("INSERT INTO case_steps (town_code, case_id, step, at, by, note)"
                       " VALUES ($1, $2, $3, $4, $5, $6)", town_code, case_id, step, at, by, note)


async def case_for_update(conn: asyncpg.Connection, case_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id)


async def case(db: Db, case_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)


async def case_steps(db: Db, case_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT step, at, by, note FROM case_steps WHERE case_id = $1 ORDER BY at", case_id)


async def set_case(conn: asyncpg.Connection, case_id: uuid.UUID, **fields: Any) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE cases SET {sets} WHERE case_id = $1", case_id, *fields.values())  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter


async def list_cases(db: Db, town_code: str | None, step: str | None, inspection_id: uuid.UUID | None,
                     limit: int) -> list[asyncpg.Record]:
    """One town's cases, or every town's (None), newest first."""
    sql, args = _newest("cases", "filed_at", [("town_code = $", town_code), ("step = $", step),
                                              ("inspection_id = $", inspection_id)], limit)
    return await db.fetch(sql, *args)


async def claim_due_cases(conn: asyncpg.Connection, towns: Sequence[str], now: datetime,
                          limit: int) -> list[asyncpg.Record]:
    """Up to `limit` undecided cases of the served `towns` with a deadline flag due by `now`,
    earliest first, locked for this transaction. SKIP LOCKED: another replica's pass takes the next
    ones instead of waiting. Only served towns: a town gone from the county's files would keep the
    oldest due rows and fill every batch with cases that cannot be worked."""
    return await conn.fetch(
        "SELECT case_id, town_code, filed_at, extended, warned_at, overdue_at FROM cases"
        " WHERE step IN ('filed', 'investigated', 'reviewed') AND next_flag_at <= $1 AND town_code = ANY($3)"
        " ORDER BY next_flag_at LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit, list(towns))


async def set_case_flags(conn: asyncpg.Connection, flags: Sequence[tuple[uuid.UUID, bool, bool, datetime | None]],
                         at: datetime) -> None:
    """(case, warn, overdue, next flag at) in one statement; a flag already set keeps its time."""
    await conn.execute(
        "UPDATE cases c SET warned_at = coalesce(c.warned_at, CASE WHEN u.warn THEN $5::timestamptz END),"
        " overdue_at = coalesce(c.overdue_at, CASE WHEN u.overdue THEN $5::timestamptz END),"
        " next_flag_at = u.next_at"
        " FROM unnest($1::uuid[], $2::bool[], $3::bool[], $4::timestamptz[]) AS u(case_id, warn, overdue, next_at)"
        " WHERE c.case_id = u.case_id",
        [f[0] for f in flags], [f[1] for f in flags], [f[2] for f in flags], [f[3] for f in flags], at)


async def save_plan(conn: asyncpg.Connection, town_code: str, plan_id: uuid.UUID, seed: int, sample_size: int,
                    population: list[str], targets: list[dict[str, Any]], at: datetime, by: str) -> None:
    await conn.execute(
        "INSERT INTO plans (plan_id, town_code, seed, sample_size, population, targets, published_at, published_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", plan_id, town_code, seed, sample_size, population, targets,
        at, by)


async def plans(db: Db, town_code: str | None, limit: int) -> list[asyncpg.Record]:
    """One town's plans, or every town's (None), newest first."""
    sql, args = _newest("plans", "published_at", [("town_code = $", town_code)], limit)
    return await db.fetch(sql, *args)


async def plan(db: Db, plan_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM plans WHERE plan_id = $1", plan_id)


async def counts(db: Db) -> list[asyncpg.Record]:
    """Per town with any: planned inspections, undecided cases warned (not overdue), overdue."""
    return await db.fetch(
        "SELECT town_code, sum(planned) AS planned, sum(near_limit) AS near_limit, sum(overdue) AS overdue FROM ("
        " SELECT town_code, count(*) AS planned, 0 AS near_limit, 0 AS overdue FROM inspections"
        "  WHERE status = 'planned' GROUP BY town_code"
        " UNION ALL SELECT town_code, 0, count(*) FILTER (WHERE warned_at IS NOT NULL AND overdue_at IS NULL),"
        "  count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM cases"
        "  WHERE step IN ('filed', 'investigated', 'reviewed') GROUP BY town_code) AS c GROUP BY town_code")


async def visits_since(db: Db, town_code: str | None, since: datetime,
                       target: str | None = None) -> list[asyncpg.Record]:
    """Inspections of a town (None: every town) that went to their target since `since`; of one
    target when given."""
    return await db.fetch(
        "SELECT inspection_id, town_code, target, units, started_at, status FROM inspections"
        " WHERE started_at IS NOT NULL AND started_at >= $2 AND ($1::text IS NULL OR town_code = $1)"
        " AND ($3::text IS NULL OR target = $3) ORDER BY started_at", town_code, since, target)


async def planned_inspections_of(db: Db, town_code: str, targets: list[str]) -> dict[str, asyncpg.Record]:
    """The planned inspection (at most one, see inspections_one_planned) of each target of a town."""
    rows = await db.fetch("SELECT * FROM inspections WHERE town_code = $1 AND target = ANY($2) AND status = 'planned'",
                          town_code, targets)
    return {row["target"]: row for row in rows}


async def repeated_needs_of(db: Db, inspection_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT need_id, inspection_id, task_id, request_id, item_code, created_at FROM needs"
        " WHERE inspection_id = ANY($1) AND repeated_inspection ORDER BY created_at", inspection_ids)


async def mark_repeated_need(conn: asyncpg.Connection, town_code: str, task_id: str) -> None:
    await conn.execute("UPDATE needs SET repeated_inspection = true WHERE town_code = $1 AND task_id = $2"
                       " AND source = 'task'", town_code, task_id)
