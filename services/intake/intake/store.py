"""Every SQL statement of intake, as named functions over asyncpg."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import asyncpg


async def next_ticket_sequence(conn: asyncpg.Connection, day: date) -> int:
    return int(await conn.fetchval(
        "INSERT INTO ticket_sequences (day, last) VALUES ($1, 1)"
        " ON CONFLICT (day) DO UPDATE SET last = ticket_sequences.last + 1 RETURNING last",
        day,
    ))


async def count_recent_filings(conn: asyncpg.Connection, citizen_ref: str, item_code: str,
                               since: datetime) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM requests WHERE citizen_ref = $1 AND item_code = $2 AND filed_at >= $3",
        citizen_ref, item_code, since,
    ))


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


async def insert_request(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(
        f"INSERT INTO requests ({', '.join(columns)}) VALUES ({placeholders})",
        *row.values(),
    )


async def add_timeline(conn: asyncpg.Connection, request_id: uuid.UUID, at: datetime, step: str,
                       detail: dict[str, Any], event_id: uuid.UUID | None) -> None:
    await conn.execute(
        "INSERT INTO timeline (request_id, at, step, detail, event_id) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (event_id, request_id) DO NOTHING",
        request_id, at, step, detail, event_id,
    )


async def status_for_update(conn: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT status, status_at FROM requests WHERE request_id = $1 FOR UPDATE",
                               request_id)


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


