"""Every SQL statement of dispatch, as named functions over asyncpg; and the unit of work the
command handlers change state through (`TaskStore`, one transaction with its outbox)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias

import asyncpg

from townflow_shared.db import Database
from townflow_shared.events import Envelope, RequestFiledData
from townflow_shared.outbox import enqueue

from . import rules
from .rules import OPEN_STATUSES

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def record_matter(conn: asyncpg.Connection, town_code: str, data: RequestFiledData,
                        event_id: uuid.UUID, received_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO matters (request_id, ticket_no, item_code, colour, village, location, target,"
        " filed_at, received_at, event_id, town_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        uuid.UUID(data.request_id), data.ticket_no, data.item_code, data.colour, data.village,
        data.location, data.target, data.filed_at, received_at, event_id, town_code,
    )
    if data.point is not None:  # a located matter's point and cell (issue #30; migration 014)
        await conn.execute(
            "INSERT INTO matter_places (request_id, point, grid_cell)"
            " VALUES ($1, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, $4) ON CONFLICT (request_id) DO NOTHING",
            uuid.UUID(data.request_id), data.point.longitude, data.point.latitude, data.grid_cell)
    if data.attachments:  # the filing's first photo, for the lists' thumbnails (issue #29; migration 015)
        await conn.execute("INSERT INTO matter_photos (request_id, first_photo) VALUES ($1, $2)"
                           " ON CONFLICT (request_id) DO NOTHING",
                           uuid.UUID(data.request_id), uuid.UUID(data.attachments[0].attachment_id))


async def matter_count(db: Db) -> int:
    return int(await db.fetchval("SELECT count(*) FROM matters"))


# Written out, not a parameter: only a literal list lets the planner use the partial index
# `tasks_open_by_assignee` (a prepared statement's generic plan cannot prove `= ANY($n)` matches it).
_OPEN = ", ".join(f"'{status}'" for status in OPEN_STATUSES)


async def unavailable_staff(conn: asyncpg.Connection, town_code: str, caps: dict[str, int],
                            now: datetime) -> set[str]:
    """Who of the town's staff in `caps` is off-post at `now` or already holds their cap of open
    tasks in the town: one round trip, and counting stops at the cap, so its cost does not grow
    with a backlog."""
    rows = await conn.fetch(
        "SELECT s.staff_id FROM unnest($1::text[], $2::int[]) AS s(staff_id, cap)"  # noqa: S608 - _OPEN is written out from the OPEN_STATUSES constant, no input
        " WHERE EXISTS (SELECT 1 FROM off_post o WHERE o.town_code = $4 AND o.staff_id = s.staff_id"
        "                AND o.from_at <= $3 AND o.to_at > $3)"
        "  OR (SELECT count(*) FROM (SELECT 1 FROM tasks t WHERE t.town_code = $4 AND t.assignee = s.staff_id"
        f"      AND t.status IN ({_OPEN}) LIMIT s.cap) AS open_tasks) >= s.cap",
        list(caps), list(caps.values()), now, town_code)
    return {r["staff_id"] for r in rows}


async def insert_task(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter
                       *row.values())


async def task(db: Db, task_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM tasks WHERE task_id = $1", task_id)


async def task_for_update(conn: asyncpg.Connection, task_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM tasks WHERE task_id = $1 FOR UPDATE", task_id)


async def tasks_for_update(conn: asyncpg.Connection, town_code: str,
                           task_ids: Iterable[uuid.UUID]) -> list[asyncpg.Record]:
    """The town's tasks among `task_ids`, locked (another town's ids are none of its business)."""
    return await conn.fetch(
        "SELECT * FROM tasks WHERE task_id = ANY($1) AND town_code = $2 ORDER BY task_id FOR UPDATE",
        list(task_ids), town_code)


async def update_task(conn: asyncpg.Connection, task_id: uuid.UUID, **fields: Any) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE tasks SET {sets} WHERE task_id = $1", task_id, *fields.values())  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter


# A task list's rows: the task, its matter's point and grid cell where it has one (issue #30), and
# the ids of the thumbnails the lists show (issue #29): the filing's first photo (intake's) and the
# task's first after photo. `tasks` keeps its columns (the previous release's cached `SELECT *`);
# the rest is joined, each by its key's index, for the page's rows alone (no read per row after).
TASKS_LISTED = ("SELECT tasks.*, ST_X(p.point::geometry) AS longitude, ST_Y(p.point::geometry) AS latitude,"
                " p.grid_cell, f.first_photo AS filed_photo,"
                " (SELECT a.attachment_id FROM attachments a WHERE a.task_id = tasks.task_id AND a.stage = 'after'"
                "  ORDER BY a.uploaded_at, a.seq LIMIT 1) AS after_photo"
                " FROM tasks LEFT JOIN matter_places p USING (request_id) LEFT JOIN matter_photos f USING (request_id)")


async def list_tasks(db: Db, towns: Sequence[str], search: TaskSearch, *, now: datetime,
                     limit: int) -> list[asyncpg.Record]:
    """The newest `limit` tasks `search` finds (GET /v1/tasks: no page, no total)."""
    where, args = task_search_where(towns, search, now)
    return await db.fetch(
        f"{TASKS_LISTED} WHERE {where} ORDER BY dispatched_at DESC LIMIT ${len(args) + 1}",
        *args, limit)


@dataclass(frozen=True)
class TaskSearch:
    """A task list's search and filters as the store reads them: flows builds it from TaskQuery
    (GET /v1/task-search), the route of GET /v1/tasks from its parameters."""

    q: str | None = None
    item: str | None = None
    village: str | None = None
    assignee: str | None = None
    module: str | None = None
    status: str | None = None
    colour: str | None = None
    phase: str | None = None
    overdue: bool | None = None
    reopened: bool | None = None
    request_id: uuid.UUID | None = None
    cell: str | None = None  # a grid cell's 15-digit code (issue #30)
    box: tuple[float, float, float, float] | None = None  # west, south, east, north (WGS 84)
    located: bool | None = None  # has a point (or not)


def task_search_where(towns: Sequence[str], search: TaskSearch, now: datetime) -> tuple[str, list[Any]]:
    """The WHERE clause of a task search and its arguments: every filter a bound parameter; the
    statuses of a phase and of `overdue` written out from the rules' constants, so the planner can
    match the partial and status indexes (migration 011)."""
    where: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.format(f"${len(args)}"))

    # One town as an equality: with `= ANY` of one element the town's index could not give the
    # order, so every task the town ever had was sorted for the page (13,000 tasks: 10 ms, 0.4 ms
    # as an equality; /v1/tasks p50 11 → 21 ms between one and twelve months held). Several towns
    # walk tasks_newest (migration 009) and stop at the page (60 towns' year: 148 → 0.5 ms).
    if len(towns) == 1:
        add("town_code = {}", towns[0])
    else:
        add("town_code = ANY({})", list(towns))
    if search.q:
        if ticket := rules.ticket_search(search.q, towns):
            text, beginning = ticket
            if beginning:
                add("ticket_no LIKE {}", rules.like_pattern(text) + "%")
            else:
                add("replace(ticket_no, '-', '') LIKE {}", "%" + text + "%")
        else:
            add("(location ILIKE {0} OR target ILIKE {0})", "%" + rules.like_pattern(search.q) + "%")
    for column, value in (("item_code", search.item), ("village", search.village), ("assignee", search.assignee),
                          ("lead_module", search.module), ("status", search.status), ("colour", search.colour),
                          ("request_id", search.request_id)):
        if value:
            add(f"{column} = {{}}", value)
    if search.phase:
        where.append(f"status IN ({_quoted(rules.PHASES[search.phase])})")
    if search.overdue is not None:
        args.append(now)
        clause = f"(status IN ({_OPEN}) AND resolve_by < ${len(args)})"
        where.append(clause if search.overdue else f"NOT {clause}")
    if search.reopened is not None:
        where.append("reopen_count > 0" if search.reopened else "reopen_count = 0")
    # Place (issue #30): as a matter's place, not columns of `tasks`, so the clause stays one of
    # `tasks` alone (the count and the plans' tests read it so) and the cell's or box's index answers.
    if search.cell:
        add("request_id IN (SELECT request_id FROM matter_places WHERE grid_cell = {})", search.cell)
    if search.box:
        add("request_id IN (SELECT request_id FROM matter_places"
            " WHERE point && ST_MakeEnvelope(({0}::float8[])[1], ({0}::float8[])[2], ({0}::float8[])[3], ({0}::float8[])[4], 4326)::geography)", list(search.box))
    if search.located is not None:
        where.append(("" if search.located else "NOT ") + "EXISTS (SELECT FROM matter_places p"
                     " WHERE p.request_id = tasks.request_id)")
    return " AND ".join(where), args


def _quoted(statuses: Iterable[str]) -> str:
    return ", ".join(f"'{status}'" for status in statuses)


async def search_tasks(db: Db, towns: Sequence[str], search: TaskSearch, *, now: datetime, offset: int,
                       limit: int) -> tuple[list[asyncpg.Record], int]:
    """One page of the tasks `search` finds, newest dispatched first (the task id breaks a tie, so
    pages neither repeat nor skip a task), and how many it finds in all."""
    where, args = task_search_where(towns, search, now)
    n = len(args)
    async with _acquired(db) as conn, conn.transaction(readonly=True):
        # Planned for these values each time: after five runs a prepared statement may switch to a
        # generic plan, which cannot tell one town's 13,000 tasks from the county's 780,000 nor a
        # filter that finds few from one that finds most (a county-year: 1 ms → 90 ms for the
        # reopened; tests/database/test_task_lists.py).
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = await conn.fetch(
            f"{TASKS_LISTED} WHERE {where} ORDER BY dispatched_at DESC, task_id DESC"
            f" OFFSET ${n + 1} LIMIT ${n + 2}", *args, offset, limit)
        total = await conn.fetchval(f"SELECT count(*) FROM tasks WHERE {where}", *args)  # noqa: S608 - as above
    return rows, int(total)


@asynccontextmanager
async def _acquired(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the pool (or the one given) for a few statements in one transaction."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def pending_extensions(db: Db, towns: Sequence[str], limit: int) -> list[asyncpg.Record]:
    """Extension requests waiting for the command centre, oldest first, with their tasks' facts."""
    return await db.fetch(
        "SELECT e.extension_id, e.task_id, e.town_code, e.days, e.reason, e.requested_by, e.requested_at,"
        " t.ticket_no, t.item_code, t.village, t.colour, t.assignee, t.status, t.resolve_by"
        " FROM extensions e JOIN tasks t ON t.task_id = e.task_id"
        " WHERE e.town_code = ANY($1) AND e.status = 'pending' ORDER BY e.requested_at LIMIT $2",
        list(towns), limit)


