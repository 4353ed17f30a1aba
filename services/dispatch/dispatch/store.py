"""Every SQL statement of dispatch, as named functions over asyncpg."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from townflow_shared.events import RequestFiledData

from .rules import OPEN_STATUSES

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def record_matter(conn: asyncpg.Connection, data: RequestFiledData, event_id: uuid.UUID,
                        received_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO matters (request_id, ticket_no, item_code, colour, village, location, target,"
        " filed_at, received_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        uuid.UUID(data.request_id), data.ticket_no, data.item_code, data.colour, data.village,
        data.location, data.target, data.filed_at, received_at, event_id,
    )


async def matter_count(db: Db) -> int:
    return int(await db.fetchval("SELECT count(*) FROM matters"))


# Written out, not a parameter: only a literal list lets the planner use the partial index
# `tasks_open_by_assignee` (a prepared statement's generic plan cannot prove `= ANY($n)` matches it).
_OPEN = ", ".join(f"'{status}'" for status in OPEN_STATUSES)


async def unavailable_staff(conn: asyncpg.Connection, caps: dict[str, int], now: datetime) -> set[str]:
    """Who of `caps` is off-post at `now` or already holds their cap of open tasks: one round
    trip, and counting stops at the cap, so its cost does not grow with a backlog."""
    rows = await conn.fetch(
        "SELECT s.staff_id FROM unnest($1::text[], $2::int[]) AS s(staff_id, cap)"
        " WHERE EXISTS (SELECT 1 FROM off_post o WHERE o.staff_id = s.staff_id AND o.from_at <= $3 AND o.to_at > $3)"
        "  OR (SELECT count(*) FROM (SELECT 1 FROM tasks t WHERE t.assignee = s.staff_id"
        f"      AND t.status IN ({_OPEN}) LIMIT s.cap) AS open_tasks) >= s.cap",
        list(caps), list(caps.values()), now)
    return {r["staff_id"] for r in rows}


async def insert_task(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({placeholders})",
                       *row.values())


async def task(db: Db, task_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM tasks WHERE task_id = $1", task_id)


async def task_for_update(conn: asyncpg.Connection, task_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM tasks WHERE task_id = $1 FOR UPDATE", task_id)


async def tasks_for_update(conn: asyncpg.Connection, task_ids: Iterable[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM tasks WHERE task_id = ANY($1) ORDER BY task_id FOR UPDATE",
                            list(task_ids))


async def update_task(conn: asyncpg.Connection, task_id: uuid.UUID, **fields: Any) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE tasks SET {sets} WHERE task_id = $1", task_id, *fields.values())


async def list_tasks(db: Db, *, now: datetime, assignee: str | None = None, module: str | None = None,
                     status: str | None = None, colour: str | None = None, overdue: bool | None = None,
                     request_id: uuid.UUID | None = None, limit: int = 200) -> list[asyncpg.Record]:
    where, args = [], []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.format(f"${len(args)}"))

    if assignee:
        add("assignee = {}", assignee)
    if module:
        add("lead_module = {}", module)
    if status:
        add("status = {}", status)
    if colour:
        add("colour = {}", colour)
    if request_id:
        add("request_id = {}", request_id)
    if overdue is not None:
        args.append(list(OPEN_STATUSES))
        args.append(now)
        clause = f"(status = ANY(${len(args) - 1}) AND resolve_by < ${len(args)})"
        where.append(clause if overdue else f"NOT {clause}")
    args.append(limit)
    sql = "SELECT * FROM tasks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY dispatched_at DESC LIMIT ${len(args)}"
    return await db.fetch(sql, *args)


async def board_counts(db: Db) -> list[asyncpg.Record]:
    return await db.fetch("SELECT colour, status, count(*) AS n FROM tasks GROUP BY colour, status")


async def overdue_tasks(db: Db, now: datetime) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM tasks WHERE status = ANY($1) AND resolve_by < $2 ORDER BY resolve_by",
        list(OPEN_STATUSES), now)


async def escalated_tasks(db: Db) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT t.* FROM tasks t JOIN supervisions s ON s.task_id = t.task_id AND s.level = 'escalated'"
        " WHERE t.status = ANY($1) ORDER BY s.at", list(OPEN_STATUSES))


async def returned_queue(db: Db) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM tasks WHERE status = 'returned' ORDER BY returned_at")


async def supervision_candidates(conn: asyncpg.Connection, now: datetime, first_at: float,
                                 limit: int = 500) -> list[asyncpg.Record]:
    """Open tasks whose first supervision moment has passed and that still miss a level."""
    return await conn.fetch(
        "SELECT t.task_id, t.request_id, t.assignee, t.post, t.window_start, t.resolve_by,"
        " coalesce(array_agg(s.level) FILTER (WHERE s.level IS NOT NULL), '{}') AS sent"
        " FROM tasks t LEFT JOIN supervisions s ON s.task_id = t.task_id"
        " WHERE t.status = ANY($1) AND t.window_start + (t.resolve_by - t.window_start) * $2 <= $3"
        " GROUP BY t.task_id HAVING count(s.level) < 3 ORDER BY t.resolve_by LIMIT $4",
        list(OPEN_STATUSES), first_at, now, limit)


async def add_supervision(conn: asyncpg.Connection, task_id: uuid.UUID, level: str, at: datetime,
                          notified: list[str]) -> bool:
    return bool(await conn.fetchval(
        "INSERT INTO supervisions (task_id, level, at, notified) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING true", task_id, level, at, notified))


async def supervision_levels(db: Db, task_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT level, at, notified FROM supervisions WHERE task_id = $1 ORDER BY at",
                          task_id)


async def add_extension(conn: asyncpg.Connection, task_id: uuid.UUID, days: int, reason: str,
                        by: str, at: datetime) -> uuid.UUID | None:
    """None when a request is already pending for the task."""
    extension_id = uuid.uuid4()
    inserted = await conn.fetchval(
        "INSERT INTO extensions (extension_id, task_id, days, reason, requested_by, requested_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
        extension_id, task_id, days, reason, by, at)
    return extension_id if inserted else None


async def pending_extension(conn: asyncpg.Connection, task_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM extensions WHERE task_id = $1 AND status = 'pending' FOR UPDATE", task_id)


async def decide_extension(conn: asyncpg.Connection, extension_id: uuid.UUID, status: str, by: str,
                           at: datetime, note: str | None) -> None:
    await conn.execute(
        "UPDATE extensions SET status = $2, decided_by = $3, decided_at = $4, note = $5"
        " WHERE extension_id = $1", extension_id, status, by, at, note)


async def extensions_of(db: Db, task_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM extensions WHERE task_id = $1 ORDER BY requested_at", task_id)


async def add_off_post(conn: asyncpg.Connection, staff_id: str, from_at: datetime, to_at: datetime,
                       reason: str, by: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO off_post (staff_id, from_at, to_at, reason, registered_by)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id", staff_id, from_at, to_at, reason, by))


async def open_counts_by_colour(db: Db, now: datetime) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT colour, count(*) AS open, count(*) FILTER (WHERE resolve_by < $2) AS overdue"
        " FROM tasks WHERE status = ANY($1) GROUP BY colour", list(OPEN_STATUSES), now)
