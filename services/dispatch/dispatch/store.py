"""Every SQL statement of dispatch, as named functions over asyncpg."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from townflow_shared.events import RequestFiledData


async def record_matter(conn: asyncpg.Connection, data: RequestFiledData, event_id: uuid.UUID,
                        received_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO matters (request_id, ticket_no, item_code, colour, village, location, target,"
        " filed_at, received_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        uuid.UUID(data.request_id), data.ticket_no, data.item_code, data.colour, data.village,
        data.location, data.target, data.filed_at, received_at, event_id,
    )


async def matter_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM matters"))
