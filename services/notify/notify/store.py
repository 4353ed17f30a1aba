"""Every SQL statement of notify, named, over asyncpg. `Store` is what the flows see (the unit
tests hand them a fake one); the sender loop and the log's reads use `PgStore` directly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import asyncpg

from .digest import KnownCase, OpenItems
from .rules import Delivery, KnownTask


@dataclass
class Failed:
    """A channel's deliveries that wait again after its wake-up (the failed one and those behind
    it), recorded as its lease is given back (PgStore.release_channel)."""

    ids: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # each one's seconds to wait
    error: str = ""                                     # why they wait


class Store(Protocol):
    async def remember_task(self, town_code: str, task: KnownTask) -> None: ...

    async def known_task(self, task_id: str) -> KnownTask | None: ...

    async def set_task_state(self, task_id: str, state: str | None, resolve_by: datetime | None = None,
                             respond_by: datetime | None = None) -> None: ...

    async def remember_case(self, town_code: str, case: KnownCase) -> None: ...

    async def close_case(self, case_id: str) -> None: ...

    async def add_deliveries(self, event_id: uuid.UUID, event_type: str, town_code: str,
                             deliveries: Sequence[Delivery]) -> None: ...


class PgStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def remember_task(self, town_code: str, task: KnownTask) -> None:
        await self.conn.execute(
            "INSERT INTO known_tasks (task_id, town_code, assignee, post, item_code, village, location, state,"
            " respond_by, resolve_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (task_id) DO UPDATE SET assignee = EXCLUDED.assignee, post = EXCLUDED.post,"
            " state = EXCLUDED.state, respond_by = EXCLUDED.respond_by, resolve_by = EXCLUDED.resolve_by",
            task.task_id, town_code, task.assignee, task.post, task.item_code, task.village, task.location,
            task.state, task.respond_by, task.resolve_by)

    async def known_task(self, task_id: str) -> KnownTask | None:
        row = await self.conn.fetchrow(
            "SELECT task_id, assignee, post, item_code, village, location, state, respond_by, resolve_by"
            " FROM known_tasks WHERE task_id = $1", task_id)
        return KnownTask(**dict(row)) if row else None

    async def set_task_state(self, task_id: str, state: str | None, resolve_by: datetime | None = None,
                             respond_by: datetime | None = None) -> None:
        """What a later event of the task changed (None: unchanged); a task notify never saw: nothing."""
        await self.conn.execute(
            "UPDATE known_tasks SET state = coalesce($2, state), resolve_by = coalesce($3, resolve_by),"
            " respond_by = coalesce($4, respond_by) WHERE task_id = $1", task_id, state, resolve_by, respond_by)

    async def remember_case(self, town_code: str, case: KnownCase) -> None:
        """A flagged case (its later flag, or an extension, may move its limit); a decided one stays closed."""
        await self.conn.execute(
            "INSERT INTO known_cases (case_id, town_code, item_code, target, officers, decision_due)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO UPDATE SET officers = EXCLUDED.officers,"
            " decision_due = EXCLUDED.decision_due", case.case_id, town_code, case.item_code, case.target,
            list(case.officers), case.decision_due)

    async def close_case(self, case_id: str) -> None:
        await self.conn.execute("UPDATE known_cases SET open = false WHERE case_id = $1", case_id)

    # --- the daily digest -----------------------------------------------------------------------
    async def undigested_people(self, town_code: str, day: date) -> list[str]:
        """Who has a task or case open in the town and no digest of `day` yet."""
        rows = await self.conn.fetch(
            "WITH open_people AS (SELECT assignee AS person FROM known_tasks"
            "  WHERE town_code = $1 AND state IN ('dispatched', 'accepted', 'rework')"
            " UNION SELECT unnest(officers) FROM known_cases WHERE town_code = $1 AND open)"
            " SELECT person FROM open_people WHERE NOT EXISTS"
            " (SELECT 1 FROM digests d WHERE d.town_code = $1 AND d.recipient = person AND d.day = $2)",
            town_code, day)
        return [r["person"] for r in rows]

    async def open_items(self, town_code: str, people: Sequence[str]) -> OpenItems:
        """The open tasks and cases of `people` in the town."""
        tasks = await self.conn.fetch(
            "SELECT task_id, assignee, post, item_code, village, location, state, respond_by, resolve_by"
            " FROM known_tasks WHERE town_code = $1 AND state IN ('dispatched', 'accepted', 'rework')"
            " AND assignee = ANY($2::text[])", town_code, list(people))
        cases = await self.conn.fetch(
            "SELECT case_id, item_code, target, officers, decision_due FROM known_cases"
            " WHERE town_code = $1 AND open AND officers && $2::text[]", town_code, list(people))
        return OpenItems([KnownTask(**dict(r)) for r in tasks],
                         [KnownCase(r["case_id"], r["item_code"], r["target"], tuple(r["officers"]), r["decision_due"])
                          for r in cases])

    async def claim_digests(self, town_code: str, day: date, people: Sequence[str]) -> list[str]:
        """Of `people`, those whose digest of `day` this transaction records: the key (town, person,
        day) lets one replica record each, whichever comes first."""
        rows = await self.conn.fetch(
            "INSERT INTO digests (town_code, recipient, day) SELECT $1, unnest($3::text[]), $2"
            " ON CONFLICT DO NOTHING RETURNING recipient", town_code, day, list(people))
        return [r["recipient"] for r in rows]

    async def add_deliveries(self, event_id: uuid.UUID, event_type: str, town_code: str,
                             deliveries: Sequence[Delivery]) -> None:
        """One statement; a delivery already recorded (the same event again) is left as it is."""
        if not deliveries:
            return
        await self.conn.execute(
            "INSERT INTO deliveries (event_id, event_type, town_code, recipient, channel, title, body)"
            " SELECT $1, $2, $3, d.recipient, d.channel, d.title, d.body"
            " FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS d(recipient, channel, title, body)"
            " ON CONFLICT (event_id, recipient, channel) DO NOTHING",
            event_id, event_type, town_code, [d.recipient for d in deliveries], [d.channel for d in deliveries],
            [d.title for d in deliveries], [d.text for d in deliveries])

    # --- the sender ---------------------------------------------------------------------------
    async def claim_channels(self, holder: str, lease_seconds: float, limit: int) -> list[str]:
        """The channels with deliveries due that no other replica holds, leased to `holder`: an
        INSERT … ON CONFLICT DO UPDATE … WHERE takes each lease row's lock, so of two replicas
        one gets a channel and the other sees it taken."""
        rows = await self.conn.fetch(
            "WITH due AS (SELECT DISTINCT channel FROM deliveries"
            "  WHERE status = 'pending' AND next_attempt_at <= now() LIMIT $3)"
            " INSERT INTO channel_leases AS lease (channel, holder, until)"
            " SELECT channel, $1, now() + make_interval(secs => $2) FROM due"
            " ON CONFLICT (channel) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until"
            " WHERE lease.until < now() OR lease.holder = EXCLUDED.holder"
            " RETURNING channel", holder, lease_seconds, limit)
        return [r["channel"] for r in rows]

    async def release_channel(self, channel: str, holder: str, failed: Failed | None = None) -> None:
        """The end of a channel's wake-up, in one statement: the failed deliveries waiting their
        delays with the reason kept, and the lease given back."""
        failed = failed or Failed()
        await self.conn.execute(
            "WITH failed AS (UPDATE deliveries AS d SET attempts = d.attempts + 1, last_error = $3,"
            "  next_attempt_at = now() + make_interval(secs => f.delay)"
            "  FROM unnest($1::bigint[], $2::float8[]) AS f(id, delay) WHERE d.id = f.id AND d.status = 'pending')"
            " DELETE FROM channel_leases WHERE channel = $4 AND holder = $5",
            failed.ids, failed.delays, failed.error[:1000] or None, channel, holder)

    async def due_while_held(self, channel: str, holder: str, lease_seconds: float,
                             limit: int) -> list[asyncpg.Record]:
        """The channel's deliveries due, oldest first, each with `in_window` (the messages its robot
        was sent in the last minute), if the lease is still ours: renewed then for a whole lease,
        so the channel's sends of this wake-up fit in it however long it waited for its turn. Not
        ours any more (run out, taken over): nothing. One statement."""
        return await self.conn.fetch(
            "WITH held AS (UPDATE channel_leases SET until = now() + make_interval(secs => $3)"
            "  WHERE channel = $1 AND holder = $2 AND until > now() RETURNING channel)"
            " SELECT d.id, d.title, d.body, d.attempts, d.town_code,"
            " (SELECT count(*) FROM robot_messages r WHERE r.channel = $1"
            "  AND r.sent_at > now() - interval '60 seconds') AS in_window"
            " FROM held JOIN deliveries d ON d.channel = held.channel"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= now() ORDER BY d.id LIMIT $4",
            channel, holder, lease_seconds, limit)

    async def record_sent(self, ids: Sequence[int], in_digest: bool, robot_channel: str | None) -> None:
        """One message the receiver took, recorded before the channel's next is sent (a replica
        killed mid-turn then sends again only the message in flight): its deliveries sent (one
        alone, or those a digest folds) and, to a robot, the message counted for its minute. One
        statement, by primary key: a round trip per message is what the narrower repeat costs."""
        await self.conn.execute(
            "WITH counted AS (INSERT INTO robot_messages (channel) SELECT $3::text WHERE $3::text IS NOT NULL)"
            " UPDATE deliveries SET status = 'sent', sent_at = now(), attempts = attempts + 1, in_digest = $2,"
            "  last_error = NULL WHERE id = ANY($1::bigint[]) AND status = 'pending'",
            list(ids), in_digest, robot_channel)

    async def waiting(self) -> dict[str, tuple[int, int, float]]:
        """(waiting, failing, the oldest one's age in seconds) by town with any waiting."""
        rows = await self.conn.fetch(
            "SELECT town_code, count(*) AS waiting, count(*) FILTER (WHERE attempts > 0) AS failing,"
            " extract(epoch FROM now() - min(created_at))::float8 AS oldest"
            " FROM deliveries WHERE status = 'pending' GROUP BY town_code")
        return {r["town_code"]: (r["waiting"], r["failing"], r["oldest"]) for r in rows}

    async def prune_robot_messages(self) -> None:
        await self.conn.execute("DELETE FROM robot_messages WHERE sent_at < now() - interval '10 minutes'")

    # --- the delivery log ---------------------------------------------------------------------
    async def deliveries(self, towns: Sequence[str], status: str | None, event_id: uuid.UUID | None,
                         recipient: str | None, limit: int, offset: int = 0) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            "SELECT id, event_id, event_type, town_code, recipient, channel, title, status, attempts, last_error,"
            " created_at, next_attempt_at, sent_at, in_digest FROM deliveries"
            " WHERE town_code = ANY($1::text[]) AND ($2::text IS NULL OR status = $2)"
            " AND ($3::uuid IS NULL OR event_id = $3) AND ($4::text IS NULL OR recipient = $4)"
            " ORDER BY id DESC LIMIT $5 OFFSET $6", list(towns), status, event_id, recipient, limit, offset)