async def open_task_loads(db: Db, towns: Sequence[str]) -> dict[tuple[str, str], int]:
    """(town, staff id) -> open tasks held, from the partial index of open tasks by assignee."""
    rows = await db.fetch(
        f"SELECT town_code, assignee, count(*) AS n FROM tasks WHERE town_code = ANY($1) AND status IN ({_OPEN})"  # noqa: S608 - _OPEN is written out from the OPEN_STATUSES constant, no input
        " GROUP BY town_code, assignee", list(towns))
    return {(r["town_code"], r["assignee"]): r["n"] for r in rows}


async def off_post_now(db: Db, towns: Sequence[str], now: datetime) -> set[tuple[str, str]]:
    """(town, staff id) of everyone registered off post at `now`."""
    rows = await db.fetch("SELECT DISTINCT town_code, staff_id FROM off_post WHERE town_code = ANY($1)"
                          " AND from_at <= $2 AND to_at > $2", list(towns), now)
    return {(r["town_code"], r["staff_id"]) for r in rows}


@dataclass(frozen=True)
class PeriodRows:
    """What a rehearsal (rehearsal.py) reads of a town's period: the tasks of the matters that
    arrived in it (every task of each, a redispatch after its return), what happened to them, and
    the town's off-post registrations."""

    tasks: list[asyncpg.Record]
    supervisions: list[asyncpg.Record]
    extensions: list[asyncpg.Record]
    suspensions: list[asyncpg.Record]
    callbacks: list[asyncpg.Record]
    off_post: list[asyncpg.Record]
    cells: dict[Any, str] = field(default_factory=dict)  # request_id → grid cell, where dispatch knows it (#30)


