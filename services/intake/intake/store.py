"""Every SQL statement of intake, as named functions over asyncpg."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import asyncpg


async def claim_ticket(conn: asyncpg.Connection, day: date, citizen_ref: str, item_code: str,
                       since: datetime) -> tuple[int, int]:
    """The day's next ticket sequence, and how often this citizen filed this item since `since`:
    one round trip. The day's sequence row stays locked until the filing commits."""
    row = await conn.fetchrow(
        "WITH seq AS (INSERT INTO ticket_sequences (day, last) VALUES ($1, 1)"
        "  ON CONFLICT (day) DO UPDATE SET last = ticket_sequences.last + 1 RETURNING last)"
        " SELECT (SELECT last FROM seq) AS sequence, (SELECT count(*) FROM requests"
        "  WHERE citizen_ref = $2 AND item_code = $3 AND filed_at >= $4) AS earlier",
        day, citizen_ref, item_code, since,
    )
    return int(row["sequence"]), int(row["earlier"])


async def claim_idempotency_key(conn: asyncpg.Connection, scope: str, key: str,
                                fingerprint: str) -> asyncpg.Record | None:
    """None when the key is new (and now ours); else the stored row of the first call.

    A concurrent retry with the same key waits on the primary key until the first commits."""
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_keys (scope, key, fingerprint) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        scope, key, fingerprint,
    )
    if claimed:
        return None
    return await conn.fetchrow(
        "SELECT fingerprint, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2",
        scope, key,
    )


async def save_idempotent_response(conn: asyncpg.Connection, scope: str, key: str, status: int,
                                   response: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2",
        scope, key, status, response,
    )


async def insert_request(conn: asyncpg.Connection, row: dict[str, Any], first_step: str,
                         detail: dict[str, Any]) -> None:
    """A new request with the first step of its timeline, in one statement."""
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    n = len(columns)
    await conn.execute(
        f"WITH r AS (INSERT INTO requests ({', '.join(columns)}) VALUES ({placeholders})"
        "  RETURNING request_id, filed_at)"
        f" INSERT INTO timeline (request_id, at, step, detail) SELECT request_id, filed_at, ${n + 1}::text,"
        f" ${n + 2}::jsonb FROM r",
        *row.values(), first_step, detail,
    )


async def add_timeline(conn: asyncpg.Connection, request_id: uuid.UUID, at: datetime, step: str,
                       detail: dict[str, Any], event_id: uuid.UUID | None) -> None:
    await conn.execute(
        "INSERT INTO timeline (request_id, at, step, detail, event_id) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (event_id, request_id) DO NOTHING",
        request_id, at, step, detail, event_id,
    )


async def step_and_status(conn: asyncpg.Connection, request_id: uuid.UUID, at: datetime, step: str,
                          detail: dict[str, Any], event_id: uuid.UUID | None) -> asyncpg.Record | None:
    """Add a step to a request's timeline and return its status, locked until commit: one
    round trip. None (and no step) when the request is not ours."""
    return await conn.fetchrow(
        "WITH current AS (SELECT status, status_at FROM requests WHERE request_id = $1 FOR UPDATE),"
        " step AS (INSERT INTO timeline (request_id, at, step, detail, event_id)"
        "  SELECT $1, $2::timestamptz, $3::text, $4::jsonb, $5::uuid FROM current"
        "  ON CONFLICT (event_id, request_id) DO NOTHING)"
        " SELECT status, status_at FROM current",
        request_id, at, step, detail, event_id,
    )


async def link_task(conn: asyncpg.Connection, task_id: str, request_id: uuid.UUID) -> list[asyncpg.Record]:
    """Remember which request a task serves; return (and forget) inspection steps that arrived
    for it before its dispatch."""
    return await conn.fetch(
        "WITH link AS (INSERT INTO task_requests (task_id, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING)"
        " DELETE FROM early_inspection_steps WHERE task_id = $1 RETURNING at, detail, event_id",
        task_id, request_id,
    )


async def requests_of_tasks(conn: asyncpg.Connection, task_ids: list[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT task_id, request_id FROM task_requests WHERE task_id = ANY($1)", task_ids)
    return {row["task_id"]: str(row["request_id"]) for row in rows}


async def keep_early_inspection_step(conn: asyncpg.Connection, task_id: str, at: datetime,
                                     detail: dict[str, Any], event_id: uuid.UUID) -> None:
    await conn.execute("INSERT INTO early_inspection_steps (task_id, at, detail, event_id)"
                       " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", task_id, at, detail, event_id)


async def set_status(conn: asyncpg.Connection, request_id: uuid.UUID, status: str, at: datetime,
                     completed_at: datetime | None = None) -> None:
    await conn.execute(
        "UPDATE requests SET status = $2, status_at = $3, completed_at = COALESCE($4, completed_at)"
        " WHERE request_id = $1", request_id, status, at, completed_at)


async def request_by_ticket(conn: asyncpg.Connection | asyncpg.Pool, ticket_no: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM requests WHERE ticket_no = $1", ticket_no)


async def request_for_update(conn: asyncpg.Connection, ticket_no: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM requests WHERE ticket_no = $1 FOR UPDATE", ticket_no)


async def timeline_of(conn: asyncpg.Connection | asyncpg.Pool, request_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT at, step, detail FROM timeline WHERE request_id = $1 ORDER BY at, seq", request_id)


async def save_rating(conn: asyncpg.Connection, request_id: uuid.UUID, rating: str,
                      rated_at: datetime) -> None:
    await conn.execute(
        "UPDATE requests SET rating = $2, rated_at = $3 WHERE request_id = $1",
        request_id, rating, rated_at,
    )


