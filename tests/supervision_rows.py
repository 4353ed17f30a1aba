"""Dispatch's tasks written straight into its database (far faster than filing thousands), for
the supervision tests of the stack tier and of the database tier."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from dispatch import rules
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

SUPERVISED = "dispatch.task.supervised.v1"
TOWN = load_town(DEMO_TOWN_DIR)
RULES = TOWN.rules.dispatch
TOWNS = {TOWN.code: TOWN}
COLUMNS = ("task_id", "request_id", "ticket_no", "item_code", "kind", "colour", "village", "location",
           "lead_module", "post", "assignee", "assigned_via", "status", "dispatched_at", "window_start",
           "respond_by", "resolve_by")


def task_row(window_start: datetime, window: timedelta, status: str = "dispatched") -> tuple[object, ...]:
    """A task of the demo town's mediation post (A holder s017), as dispatch stores it."""
    return (uuid.uuid4(), uuid.uuid4(), f"321003104-TEST-{uuid.uuid4().hex[:8]}", "T004", "service", "red",
            "V01", "青禾村五组", "stability", "mediation", "s017", "A", status, window_start, window_start,
            window_start + timedelta(hours=1), window_start + window)


async def insert_tasks(conn: asyncpg.Connection, rows: Sequence[tuple[object, ...]],
                       with_next: bool = True, town: str | None = TOWN.code) -> None:
    """Tasks of `town` written straight into dispatch's database (far faster than filing
    thousands), with the next supervision moment dispatch itself would store. `town` None: as
    written before the county change (no town_code column yet)."""
    columns: tuple[str, ...] = COLUMNS if town is None else (*COLUMNS, "town_code")
    rows = [row if town is None else (*row, town) for row in rows]
    if not with_next:
        await conn.copy_records_to_table("tasks", records=rows, columns=columns)
        return
    records = [(*row, rules.next_supervision_at(row[14], row[16], (), RULES)
                if row[12] in rules.OPEN_STATUSES else None) for row in rows]
    await conn.copy_records_to_table("tasks", records=records, columns=(*columns, "next_supervision_at"))


async def insert_sent(conn: asyncpg.Connection, task_ids: Sequence[uuid.UUID], levels: Sequence[str],
                      at: datetime, town: str | None = TOWN.code) -> None:
    """Levels already sent, of tasks of `town` (None: as written before the county change)."""
    columns: tuple[str, ...] = ("task_id", "level", "at", "notified")
    records = [(t, level, at, ["s017"]) for t in task_ids for level in levels]
    if town is not None:
        columns, records = (*columns, "town_code"), [(*r, town) for r in records]
    await conn.copy_records_to_table("supervisions", columns=columns, records=records)