async def period_rows(conn: asyncpg.Connection, town_code: str, start: datetime, end: datetime,
                      as_of: datetime) -> PeriodRows:
    """A town's period for a rehearsal, in one read-only transaction (one snapshot of it all): a
    rehearsal never writes."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        # A matter's first task is the one no redispatch made; it arrived when that was dispatched.
        tasks = await conn.fetch(
            "SELECT task_id, request_id, item_code, colour, village, post, assignee, assigned_via, dispatched_at,"
            " respond_by, resolve_by, accepted_at, completed_at, returned_at, merged_at, on_time, rework_count,"
            " reopen_count, redispatch_of FROM tasks WHERE town_code = $1 AND request_id IN ("
            "   SELECT request_id FROM tasks WHERE town_code = $1 AND redispatch_of IS NULL"
            "   AND dispatched_at >= $2 AND dispatched_at < $3)"
            " ORDER BY dispatched_at, task_id", town_code, start, end)
        ids = [t["task_id"] for t in tasks]
        return PeriodRows(
            tasks=tasks,
            supervisions=await conn.fetch("SELECT task_id, level FROM supervisions WHERE task_id = ANY($1)"
                                          " AND at <= $2", ids, as_of),
            extensions=await conn.fetch("SELECT task_id, days, decided_at FROM extensions WHERE task_id = ANY($1)"
                                        " AND status = 'approved' AND decided_at <= $2 ORDER BY decided_at", ids, as_of),
            suspensions=await conn.fetch(
                "SELECT task_id, decided_at, resumed_at FROM suspensions WHERE task_id = ANY($1)"
                " AND status IN ('suspended', 'resumed') AND decided_at <= $2 ORDER BY decided_at", ids, as_of),
            callbacks=await conn.fetch(
                "SELECT DISTINCT ON (task_id) task_id, rating FROM callbacks WHERE task_id = ANY($1) AND reached"
                " AND at <= $2 ORDER BY task_id, at DESC", ids, as_of),
            off_post=await conn.fetch("SELECT staff_id, from_at, to_at FROM off_post WHERE town_code = $1"
                                      " AND to_at > $2 AND from_at < $3", town_code, start, as_of),
            cells={r["request_id"]: r["grid_cell"] for r in await conn.fetch(
                "SELECT request_id, grid_cell FROM matter_places WHERE request_id = ANY($1) AND grid_cell IS NOT NULL",
                list({t["request_id"] for t in tasks}))})


async def board_counts(db: Db, towns: Sequence[str]) -> list[asyncpg.Record]:
    return await db.fetch("SELECT colour, status, count(*) AS n FROM tasks WHERE town_code = ANY($1)"
                          " GROUP BY colour, status", list(towns))


async def overdue_tasks(db: Db, towns: Sequence[str], now: datetime) -> list[asyncpg.Record]:
    return await db.fetch(
        f"{TASKS_LISTED} WHERE town_code = ANY($3) AND status = ANY($1) AND resolve_by < $2 ORDER BY resolve_by",
        list(OPEN_STATUSES), now, list(towns))


async def escalated_tasks(db: Db, towns: Sequence[str]) -> list[asyncpg.Record]:
    return await db.fetch(
        f"{TASKS_LISTED} JOIN supervisions s ON s.task_id = tasks.task_id AND s.level = 'escalated'"
        " WHERE tasks.town_code = ANY($2) AND tasks.status = ANY($1) ORDER BY s.at", list(OPEN_STATUSES), list(towns))


async def returned_queue(db: Db, towns: Sequence[str]) -> list[asyncpg.Record]:
    return await db.fetch(f"{TASKS_LISTED} WHERE town_code = ANY($1) AND status = 'returned'"
                          " ORDER BY returned_at", list(towns))


async def claim_due_supervisions(conn: asyncpg.Connection, towns: Sequence[str], now: datetime,
                                 limit: int) -> list[asyncpg.Record]:
    """Up to `limit` open tasks of the served `towns` with a supervision level due by `now`,
    earliest due first, locked for this transaction. SKIP LOCKED: another replica's pass takes the
    next ones instead of waiting for these. Only served towns: a town gone from the county's files
    would otherwise keep the oldest due rows and fill every batch with rows that cannot be worked."""
    return await conn.fetch(
        "SELECT t.task_id, t.town_code, t.request_id, t.assignee, t.post, t.window_start, t.resolve_by,"  # noqa: S608 - _OPEN is written out from the OPEN_STATUSES constant, no input
        " ARRAY(SELECT s.level FROM supervisions s WHERE s.task_id = t.task_id) AS sent"
        f" FROM tasks t WHERE t.status IN ({_OPEN}) AND t.next_supervision_at <= $1 AND t.town_code = ANY($3)"
        " ORDER BY t.next_supervision_at LIMIT $2 FOR UPDATE OF t SKIP LOCKED",
        now, limit, list(towns))


async def add_supervisions(conn: asyncpg.Connection,
                           levels: Sequence[tuple[uuid.UUID, str, str, list[str]]],
                           at: datetime) -> set[tuple[uuid.UUID, str]]:
    """Record (task, town, level, notified) rows in one statement; returns those that were new.
    The key (task_id, level) is the last guard against publishing a level twice."""
    rows = await conn.fetch(
        "INSERT INTO supervisions (task_id, town_code, level, at, notified)"
        " SELECT u.task_id, u.town_code, u.level, $5, ARRAY(SELECT jsonb_array_elements_text(u.notified::jsonb))"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(task_id, town_code, level, notified)"
        " ON CONFLICT DO NOTHING RETURNING task_id, level",
        # Lists of unequal length are no PostgreSQL array: each goes as a JSON text.
        [t for t, _, _, _ in levels], [town for _, town, _, _ in levels], [lv for _, _, lv, _ in levels],
        [json.dumps(n) for _, _, _, n in levels], at)
    return {(r["task_id"], r["level"]) for r in rows}


async def set_next_supervisions(conn: asyncpg.Connection, nexts: Sequence[tuple[uuid.UUID, datetime | None]]) -> None:
    await conn.execute(
        "UPDATE tasks t SET next_supervision_at = u.next_at"
        " FROM unnest($1::uuid[], $2::timestamptz[]) AS u(task_id, next_at) WHERE t.task_id = u.task_id",
        [t for t, _ in nexts], [n for _, n in nexts])


async def supervisions_sent(conn: asyncpg.Connection, task_id: uuid.UUID) -> set[str]:
    return {r["level"] for r in await conn.fetch("SELECT level FROM supervisions WHERE task_id = $1", task_id)}


async def forget_supervisions(conn: asyncpg.Connection, task_id: uuid.UUID) -> None:
    """A rework starts a new window: its supervision ladder starts again."""
    await conn.execute("DELETE FROM supervisions WHERE task_id = $1", task_id)


async def supervision_levels(db: Db, task_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT level, at, notified FROM supervisions WHERE task_id = $1 ORDER BY at",
                          task_id)


async def _add_request(conn: asyncpg.Connection, insert: str, *values: Any) -> uuid.UUID | None:
    """A holder's request of a task (an extension, a suspension) under a new id: `insert` takes the
    id first, then `values`; None when the table's unique index already holds one for the task."""
    request_id = uuid.uuid4()
    inserted = await conn.fetchval(insert, request_id, *values)
    return request_id if inserted else None


