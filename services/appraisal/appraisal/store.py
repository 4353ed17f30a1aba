"""Every SQL statement of appraisal, as named functions over asyncpg."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

# A task fact as the rules read it: whether it stands (not redispatched away) and was answered in time.
_FACTS = """
SELECT t.*, m.rating, m.rated_event,
       EXISTS (SELECT 1 FROM task_facts n WHERE n.town_code = t.town_code AND n.redispatch_of = t.task_id
               AND n.dispatched_event IS NOT NULL) AS superseded,
       coalesce(t.accepted_at <= t.respond_by
                OR (t.accepted_at IS NULL AND t.first_completed_at <= t.respond_by), false) AS responded
FROM task_facts t LEFT JOIN matter_facts m ON m.town_code = t.town_code AND m.request_id = t.request_id
WHERE t.dispatched_event IS NOT NULL AND t.town_code = $1
"""


async def upsert_matter(conn: asyncpg.Connection, town_code: str, request_id: str, **fields: Any) -> None:
    columns = ["town_code", "request_id", *fields]
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in fields)
    await conn.execute(f"INSERT INTO matter_facts ({', '.join(columns)}) VALUES ({values})"  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter
                       f" ON CONFLICT (town_code, request_id) DO UPDATE SET {updates}", town_code, request_id,
                       *fields.values())


async def upsert_dispatched(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    columns = list(row)
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in ("town_code", "task_id"))
    await conn.execute(f"INSERT INTO task_facts ({', '.join(columns)}) VALUES ({values})"  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter
                       f" ON CONFLICT (town_code, task_id) DO UPDATE SET {updates}", *row.values())


async def ensure_task(conn: asyncpg.Connection, town_code: str, task_id: str, request_id: str) -> None:
    """Facts of a task may arrive before its dispatch (topics are consumed side by side)."""
    await conn.execute("INSERT INTO task_facts (town_code, task_id, request_id) VALUES ($1, $2, $3)"
                       " ON CONFLICT DO NOTHING", town_code, task_id, request_id)


async def mark_invalid_return(conn: asyncpg.Connection, town_code: str, task_id: str, request_id: str,
                              event_id: uuid.UUID) -> None:
    await ensure_task(conn, town_code, task_id, request_id)
    await conn.execute("UPDATE task_facts SET returned_invalid = true, invalid_return_event = $3"
                       " WHERE town_code = $1 AND task_id = $2", town_code, task_id, event_id)


async def record_accepted(conn: asyncpg.Connection, town_code: str, task_id: str, request_id: str, at: datetime,
                          event_id: uuid.UUID) -> None:
    await ensure_task(conn, town_code, task_id, request_id)
    await conn.execute("UPDATE task_facts SET accepted_at = least(coalesce(accepted_at, $3), $3),"
                       " accepted_event = coalesce(accepted_event, $4) WHERE town_code = $1 AND task_id = $2",
                       town_code, task_id, at, event_id)


async def record_completed(conn: asyncpg.Connection, town_code: str, task_id: str, request_id: str,
                           at: datetime, on_time: bool, event_id: uuid.UUID) -> None:
    await ensure_task(conn, town_code, task_id, request_id)
    await conn.execute(
        "UPDATE task_facts SET completions = completions + 1,"
        " first_completed_at = least(coalesce(first_completed_at, $3), $3),"
        " last_on_time = CASE WHEN last_completed_at IS NULL OR $3 >= last_completed_at THEN $4 ELSE last_on_time END,"
        " last_completed_at = greatest(coalesce(last_completed_at, $3), $3),"
        " completed_event = coalesce(completed_event, $5) WHERE town_code = $1 AND task_id = $2",
        town_code, task_id, at, on_time, event_id)


async def record_supervised(conn: asyncpg.Connection, town_code: str, task_id: str, request_id: str, level: str,
                            event_id: uuid.UUID) -> None:
    await ensure_task(conn, town_code, task_id, request_id)
    if level in ("overdue", "escalated"):
        await conn.execute(f"UPDATE task_facts SET {level}_event = coalesce({level}_event, $3)"  # noqa: S608 - level is one of the two literals checked above
                           " WHERE town_code = $1 AND task_id = $2", town_code, task_id, event_id)


async def record_extended(conn: asyncpg.Connection, town_code: str, task_id: str, request_id: str,
                          event_id: uuid.UUID) -> None:
    await ensure_task(conn, town_code, task_id, request_id)
    await conn.execute("UPDATE task_facts SET extensions = extensions + 1,"
                       " extended_event = coalesce(extended_event, $3) WHERE town_code = $1 AND task_id = $2",
                       town_code, task_id, event_id)


async def record_failed_check(conn: asyncpg.Connection, town_code: str, task_id: str, request_id: str,
                              event_id: uuid.UUID) -> None:
    await ensure_task(conn, town_code, task_id, request_id)
    await conn.execute("UPDATE task_facts SET failed_checks = failed_checks + 1,"
                       " rework_event = coalesce(rework_event, $3) WHERE town_code = $1 AND task_id = $2",
                       town_code, task_id, event_id)


async def record_inspection(conn: asyncpg.Connection, town_code: str, inspection_id: str, period: str,
                            officers: list[str], task_count: int, finished_at: datetime, event_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO inspection_facts (town_code, inspection_id, period, officers, task_count, finished_at, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        town_code, inspection_id, period, officers, task_count, finished_at, event_id)


async def standing_tasks_of_request(conn: asyncpg.Connection, town_code: str, request_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM task_facts t WHERE t.town_code = $1 AND t.request_id = $2 AND t.dispatched_event IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM task_facts n WHERE n.town_code = t.town_code AND n.redispatch_of = t.task_id"
        " AND n.dispatched_event IS NOT NULL)", town_code, request_id)


async def facts_of_period(db: Db, town_code: str, period: str) -> list[asyncpg.Record]:
    return await db.fetch(_FACTS + " AND t.period = $2", town_code, period)


async def inspections_of(db: Db, town_code: str, period: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM inspection_facts WHERE town_code = $1 AND period = $2", town_code, period)


async def periods(db: Db) -> list[asyncpg.Record]:
    """Every (town_code, period) that holds facts."""
    return await db.fetch("SELECT DISTINCT town_code, period FROM task_facts WHERE period IS NOT NULL"
                          " UNION SELECT DISTINCT town_code, period FROM inspection_facts ORDER BY 1, 2")


async def cache_scores(conn: asyncpg.Connection,
                       rows: Sequence[tuple[str, str, str, str, float | None, float, str | None]]) -> list[int | None]:
    """Remember subjects' latest figures, each (town_code, subject_type, subject_id, period,
    composite, points, module) once; return each one's rank among its cached peers of its town, in
    one statement (the counts read the snapshot before the upsert, so a subject does not count itself)."""
    if not rows:
        return []
    ahead = await conn.fetch(
        "WITH s AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[],"
        "  $7::text[]) WITH ORDINALITY AS s(town_code, subject_type, subject_id, period, composite, points, module, ord)),"
        " upsert AS (INSERT INTO score_cache (town_code, subject_type, subject_id, period, composite, points, module)"
        "  SELECT town_code, subject_type, subject_id, period, composite, points, module FROM s"
        "  ON CONFLICT (town_code, subject_type, subject_id, period)"
        "  DO UPDATE SET composite = EXCLUDED.composite, points = EXCLUDED.points)"
        " SELECT (SELECT count(*) FROM score_cache c WHERE c.town_code = s.town_code"
        "  AND c.subject_type = s.subject_type AND c.period = s.period AND c.composite > s.composite"
        "  AND c.subject_id <> s.subject_id) AS ahead"
        " FROM s ORDER BY s.ord",
        *(list(column) for column in zip(*rows, strict=True)))
    return [None if row[4] is None else 1 + int(a["ahead"]) for row, a in zip(rows, ahead, strict=True)]


async def raise_alert(conn: asyncpg.Connection, town_code: str, staff_id: str, period: str, level: str,
                      reasons: list[str], at: datetime, cause: uuid.UUID) -> bool:
    return bool(await conn.fetchval(
        "INSERT INTO alerts (town_code, staff_id, period, level, reasons, raised_at, cause_event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
        town_code, staff_id, period, level, reasons, at, cause))


async def alerts(db: Db, town_code: str, period: str | None, staff_id: str | None) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM alerts WHERE town_code = $1 AND ($2::text IS NULL OR period = $2)"
        " AND ($3::text IS NULL OR staff_id = $3) ORDER BY raised_at, staff_id, level", town_code, period, staff_id)


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


_COUNT_COLUMNS = ("dispatched", "responded", "resolved", "completed", "reworked", "extended", "rated",
                  "satisfied", "overdue", "escalated", "escalated_red")


async def fact_of_task(conn: asyncpg.Connection, town_code: str, task_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_FACTS + " AND t.task_id = $2", town_code, task_id)


async def set_contribution(conn: asyncpg.Connection, town_code: str, task_id: str, counts: dict[str, int],
                           points: float) -> None:
    sets = ", ".join(f"c_{c} = ${i}" for i, c in enumerate(_COUNT_COLUMNS, start=3))
    await conn.execute(f"UPDATE task_facts SET {sets}, c_points = ${len(_COUNT_COLUMNS) + 3}"  # noqa: S608 - columns from the _COUNT_COLUMNS constant; values bound
                       " WHERE town_code = $1 AND task_id = $2",
                       town_code, task_id, *(counts[c] for c in _COUNT_COLUMNS), points)


@dataclass(frozen=True)
class SubjectState:
    sums: dict[str, int]   # running totals of the subject's counts
    points: float
    peers: list[float]     # cached points of its peers (itself included, as last published)


async def subjects_state(conn: asyncpg.Connection,
                         keys: Sequence[tuple[str, str, str, str, str | None]]) -> list[SubjectState]:
    """In one round trip, for each (town_code, subject_type, subject_id, period, module): its running totals
    (the sums of its tasks' and inspections' contributions, kept by triggers) and its peers'
    cached points — a staff member's peers are the staff of the same module of the same town."""
    if not keys:
        return []
    rows = await conn.fetch(
        "SELECT t.*, (SELECT coalesce(array_agg(c.points), '{}') FROM score_cache c"
        "  WHERE c.town_code = s.town_code AND c.subject_type = s.subject_type AND c.period = s.period"
        "  AND (s.subject_type <> 'staff' OR c.module IS NOT DISTINCT FROM s.module)) AS peers"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
        "  WITH ORDINALITY AS s(town_code, subject_type, subject_id, period, module, ord)"
        " LEFT JOIN subject_totals t ON t.town_code = s.town_code AND t.subject_type = s.subject_type"
        "  AND t.subject_id = s.subject_id AND t.period = s.period ORDER BY s.ord",
        *(list(column) for column in zip(*keys, strict=True)))
    return [SubjectState({c: row[c] or 0 for c in _COUNT_COLUMNS}, round(float(row["points"] or 0), 4),
                         [float(p) for p in row["peers"]]) for row in rows]


async def add_inspection_points(conn: asyncpg.Connection,
                                rows: list[tuple[str, str, str, str | None, str | None, str, float]]) -> None:
    """Each (town_code, inspection_id, staff_id, module, seconded_unit, period, points)."""
    await conn.executemany(
        "INSERT INTO inspection_points (town_code, inspection_id, staff_id, module, seconded_unit, period, points)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING", rows)