async def add_extension(conn: asyncpg.Connection, town_code: str, task_id: uuid.UUID, days: int,
                        reason: str, by: str, at: datetime) -> uuid.UUID | None:
    """None when a request is already pending for the task."""
    return await _add_request(
        conn, "INSERT INTO extensions (extension_id, town_code, task_id, days, reason, requested_by, requested_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
        town_code, task_id, days, reason, by, at)


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


async def add_off_post(conn: asyncpg.Connection, town_code: str, staff_id: str, from_at: datetime,
                       to_at: datetime, reason: str, by: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO off_post (town_code, staff_id, from_at, to_at, reason, registered_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id", town_code, staff_id, from_at, to_at, reason, by))


async def open_counts_by_colour(db: Db, now: datetime) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT town_code, colour, count(*) AS open, count(*) FILTER (WHERE resolve_by < $2) AS overdue"
        " FROM tasks WHERE status = ANY($1) GROUP BY town_code, colour", list(OPEN_STATUSES), now)


async def supervision_counts(db: Db) -> list[asyncpg.Record]:
    return await db.fetch("SELECT town_code, level, count(*) AS n FROM supervisions GROUP BY town_code, level")


async def save_merge_state(conn: asyncpg.Connection, town_code: str, request_id: uuid.UUID,
                           into_request_id: uuid.UUID, merged: bool, at: datetime, event_id: uuid.UUID) -> None:
    """The matter's latest merge state (merge and undo come in order: one topic, one key)."""
    await conn.execute(
        "INSERT INTO request_merges (request_id, town_code, into_request_id, merged, at, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO UPDATE SET"
        " into_request_id = EXCLUDED.into_request_id, merged = EXCLUDED.merged, at = EXCLUDED.at,"
        " event_id = EXCLUDED.event_id", request_id, town_code, into_request_id, merged, at, event_id)


async def merge_state(conn: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM request_merges WHERE request_id = $1", request_id)


async def current_task_for_update(conn: asyncpg.Connection, town_code: str,
                                  request_id: uuid.UUID) -> asyncpg.Record | None:
    """The matter's task that carries it now: the latest not handed on by a redispatch, locked."""
    return await conn.fetchrow(
        "SELECT * FROM tasks WHERE town_code = $1 AND request_id = $2 AND status <> 'redispatched'"
        " ORDER BY dispatched_at DESC LIMIT 1 FOR UPDATE", town_code, request_id)


async def add_callback(conn: asyncpg.Connection, town_code: str, task_id: uuid.UUID, reached: bool,
                       rating: str | None, note: str, by: str, at: datetime, reopened: bool) -> None:
    await conn.execute(
        "INSERT INTO callbacks (town_code, task_id, reached, rating, note, by, at, reopened)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", town_code, task_id, reached, rating, note, by, at, reopened)


async def callbacks_of(db: Db, task_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT reached, rating, note, by, at, reopened FROM callbacks WHERE task_id = $1"
                          " ORDER BY at", task_id)


async def save_reply(conn: asyncpg.Connection, town_code: str, task_id: uuid.UUID, reply: str, at: datetime) -> None:
    """The answer to the citizen given with the task's completion; a later completion replaces it."""
    await conn.execute(
        "INSERT INTO task_replies (task_id, town_code, reply, at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (task_id) DO UPDATE SET reply = EXCLUDED.reply, at = EXCLUDED.at",
        task_id, town_code, reply, at)


async def reply_of(db: Db, task_id: uuid.UUID) -> str | None:
    value = await db.fetchval("SELECT reply FROM task_replies WHERE task_id = $1", task_id)
    return str(value) if value is not None else None


async def grid_cell_of(db: Db, request_id: uuid.UUID) -> str | None:
    """The grid cell of a matter's point (issue #30: one task's read); None without a point or cell."""
    value = await db.fetchval("SELECT grid_cell FROM matter_places WHERE request_id = $1", request_id)
    return str(value) if value is not None else None

# --- 挂起: suspensions (migration 011) ------------------------------------------------------------
async def add_suspension(conn: asyncpg.Connection, town_code: str, task_id: uuid.UUID, category: str,
                         reason: str, by: str, at: datetime) -> uuid.UUID | None:
    """None when a request of the task is already pending or in force."""
    return await _add_request(
        conn, "INSERT INTO suspensions (suspension_id, town_code, task_id, category, reason, requested_by, requested_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
        town_code, task_id, category, reason, by, at)


async def open_suspension(conn: asyncpg.Connection, task_id: uuid.UUID, status: str) -> asyncpg.Record | None:
    """The task's suspension that is `status` (pending, or suspended: in force), locked."""
    return await conn.fetchrow(
        "SELECT * FROM suspensions WHERE task_id = $1 AND status = $2 FOR UPDATE", task_id, status)


async def update_suspension(conn: asyncpg.Connection, suspension_id: uuid.UUID, **fields: Any) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE suspensions SET {sets} WHERE suspension_id = $1",  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter
                       suspension_id, *fields.values())


async def suspensions_of(db: Db, task_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM suspensions WHERE task_id = $1 ORDER BY requested_at", task_id)


async def pending_suspensions(db: Db, towns: Sequence[str], limit: int) -> list[asyncpg.Record]:
    """The towns' pending requests, oldest first, with what the command centre decides on."""
    return await db.fetch(
        "SELECT s.suspension_id, s.town_code, s.task_id, s.category, s.reason, s.requested_by, s.requested_at,"
        " t.ticket_no, t.colour, t.assignee, t.status AS task_status, t.resolve_by"
        " FROM suspensions s JOIN tasks t ON t.task_id = s.task_id"
        " WHERE s.town_code = ANY($1) AND s.status = 'pending' ORDER BY s.requested_at LIMIT $2",
        list(towns), limit)


# --- photos of a task (issue #29) ----------------------------------------------------------------
async def add_attachments(conn: asyncpg.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """A step's photo rows in one statement (times and ids as PostgreSQL reads them back)."""
    if rows:
        await conn.execute(
            "INSERT INTO attachments SELECT * FROM jsonb_populate_recordset(NULL::attachments, $1::text::jsonb)",
            json.dumps(list(rows), default=str, ensure_ascii=False))


async def known_attachments(conn: asyncpg.Connection, attachment_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch("SELECT attachment_id FROM attachments WHERE attachment_id = ANY($1::uuid[])",
                            list(attachment_ids))
    return {row["attachment_id"] for row in rows}


async def attachments_of(db: Db, task_id: uuid.UUID) -> list[asyncpg.Record]:
    """A task's photos, by reference (never their position or keys), in the order they were taken."""
    return await db.fetch(
        "SELECT attachment_id, stage, seq, content_type, bytes, sha256, width, height, uploaded_by, uploaded_at"
        " FROM attachments WHERE task_id = $1 ORDER BY uploaded_at, seq", task_id)


async def attachment_of(db: Db, task_id: uuid.UUID, attachment_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT attachment_id, content_type, stored_key, thumbnail_key FROM attachments"
        " WHERE task_id = $1 AND attachment_id = $2", task_id, attachment_id)


# --- the unit of work ---------------------------------------------------------------------------
Row: TypeAlias = Mapping[str, Any]  # a stored row by column name (asyncpg's Record, a dict in the fakes)


class TaskStore(Protocol):
    """The store's operations a command handler uses inside its one transaction; the real one
    (PgTaskStore) and the unit tests' fake (tests/fakes.py) have this shape."""

    async def record_matter(self, town_code: str, data: RequestFiledData, event_id: uuid.UUID,
                            received_at: datetime) -> None: ...
    async def unavailable_staff(self, town_code: str, caps: dict[str, int], now: datetime) -> set[str]: ...
    async def insert_task(self, row: dict[str, Any]) -> None: ...
    async def task(self, task_id: uuid.UUID) -> Row | None: ...
    async def task_for_update(self, task_id: uuid.UUID) -> Row | None: ...
    async def tasks_for_update(self, town_code: str, task_ids: Iterable[uuid.UUID]) -> list[Row]: ...
    async def current_task_for_update(self, town_code: str, request_id: uuid.UUID) -> Row | None: ...
    async def update_task(self, task_id: uuid.UUID, **fields: Any) -> None: ...
    async def claim_due_supervisions(self, towns: Sequence[str], now: datetime, limit: int) -> list[Row]: ...
    async def add_supervisions(self, levels: Sequence[tuple[uuid.UUID, str, str, list[str]]],
                               at: datetime) -> set[tuple[uuid.UUID, str]]: ...
    async def set_next_supervisions(self, nexts: Sequence[tuple[uuid.UUID, datetime | None]]) -> None: ...
    async def supervisions_sent(self, task_id: uuid.UUID) -> set[str]: ...
    async def forget_supervisions(self, task_id: uuid.UUID) -> None: ...
    async def add_extension(self, town_code: str, task_id: uuid.UUID, days: int, reason: str, by: str,
                            at: datetime) -> uuid.UUID | None: ...
    async def pending_extension(self, task_id: uuid.UUID) -> Row | None: ...
    async def decide_extension(self, extension_id: uuid.UUID, status: str, by: str, at: datetime,
                               note: str | None) -> None: ...
    async def add_off_post(self, town_code: str, staff_id: str, from_at: datetime, to_at: datetime,
                           reason: str, by: str) -> int: ...
    async def save_merge_state(self, town_code: str, request_id: uuid.UUID, into_request_id: uuid.UUID,
                               merged: bool, at: datetime, event_id: uuid.UUID) -> None: ...
    async def merge_state(self, request_id: uuid.UUID) -> Row | None: ...
    async def add_callback(self, town_code: str, task_id: uuid.UUID, reached: bool, rating: str | None,
                           note: str, by: str, at: datetime, reopened: bool) -> None: ...
    async def save_reply(self, town_code: str, task_id: uuid.UUID, reply: str, at: datetime) -> None: ...
    async def add_suspension(self, town_code: str, task_id: uuid.UUID, category: str, reason: str, by: str,
                             at: datetime) -> uuid.UUID | None: ...
    async def open_suspension(self, task_id: uuid.UUID, status: str) -> Row | None: ...
    async def update_suspension(self, suspension_id: uuid.UUID, **fields: Any) -> None: ...
    async def add_attachments(self, rows: Sequence[Mapping[str, Any]]) -> None: ...
    async def known_attachments(self, attachment_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]: ...


class UnitOfWork(Protocol):
    """One transaction: the store's operations, and `publish` to the outbox (sent once it commits)."""

    store: TaskStore

    async def publish(self, *events: Envelope) -> None: ...


UnitOfWorkFactory: TypeAlias = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


class PgTaskStore:
    """TaskStore on one connection inside its transaction: the functions above, bound to it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def record_matter(self, town_code: str, data: RequestFiledData, event_id: uuid.UUID,
                            received_at: datetime) -> None:
        await record_matter(self.conn, town_code, data, event_id, received_at)

    async def unavailable_staff(self, town_code: str, caps: dict[str, int], now: datetime) -> set[str]:
        return await unavailable_staff(self.conn, town_code, caps, now)

    async def insert_task(self, row: dict[str, Any]) -> None:
        await insert_task(self.conn, row)

    async def task(self, task_id: uuid.UUID) -> Row | None:
        return await task(self.conn, task_id)

    async def task_for_update(self, task_id: uuid.UUID) -> Row | None:
        return await task_for_update(self.conn, task_id)

    async def tasks_for_update(self, town_code: str, task_ids: Iterable[uuid.UUID]) -> list[Row]:
        return await tasks_for_update(self.conn, town_code, task_ids)

    async def current_task_for_update(self, town_code: str, request_id: uuid.UUID) -> Row | None:
        return await current_task_for_update(self.conn, town_code, request_id)

    async def update_task(self, task_id: uuid.UUID, **fields: Any) -> None:
        await update_task(self.conn, task_id, **fields)

    async def claim_due_supervisions(self, towns: Sequence[str], now: datetime, limit: int) -> list[Row]:
        return await claim_due_supervisions(self.conn, towns, now, limit)

    async def add_supervisions(self, levels: Sequence[tuple[uuid.UUID, str, str, list[str]]],
                               at: datetime) -> set[tuple[uuid.UUID, str]]:
        return await add_supervisions(self.conn, levels, at)

    async def set_next_supervisions(self, nexts: Sequence[tuple[uuid.UUID, datetime | None]]) -> None:
        await set_next_supervisions(self.conn, nexts)

    async def supervisions_sent(self, task_id: uuid.UUID) -> set[str]:
        return await supervisions_sent(self.conn, task_id)

    async def forget_supervisions(self, task_id: uuid.UUID) -> None:
        await forget_supervisions(self.conn, task_id)

    async def add_extension(self, town_code: str, task_id: uuid.UUID, days: int, reason: str, by: str,
                            at: datetime) -> uuid.UUID | None:
        return await add_extension(self.conn, town_code, task_id, days, reason, by, at)

    async def pending_extension(self, task_id: uuid.UUID) -> Row | None:
        return await pending_extension(self.conn, task_id)

    async def decide_extension(self, extension_id: uuid.UUID, status: str, by: str, at: datetime,
                               note: str | None) -> None:
        await decide_extension(self.conn, extension_id, status, by, at, note)

    async def add_off_post(self, town_code: str, staff_id: str, from_at: datetime, to_at: datetime,
                           reason: str, by: str) -> int:
        return await add_off_post(self.conn, town_code, staff_id, from_at, to_at, reason, by)

    async def save_merge_state(self, town_code: str, request_id: uuid.UUID, into_request_id: uuid.UUID,
                               merged: bool, at: datetime, event_id: uuid.UUID) -> None:
        await save_merge_state(self.conn, town_code, request_id, into_request_id, merged, at, event_id)

    async def merge_state(self, request_id: uuid.UUID) -> Row | None:
        return await merge_state(self.conn, request_id)

    async def add_callback(self, town_code: str, task_id: uuid.UUID, reached: bool, rating: str | None,
                           note: str, by: str, at: datetime, reopened: bool) -> None:
        await add_callback(self.conn, town_code, task_id, reached, rating, note, by, at, reopened)

    async def save_reply(self, town_code: str, task_id: uuid.UUID, reply: str, at: datetime) -> None:
        await save_reply(self.conn, town_code, task_id, reply, at)
    async def add_suspension(self, town_code: str, task_id: uuid.UUID, category: str, reason: str, by: str,
                             at: datetime) -> uuid.UUID | None:
        return await add_suspension(self.conn, town_code, task_id, category, reason, by, at)

    async def open_suspension(self, task_id: uuid.UUID, status: str) -> Row | None:
        return await open_suspension(self.conn, task_id, status)

    async def update_suspension(self, suspension_id: uuid.UUID, **fields: Any) -> None:
        await update_suspension(self.conn, suspension_id, **fields)

    async def add_attachments(self, rows: Sequence[Mapping[str, Any]]) -> None:
        await add_attachments(self.conn, rows)

    async def known_attachments(self, attachment_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return await known_attachments(self.conn, attachment_ids)


class PgUnitOfWork:
    """The unit of work on a connection whose transaction is open: a route's own (`unit_of_work`)
    or the consumer's, which holds the inbox insert and the handlers of a batch."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.store: TaskStore = PgTaskStore(conn)
        self._conn = conn

    async def publish(self, *events: Envelope) -> None:
        await enqueue(self._conn, *events)


def units_of_work(database: Database) -> UnitOfWorkFactory:
    """The factory of the real unit of work: each call opens one transaction on a pooled connection."""
    return database.units_of_work(PgUnitOfWork)
