"""Every SQL statement of intake: `PgStore`, the operations of one transaction over asyncpg, and
`IntakeStore`, their shape, which the unit tests' fake store has too (mypy checks both)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Any, Protocol

import asyncpg

from townflow_shared.db import Database
from townflow_shared.events import Envelope
from townflow_shared.outbox import enqueue

from .rules import WrongCode

Row = Mapping[str, Any]  # an asyncpg.Record, or a dict in the unit tests' fake


def _as_json(rows: list[dict[str, Any]]) -> str:
    """Rows for one statement that writes them all (`jsonb_populate_recordset`), as JSON text: ids,
    times and dates as PostgreSQL reads them back into their columns.

    Why not `executemany`: it pipelines one Bind/Execute per row with a single Sync at the end, and
    a backend waiting for the rest of a pipeline is neither idle in transaction nor running a
    statement, so neither `idle_in_transaction_session_timeout` nor `statement_timeout` ends it.
    A replica paused mid-pipeline (SIGSTOP, a frozen VM) after `claim_tickets` kept the town's day
    row locked for as long as it stayed paused, and every other replica's filings waited on it
    (measured: an 8 s stop held the lock 8 s under a 2 s idle timeout; stopped between statements,
    the session was ended after 2 s). One statement per message narrows the window to a prepare
    (asyncpg's Parse/Describe/Flush of a statement new to the connection, the same wait: seen in
    `repeat_counts`), which the replicas' stuck-session reaper closes (db.END_STUCK_SESSIONS, 5 s);
    and it is one round trip instead of one per row."""
    return json.dumps(rows, default=str, ensure_ascii=False)


class IntakeStore(Protocol):
    """What intake's command and event handlers read and write, within one transaction."""

    async def claim_tickets(self, wanted: dict[tuple[str, date], int]) -> dict[tuple[str, date], int]: ...
    async def repeat_counts(self, town_codes: list[str], citizen_refs: list[str], item_codes: list[str], since: list[datetime]) -> list[int]: ...
    async def claim_idempotency_keys(self, keys: list[tuple[str, str, str, str]]) -> dict[tuple[str, str, str], Row]: ...
    async def save_idempotent_responses(self, answers: list[tuple[str, str, str, int, dict[str, Any]]]) -> None: ...
    async def insert_requests(self, rows: list[dict[str, Any]], first_step: str, details: list[dict[str, Any]], citizens: list[dict[str, Any]] | None = None, places: list[dict[str, Any]] | None = None) -> None: ...
    async def add_timeline(self, request_id: uuid.UUID, at: datetime, step: str, detail: dict[str, Any], event_id: uuid.UUID | None) -> None: ...
    async def step_and_status(self, town_code: str, request_id: uuid.UUID, at: datetime, step: str, detail: dict[str, Any], event_id: uuid.UUID | None) -> Row | None: ...
    async def link_task(self, task_id: str, request_id: uuid.UUID) -> list[Row]: ...
    async def requests_of_tasks(self, task_ids: list[str]) -> dict[str, str]: ...
    async def keep_early_inspection_step(self, task_id: str, at: datetime, detail: dict[str, Any], event_id: uuid.UUID) -> None: ...
    async def set_status(self, request_id: uuid.UUID, status: str, at: datetime, completed_at: datetime | None = None) -> None: ...
    async def wrong_codes_for_update(self, ticket_no: str) -> list[WrongCode]: ...
    async def save_wrong_code(self, ticket_no: str, wrong: WrongCode, since: datetime) -> None: ...
    async def request_by_ticket(self, ticket_no: str) -> Row | None: ...
    async def request_for_update(self, ticket_no: str) -> Row | None: ...
    async def timeline_of(self, request_id: uuid.UUID) -> list[Row]: ...
    async def save_rating(self, request_id: uuid.UUID, rating: str, rated_at: datetime) -> None: ...
    async def duplicate_candidates(self, request_ids: list[uuid.UUID], since: list[datetime], open_statuses: Sequence[str], per_kind: int, within_m: list[float]) -> list[Row]: ...
    async def merge_side_for_update(self, ticket_no: str) -> Row | None: ...
    async def set_merged_into(self, request_id: uuid.UUID, into: uuid.UUID | None, at: datetime | None) -> None: ...
    async def request_by_id(self, request_id: uuid.UUID) -> Row | None: ...
    async def save_answer(self, town_code: str, request_id: uuid.UUID, at: datetime, reply: str | None, module: str | None, promised_by: datetime | None) -> None: ...
    async def answer_of(self, request_id: uuid.UUID) -> Row | None: ...
    async def request_of_task(self, task_id: str) -> Row | None: ...
    async def task_holder_for_update(self, task_id: str) -> Row | None: ...
    async def save_task_holder(self, holder: dict[str, Any]) -> None: ...
    async def holders_of(self, request_id: uuid.UUID) -> list[Row]: ...
    async def record_personal_data_read(self, read: dict[str, Any]) -> None: ...
    async def personal_data_reads(self, town_codes: list[str], since: datetime | None, until: datetime | None, staff_id: str | None, limit: int, offset: int) -> list[Row]: ...
    async def sealed_citizen(self, request_id: uuid.UUID) -> Row | None: ...
    async def requests_to_reseal(self, key_id: str, after: uuid.UUID | None, limit: int, every: bool) -> list[Row]: ...
    async def save_resealed(self, citizens: list[dict[str, Any]]) -> None: ...
    async def personal_data_due(self, closed_before: datetime, limit: int) -> list[Row]: ...
    async def erase_personal_data(self, rows: list[dict[str, Any]], at: datetime) -> None: ...
    async def insert_attachments(self, rows: list[dict[str, Any]]) -> None: ...
    async def attachments_of(self, request_id: uuid.UUID) -> list[Row]: ...
    async def photo_of(self, request_id: uuid.UUID, attachment_id: uuid.UUID) -> Row | None:
        """A photo of the matter: filed here (its keys), or a task's after photo dispatch keeps (its
        `owner` is dispatch, no keys here); None for neither."""
    async def known_attachments(self, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]: ...
    async def record_task_photos(self, town_code: str, request_id: uuid.UUID, rows: list[dict[str, Any]]) -> None: ...
    async def task_photos_of(self, request_id: uuid.UUID) -> list[Row]: ...
    async def save_sms_choices(self, rows: list[dict[str, Any]]) -> None: ...
    async def enqueue_sms(self, rows: list[dict[str, Any]]) -> None: ...
    async def sms_of(self, request_id: uuid.UUID) -> list[Row]: ...
    async def sms_recipients(self, town_code: str, request_id: uuid.UUID) -> list[Row]:
        """The town's matter and those merged into it (重复件), each one whose citizen is texted
        (chose to be at filing: not opted out, nor filed before the choice existed): its id, ticket
        and colour; the matter's own first."""


class UnitOfWork(Protocol):
    """One transaction: the store's operations, and the outbox (`publish`), committed together."""

    @property
    def store(self) -> IntakeStore: ...

    async def publish(self, *events: Envelope, trace_headers: Sequence[dict[str, str]] | None = None) -> None:
        """Events to send once the transaction commits, each with its own trace context if given."""


UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


def _newer(value: str, at: str) -> str:
    """SET clauses of one part of an answer: the incoming value when it has one, newer than the kept."""
    newer = f"EXCLUDED.{at} IS NOT NULL AND (request_answers.{at} IS NULL OR request_answers.{at} <= EXCLUDED.{at})"
    return (f"{value} = CASE WHEN {newer} THEN EXCLUDED.{value} ELSE request_answers.{value} END,"
            f" {at} = CASE WHEN {newer} THEN EXCLUDED.{at} ELSE request_answers.{at} END")


# $1 request, $2 town, $3 reply, $4 module, $5 promised date, $6 the event's moment. A part not given
# (NULL) gets no moment, so it never wins over what is kept.
_SAVE_ANSWER = (
    "INSERT INTO request_answers (request_id, town_code, reply, replied_at, handling_module, handling_since,"  # noqa: S608 - column names are this module's own; every value is a bound parameter
    " promised_by, promised_at)"
    " SELECT request_id, town_code, $3::text, CASE WHEN $3::text IS NOT NULL THEN $6::timestamptz END,"
    " $4::text, CASE WHEN $4::text IS NOT NULL THEN $6::timestamptz END,"
    " $5::timestamptz, CASE WHEN $5::timestamptz IS NOT NULL THEN $6::timestamptz END"
    " FROM requests WHERE request_id = $1 AND town_code = $2"
    " ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(_newer(v, a) for v, a in (("reply", "replied_at"), ("handling_module", "handling_since"),
                                          ("promised_by", "promised_at"))))


class PgAnswers:
    """The citizen's answer of each matter (issue #27, request_answers): kept apart from PgStore's
    operations. Each part (the reply, the handling module, the promised date) carries the moment of
    the event that set it, and only a newer event replaces it: events of several topics arrive in
    any order."""

    conn: asyncpg.Connection

    async def save_answer(self, town_code: str, request_id: uuid.UUID, at: datetime, reply: str | None,
                          module: str | None, promised_by: datetime | None) -> None:
        """The parts an event gives (None: not given) of a town's matter's answer, in one statement;
        nothing for a matter that is not the town's (or not ours at all)."""
        await self.conn.execute(_SAVE_ANSWER, request_id, town_code, reply, module, promised_by, at)

    async def answer_of(self, request_id: uuid.UUID) -> Row | None:
        return await self.conn.fetchrow("SELECT * FROM request_answers WHERE request_id = $1", request_id)


class PgStore(PgAnswers):
    """The operations of `IntakeStore` on one connection, inside its caller's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim_tickets(self, wanted: dict[tuple[str, date], int]) -> dict[tuple[str, date], int]:
        """The next sequences of each (town, day): `count` of them; the last one is returned for each.
        Each town's day row stays locked until the filings commit, so its numbers have no gaps, across
        replicas too. The rows are locked in one order (town, day), so two batches that both file in
        two towns never wait for each other."""
        rows = await self.conn.fetch(
            "INSERT INTO ticket_sequences (town_code, day, last)"
            " SELECT * FROM unnest($1::text[], $2::date[], $3::int[]) AS w(town_code, day, last)"
            " ORDER BY town_code, day"
            " ON CONFLICT (town_code, day) DO UPDATE SET last = ticket_sequences.last + EXCLUDED.last"
            " RETURNING town_code, day, last",
            [town for town, _ in wanted], [day for _, day in wanted], list(wanted.values()))
        return {(row["town_code"], row["day"]): int(row["last"]) for row in rows}


    async def repeat_counts(self, town_codes: list[str], citizen_refs: list[str],
                            item_codes: list[str], since: list[datetime]) -> list[int]:
        """How often each citizen filed each item in each town since each `since`: the rule counts
        within a town.

        Called after `claim_tickets`, in a statement of its own: it then sees every filing committed
        while this one waited for the town's day row, by another replica too. (In the same statement it
        would read the snapshot taken before that wait and miss them.)"""
        return [int(n) for n in await self.conn.fetchval(
            "SELECT ARRAY(SELECT (SELECT count(*) FROM requests r WHERE r.citizen_ref = f.ref AND r.item_code = f.item"
            "                     AND r.filed_at >= f.since AND r.town_code = f.town)"
            "  FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY"
            "       AS f(town, ref, item, since, n) ORDER BY f.n)",
            town_codes, citizen_refs, item_codes, since)]


    async def claim_idempotency_keys(self, keys: list[tuple[str, str, str, str]]
                                     ) -> dict[tuple[str, str, str], Row]:
        """Claim (town, scope, key, fingerprint) entries; the stored rows of those claimed before.

        A concurrent claim of the same key waits on the primary key until the first commits; the
        stored rows are read by a second statement, so it sees that commit."""
        claimed = {(r["town_code"], r["scope"], r["key"]) for r in await self.conn.fetch(
            "INSERT INTO idempotency_keys (town_code, scope, key, fingerprint)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING"
            " RETURNING town_code, scope, key",
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys])}
        earlier = [k for k in keys if k[:3] not in claimed]
        if not earlier:
            return {}
        rows = await self.conn.fetch(
            "SELECT town_code, scope, key, fingerprint, status, response FROM idempotency_keys"
            " WHERE (town_code, scope, key) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
            [k[0] for k in earlier], [k[1] for k in earlier], [k[2] for k in earlier])
        return {(r["town_code"], r["scope"], r["key"]): r for r in rows}


    async def save_idempotent_responses(self, answers: list[tuple[str, str, str, int, dict[str, Any]]]) -> None:
        """(town, scope, key, status, response) of each claimed key, in one statement (see `_as_json`)."""
        await self.conn.execute(
            "UPDATE idempotency_keys k SET status = a.status, response = a.response"
            " FROM jsonb_to_recordset($1::text::jsonb) AS a(town_code text, scope text, key text, status int,"
            "                                             response jsonb)"
            " WHERE k.town_code = a.town_code AND k.scope = a.scope AND k.key = a.key",
            _as_json([{"town_code": town, "scope": scope, "key": key, "status": status, "response": response}
                      for town, scope, key, status, response in answers]))


    async def insert_requests(self, rows: list[dict[str, Any]], first_step: str,
                              details: list[dict[str, Any]], citizens: list[dict[str, Any]] | None = None,
                              places: list[dict[str, Any]] | None = None) -> None:
        """New requests, each with the first step of its timeline, its sealed citizen (a row of
        `request_citizens`, personal_data.py) and its place if it has a point (a row of
        `request_places`, its point as EWKT), in one statement (see `_as_json`)."""
        columns = ", ".join(rows[0])
        await self.conn.execute(
            f"WITH r AS (INSERT INTO requests ({columns})"  # noqa: S608 - column names are this module's own keywords; every value is a bound parameter
            f"  SELECT {columns} FROM jsonb_populate_recordset(NULL::requests, $1::text::jsonb)"
            "  RETURNING request_id, filed_at),"
            " c AS (INSERT INTO request_citizens"
            "  SELECT * FROM jsonb_populate_recordset(NULL::request_citizens, $4::text::jsonb)),"
            # After its request: the foreign key is checked at the statement's end, when both are in.
            " p AS (INSERT INTO request_places (request_id, town_code, item_code, filed_at, point, grid_cell)"
            "  SELECT request_id, town_code, item_code, filed_at, point, grid_cell"
            "  FROM jsonb_populate_recordset(NULL::request_places, $5::text::jsonb))"
            " INSERT INTO timeline (request_id, at, step, detail)"
            " SELECT r.request_id, r.filed_at, $2::text, d.detail"
            " FROM r JOIN jsonb_to_recordset($3::text::jsonb) AS d(request_id uuid, detail jsonb) USING (request_id)",
            _as_json(rows), first_step,
            _as_json([{"request_id": row["request_id"], "detail": detail}
                      for row, detail in zip(rows, details, strict=True)]), _as_json(citizens or []),
            _as_json(places or []))


    async def add_timeline(self, request_id: uuid.UUID, at: datetime, step: str,
                           detail: dict[str, Any], event_id: uuid.UUID | None) -> None:
        await self.conn.execute(
            "INSERT INTO timeline (request_id, at, step, detail, event_id) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (event_id, request_id) DO NOTHING",
            request_id, at, step, detail, event_id,
        )


    async def step_and_status(self, town_code: str, request_id: uuid.UUID, at: datetime,
                              step: str, detail: dict[str, Any], event_id: uuid.UUID | None) -> Row | None:
        """Add a step to a town's request's timeline and return its status, locked until commit: one
        round trip. None (and no step) when the request is not that town's, or not ours at all."""
        return await self.conn.fetchrow(
            "WITH current AS (SELECT status, status_at FROM requests WHERE request_id = $1 AND town_code = $6"
            "  FOR UPDATE),"
            " step AS (INSERT INTO timeline (request_id, at, step, detail, event_id)"
            "  SELECT $1, $2::timestamptz, $3::text, $4::jsonb, $5::uuid FROM current"
            "  ON CONFLICT (event_id, request_id) DO NOTHING)"
            " SELECT status, status_at FROM current",
            request_id, at, step, detail, event_id, town_code,
        )


    async def link_task(self, task_id: str, request_id: uuid.UUID) -> list[Row]:
        """Remember which request a task serves; return (and forget) inspection steps that arrived
        for it before its dispatch."""
        return await self.conn.fetch(
            "WITH link AS (INSERT INTO task_requests (task_id, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING)"
            " DELETE FROM early_inspection_steps WHERE task_id = $1 RETURNING at, detail, event_id",
            task_id, request_id,
        )


    async def requests_of_tasks(self, task_ids: list[str]) -> dict[str, str]:
        rows = await self.conn.fetch("SELECT task_id, request_id FROM task_requests WHERE task_id = ANY($1)", task_ids)
        return {row["task_id"]: str(row["request_id"]) for row in rows}


    async def keep_early_inspection_step(self, task_id: str, at: datetime,
                                         detail: dict[str, Any], event_id: uuid.UUID) -> None:
        await self.conn.execute("INSERT INTO early_inspection_steps (task_id, at, detail, event_id)"
                           " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", task_id, at, detail, event_id)


    async def set_status(self, request_id: uuid.UUID, status: str, at: datetime,
                         completed_at: datetime | None = None) -> None:
        await self.conn.execute(
            "UPDATE requests SET status = $2, status_at = $3, completed_at = COALESCE($4, completed_at)"
            " WHERE request_id = $1", request_id, status, at, completed_at)


    async def wrong_codes_for_update(self, ticket_no: str) -> list[WrongCode]:
        """The wrong codes given for a ticket. Its guard row is made if missing and stays locked
        until the caller's transaction ends, so concurrent guesses (the first ones too) are counted
        one after the other, across replicas."""
        row = await self.conn.fetchrow(
            "INSERT INTO access_code_guards AS g (ticket_no) VALUES ($1)"
            " ON CONFLICT (ticket_no) DO UPDATE SET ticket_no = g.ticket_no RETURNING failures, wrong_codes",
            ticket_no)
        assert row is not None  # noqa: S101 - an upsert returns its row
        return ([WrongCode(at, "") for at in row["failures"]]
                + [WrongCode(datetime.fromisoformat(w["at"]), w["address"]) for w in row["wrong_codes"]])


    async def save_wrong_code(self, ticket_no: str, wrong: WrongCode, since: datetime) -> None:
        """Add a wrong code; those older than `since` go (they count no more), and those the
        release before wrote without an address move over as one address's."""
        await self.conn.execute(
            "UPDATE access_code_guards SET failures = '{}', wrong_codes = ("
            " SELECT coalesce(jsonb_agg(w ORDER BY w->>'at'), '[]') FROM jsonb_array_elements(wrong_codes"
            " || coalesce((SELECT jsonb_agg(jsonb_build_object('at', f, 'address', '')) FROM unnest(failures) f), '[]')"
            " || jsonb_build_array(jsonb_build_object('at', $2::timestamptz, 'address', $3::text))) AS w"
            " WHERE (w->>'at')::timestamptz > $4) WHERE ticket_no = $1", ticket_no, wrong.at, wrong.address, since)


    async def request_by_ticket(self, ticket_no: str) -> Row | None:
        return await self.conn.fetchrow("SELECT * FROM requests WHERE ticket_no = $1", ticket_no)


    async def request_for_update(self, ticket_no: str) -> Row | None:
        return await self.conn.fetchrow("SELECT * FROM requests WHERE ticket_no = $1 FOR UPDATE", ticket_no)


    async def timeline_of(self, request_id: uuid.UUID) -> list[Row]:
        return await self.conn.fetch(
            "SELECT at, step, detail FROM timeline WHERE request_id = $1 ORDER BY at, seq", request_id)


    async def save_rating(self, request_id: uuid.UUID, rating: str,
                          rated_at: datetime) -> None:
        await self.conn.execute(
            "UPDATE requests SET rating = $2, rated_at = $3 WHERE request_id = $1",
            request_id, rating, rated_at,
        )


    async def duplicate_candidates(self, request_ids: list[uuid.UUID], since: list[datetime],
                                   open_statuses: Sequence[str], per_kind: int, within_m: list[float]) -> list[Row]:
        """For each new request (`n`, from 1, in the order given), the open, unmerged matters of its
        town filed since its `since` with its item in its village, with its target, or with its item
        within its `within_m` metres (both placed, issue #30), each with `distance_m` between the
        two points (NULL unless both have one): one round trip for a batch of filings. The filings
        of the same batch see each other.

        At most the `per_kind` newest of each kind: each is an index scan backwards from now that
        stops there, so a filing costs the same however many matters a busy item and village hold
        (issue #16: unbounded, a town's week of one item made every filing slower than the last).
        The nearby ones come off the GiST index of `point` (ST_DWithin on geography: metres)."""
        return await self.conn.fetch(
            "SELECT f.n, c.ticket_no, c.item_code, c.village, c.location, c.target, c.status, c.filed_at,"
            "  ST_Distance(cp.point, np.point) AS distance_m"
            " FROM unnest($1::uuid[], $2::timestamptz[], $5::float8[]) WITH ORDINALITY AS f(request_id, since, within_m, n)"
            " JOIN requests new ON new.request_id = f.request_id"
            " LEFT JOIN request_places np ON np.request_id = new.request_id"
            " CROSS JOIN LATERAL ("
            "  (SELECT r.request_id, r.ticket_no, r.item_code, r.village, r.location, r.target, r.status, r.filed_at"
            "   FROM requests r"
            "   WHERE r.town_code = new.town_code AND r.item_code = new.item_code AND r.village = new.village"
            "    AND r.filed_at >= f.since AND r.request_id <> new.request_id"
            "    AND r.status = ANY($3::text[]) AND r.merged_into IS NULL"
            "   ORDER BY r.filed_at DESC LIMIT $4)"
            "  UNION"
            "  (SELECT r.request_id, r.ticket_no, r.item_code, r.village, r.location, r.target, r.status, r.filed_at"
            "   FROM requests r"
            "   WHERE new.target IS NOT NULL AND r.town_code = new.town_code AND r.target = new.target"
            "    AND r.filed_at >= f.since AND r.request_id <> new.request_id"
            "    AND r.status = ANY($3::text[]) AND r.merged_into IS NULL"
            "   ORDER BY r.filed_at DESC LIMIT $4)"
            "  UNION"
            "  (SELECT r.request_id, r.ticket_no, r.item_code, r.village, r.location, r.target, r.status, r.filed_at"
            "   FROM request_places p JOIN requests r ON r.request_id = p.request_id"
            "   WHERE np.point IS NOT NULL AND ST_DWithin(p.point, np.point, f.within_m)"
            "    AND p.town_code = new.town_code AND p.item_code = new.item_code"
            "    AND p.filed_at >= f.since AND p.request_id <> new.request_id"
            "    AND r.status = ANY($3::text[]) AND r.merged_into IS NULL"
            "   ORDER BY p.filed_at DESC LIMIT $4)) AS c"
            " LEFT JOIN request_places cp ON cp.request_id = c.request_id"
            " ORDER BY f.n, c.filed_at DESC, c.ticket_no DESC",
            request_ids, since, list(open_statuses), per_kind, within_m)


    async def merge_side_for_update(self, ticket_no: str) -> Row | None:
        """A matter as a merge sees it, locked: its status, its primary's ticket (if merged) and how
        many matters follow it."""
        return await self.conn.fetchrow(
            "SELECT r.request_id, r.ticket_no, r.town_code, r.status, r.merged_into, r.trace_headers,"
            " (SELECT p.ticket_no FROM requests p WHERE p.request_id = r.merged_into) AS primary_ticket_no,"
            " (SELECT p.status FROM requests p WHERE p.request_id = r.merged_into) AS primary_status,"
            " (SELECT count(*) FROM requests f WHERE f.merged_into = r.request_id) AS followers"
            " FROM requests r WHERE r.ticket_no = $1 FOR UPDATE OF r", ticket_no)


    async def set_merged_into(self, request_id: uuid.UUID, into: uuid.UUID | None,
                              at: datetime | None) -> None:
        await self.conn.execute("UPDATE requests SET merged_into = $2, merged_at = $3 WHERE request_id = $1",
                           request_id, into, at)


    async def request_by_id(self, request_id: uuid.UUID) -> Row | None:
        return await self.conn.fetchrow("SELECT * FROM requests WHERE request_id = $1", request_id)


    # --- the matter in front of the handler (issue #27) --------------------------------------
    async def request_of_task(self, task_id: str) -> Row | None:
        """The request a task serves (linked when intake followed its dispatch)."""
        return await self.conn.fetchrow(
            "SELECT r.* FROM task_requests t JOIN requests r ON r.request_id = t.request_id WHERE t.task_id = $1",
            task_id)


    async def task_holder_for_update(self, task_id: str) -> Row | None:
        """A task as intake follows it, locked until commit (its events are handled one at a time)."""
        return await self.conn.fetchrow("SELECT * FROM task_holders WHERE task_id = $1 FOR UPDATE", task_id)


    async def save_task_holder(self, holder: dict[str, Any]) -> None:
        await self.conn.execute(
            "INSERT INTO task_holders (task_id, request_id, town_code, assignee, post, lead_module, status, status_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (task_id) DO UPDATE SET assignee = EXCLUDED.assignee, post = EXCLUDED.post,"
            " lead_module = EXCLUDED.lead_module, status = EXCLUDED.status, status_at = EXCLUDED.status_at",
            holder["task_id"], holder["request_id"], holder["town_code"], holder["assignee"], holder["post"],
            holder["lead_module"], holder["status"], holder["status_at"])


    async def holders_of(self, request_id: uuid.UUID) -> list[Row]:
        return await self.conn.fetch(
            "SELECT task_id, assignee, post, lead_module, status, status_at FROM task_holders"
            " WHERE request_id = $1 ORDER BY status_at", request_id)


    async def record_personal_data_read(self, read: dict[str, Any]) -> None:
        """Who read a matter's personal data, as what, when: never the data itself."""
        await self.conn.execute(
            "INSERT INTO personal_data_reads (town_code, read_at, staff_id, basis, request_id, ticket_no, task_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            read["town_code"], read["read_at"], read["staff_id"], read["basis"], read["request_id"],
            read["ticket_no"], read["task_id"])


    async def personal_data_reads(self, town_codes: list[str], since: datetime | None, until: datetime | None,
                                  staff_id: str | None, limit: int, offset: int) -> list[Row]:
        """The reads of personal data in the towns, newest first, within [since, until) and by one
        person if named: a page of `limit` after `offset`."""
        return await self.conn.fetch(
            "SELECT town_code, read_at, staff_id, basis, ticket_no, task_id FROM personal_data_reads"
            " WHERE town_code = ANY($1::text[])"
            "  AND ($2::timestamptz IS NULL OR read_at >= $2) AND ($3::timestamptz IS NULL OR read_at < $3)"
            "  AND ($4::text IS NULL OR staff_id = $4)"
            " ORDER BY read_at DESC, seq DESC LIMIT $5 OFFSET $6",
            town_codes, since, until, staff_id, limit, offset)


    # --- the citizen's personal data at rest (issue #28 item 7, personal_data.py) ---------------
    async def sealed_citizen(self, request_id: uuid.UUID) -> Row | None:
        """A matter's row of `request_citizens`; None for one the previous release filed in the clear."""
        return await self.conn.fetchrow("SELECT * FROM request_citizens WHERE request_id = $1", request_id)


    async def requests_to_reseal(self, key_id: str, after: uuid.UUID | None, limit: int,
                                 every: bool) -> list[Row]:
        """The next `limit` matters after `after` (by request id) whose citizen is in the clear or not
        sealed under `key_id` (`every`: every matter not erased, for a new lookup key), each with its
        sealed row's columns (`sealed` NULL: none), locked; rows another transaction holds are
        skipped, and found by the next pass."""
        return await self.conn.fetch(
            "SELECT r.request_id, r.town_code, r.citizen_name, r.citizen_phone, r.citizen_id_number,"
            " c.request_id AS sealed, c.name_enc, c.phone_enc, c.id_number_enc, c.key_id, c.erased_at"
            " FROM requests r LEFT JOIN request_citizens c ON c.request_id = r.request_id"
            " WHERE ($2::uuid IS NULL OR r.request_id > $2) AND c.erased_at IS NULL"
            "  AND (c.request_id IS NULL OR $4 OR c.key_id IS DISTINCT FROM $1)"
            " ORDER BY r.request_id LIMIT $3 FOR UPDATE OF r SKIP LOCKED", key_id, after, limit, every)


    async def save_resealed(self, citizens: list[dict[str, Any]]) -> None:
        """Each matter's `request_citizens` row as `Keyring.resealed` made it, and its plaintext
        columns in `requests` blanked, in one statement (see `_as_json`)."""
        await self.conn.execute(
            "WITH s AS (SELECT * FROM jsonb_populate_recordset(NULL::request_citizens, $1::text::jsonb)),"
            " blank AS (UPDATE requests r SET citizen_name = '', citizen_phone = NULL, citizen_id_number = NULL"
            "  FROM s WHERE r.request_id = s.request_id"
            "   AND (r.citizen_name <> '' OR r.citizen_phone IS NOT NULL OR r.citizen_id_number IS NOT NULL))"
            " INSERT INTO request_citizens SELECT * FROM s"
            " ON CONFLICT (request_id) DO UPDATE SET name_enc = EXCLUDED.name_enc, phone_enc = EXCLUDED.phone_enc,"
            " id_number_enc = EXCLUDED.id_number_enc, phone_hash = EXCLUDED.phone_hash, key_id = EXCLUDED.key_id",
            _as_json(citizens))


    async def personal_data_due(self, closed_before: datetime, limit: int) -> list[Row]:
        """Up to `limit` matters closed before `closed_before` (a merged matter: when its primary was)
        whose personal data is still kept, locked; rows another transaction holds are skipped (another
        replica's batch), so replicas share the work. Two index scans, not one OR over the table: the
        closed matters through `requests_closed`, the merged ones (few) through `requests_followers`."""
        return await self.conn.fetch(
            "SELECT r.request_id, r.town_code, r.description, r.location FROM requests r"
            " WHERE r.request_id IN ("
            "  (SELECT x.request_id FROM requests x WHERE x.status = 'closed' AND x.status_at < $1"
            "    AND NOT EXISTS (SELECT FROM request_citizens c WHERE c.request_id = x.request_id AND c.erased_at IS NOT NULL)"
            "    ORDER BY x.status_at LIMIT $2)"
            "  UNION ALL"
            "  (SELECT f.request_id FROM requests f JOIN requests p ON p.request_id = f.merged_into"
            "    WHERE f.merged_into IS NOT NULL AND p.status = 'closed' AND p.status_at < $1"
            "     AND NOT EXISTS (SELECT FROM request_citizens c WHERE c.request_id = f.request_id AND c.erased_at IS NOT NULL)"
            "    LIMIT $2))"
            " LIMIT $2 FOR UPDATE OF r SKIP LOCKED", closed_before, limit)


    async def erase_personal_data(self, rows: list[dict[str, Any]], at: datetime) -> None:
        """Blank these matters' citizens (sealed and plaintext) and their photos' positions and
        capture times, and set their free text as given (masked), marking them erased, in one statement."""
        await self.conn.execute(
            "WITH e AS (SELECT * FROM jsonb_to_recordset($1::text::jsonb)"
            "  AS e(request_id uuid, town_code text, description text, location text)),"
            " r AS (UPDATE requests r SET citizen_name = '', citizen_phone = NULL, citizen_id_number = NULL,"
            "  description = e.description, location = e.location FROM e WHERE r.request_id = e.request_id),"
            # Where and when the matter's photos were taken (a photo at home): the citizen's too.
            " a AS (UPDATE attachments a SET latitude = NULL, longitude = NULL, captured_at = NULL"
            "  FROM e WHERE a.request_id = e.request_id)"
            " INSERT INTO request_citizens (request_id, town_code, erased_at) SELECT request_id, town_code, $2 FROM e"
            " ON CONFLICT (request_id) DO UPDATE SET name_enc = NULL, phone_enc = NULL, id_number_enc = NULL,"
            " phone_hash = NULL, key_id = NULL, erased_at = EXCLUDED.erased_at", _as_json(rows), at)


    async def insert_attachments(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(
                "INSERT INTO attachments SELECT * FROM jsonb_populate_recordset(NULL::attachments, $1::text::jsonb)",
                _as_json(rows))

    async def attachments_of(self, request_id: uuid.UUID) -> list[Row]:
        return list(await self.conn.fetch(
            "SELECT attachment_id, kind, seq, content_type, bytes, sha256, width, height"
            " FROM attachments WHERE request_id = $1 ORDER BY seq", request_id))

    async def photo_of(self, request_id: uuid.UUID, attachment_id: uuid.UUID) -> Row | None:
        # One round trip for both kinds of photo a matter shows.
        return await self.conn.fetchrow(
            "SELECT attachment_id, town_code, request_id, content_type, stored_key, thumbnail_key,"
            " 'intake' AS owner FROM attachments WHERE request_id = $1 AND attachment_id = $2"
            " UNION ALL SELECT attachment_id, town_code, request_id, content_type, NULL, NULL, 'dispatch'"
            " FROM task_photos WHERE request_id = $1 AND attachment_id = $2", request_id, attachment_id)

    async def known_attachments(self, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.conn.fetch("SELECT attachment_id FROM attachments WHERE attachment_id = ANY($1::uuid[])",
                                     attachment_ids)
        return {row["attachment_id"] for row in rows}

    async def record_task_photos(self, town_code: str, request_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
        """The after photos a completion referenced, for a matter of the town filed here (else
        none: not ours); each once, whatever the redeliveries."""
        if rows:
            await self.conn.execute(
                "INSERT INTO task_photos SELECT p.* FROM jsonb_populate_recordset(NULL::task_photos, $1::text::jsonb) p"
                " WHERE EXISTS (SELECT 1 FROM requests r WHERE r.request_id = $2 AND r.town_code = $3)"
                " ON CONFLICT (attachment_id) DO NOTHING", _as_json(rows), request_id, town_code)

    async def task_photos_of(self, request_id: uuid.UUID) -> list[Row]:
        return list(await self.conn.fetch(
            "SELECT attachment_id, stage, content_type, bytes, sha256, taken_at FROM task_photos"
            " WHERE request_id = $1 ORDER BY taken_at, seq", request_id))

    # --- citizens' SMS (issue #31): the choice and the messages, written in the filing's or the
    # consumed event's transaction; the sender's own statements below.
    async def save_sms_choices(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(
                "INSERT INTO request_sms SELECT * FROM jsonb_populate_recordset(NULL::request_sms, $1::text::jsonb)"
                " ON CONFLICT DO NOTHING", _as_json(rows))

    async def enqueue_sms(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(
                "INSERT INTO sms_outbox (request_id, town_code, kind, source_id, template, params, red,"
                " created_at, hold_until)"
                " SELECT request_id, town_code, kind, source_id, template, params, red, created_at, hold_until"
                " FROM jsonb_populate_recordset(NULL::sms_outbox, $1::text::jsonb)"
                " ON CONFLICT (source_id, kind, request_id) DO NOTHING", _as_json(rows))

    async def sms_recipients(self, town_code: str, request_id: uuid.UUID) -> list[Row]:
        return list(await self.conn.fetch(
            "SELECT r.request_id, r.ticket_no, r.colour FROM requests r JOIN request_sms s USING (request_id)"
            " WHERE (r.request_id = $1 OR r.merged_into = $1) AND r.town_code = $2 AND NOT s.opted_out"
            " ORDER BY r.request_id <> $1, r.ticket_no", request_id, town_code))

    async def claim_sms(self, holder: str, lease_seconds: float, town_now: datetime, limit: int) -> list[Row]:
        """Messages due that no replica holds, leased to `holder` (SKIP LOCKED: two replicas never
        take one row; a lease run out, a replica killed mid-send, frees it). The back-off runs on
        the database's clock, the holds (quiet hours, the callback's day) on the town's. Oldest
        first (RETURNING keeps no order of its own)."""
        return sorted(await self.conn.fetch(
            "UPDATE sms_outbox SET lease_holder = $1, lease_until = now() + make_interval(secs => $2)"
            " WHERE id IN (SELECT id FROM sms_outbox WHERE status = 'pending' AND next_attempt_at <= now()"
            "  AND (hold_until IS NULL OR hold_until <= $3) AND (lease_until IS NULL OR lease_until < now())"
            "  ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " RETURNING *", holder, lease_seconds, town_now, limit), key=lambda row: row["id"])

    async def sms_still_held(self, message_id: int, holder: str, for_seconds: float = 0) -> bool:
        """The lease is ours for `for_seconds` more at least (a replica paused past it sends nothing more)."""
        return bool(await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sms_outbox WHERE id = $1 AND lease_holder = $2"
            " AND lease_until > now() + make_interval(secs => $3) AND status = 'pending')",
            message_id, holder, for_seconds))

    async def sms_release(self, message_ids: list[int], holder: str) -> None:
        """Leased messages given back untried (the gateway is down): due again at once."""
        if message_ids:
            await self.conn.execute(
                "UPDATE sms_outbox SET lease_holder = NULL, lease_until = NULL"
                " WHERE id = ANY($1::bigint[]) AND lease_holder = $2", message_ids, holder)

    async def sms_sent(self, message_id: int, provider_id: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE sms_outbox SET status = 'sent', provider_id = $2, sent_at = $3, attempts = attempts + 1,"
            " last_error = NULL, lease_holder = NULL, lease_until = NULL WHERE id = $1", message_id, provider_id, at)

    async def sms_ended(self, message_id: int, status: str, why: str, attempted: bool) -> None:
        """Failed for good (the number refused) or skipped (opted out, no mobile, erased, rated)."""
        await self.conn.execute(
            "UPDATE sms_outbox SET status = $2, last_error = $3, attempts = attempts + $4::int,"
            " lease_holder = NULL, lease_until = NULL WHERE id = $1", message_id, status, why, int(attempted))

    async def sms_retry(self, message_id: int, why: str, delay_seconds: float) -> None:
        await self.conn.execute(
            "UPDATE sms_outbox SET attempts = attempts + 1, last_error = $2,"
            " next_attempt_at = now() + make_interval(secs => $3), lease_holder = NULL, lease_until = NULL"
            " WHERE id = $1", message_id, why, delay_seconds)

    async def sms_hold(self, message_id: int, until: datetime, why: str) -> None:
        await self.conn.execute(
            "UPDATE sms_outbox SET hold_until = $2, last_error = $3, lease_holder = NULL, lease_until = NULL"
            " WHERE id = $1", message_id, until, why)

    async def sms_waiting(self, town_now: datetime) -> dict[str, tuple[int, int, float]]:
        """(due and not sent, of which failed at least once, how long the oldest has been due in
        seconds) by town with any. A held message (quiet hours, the callback's day) is due from
        its `hold_until`: held on purpose, it does not count as waiting before."""
        rows = await self.conn.fetch(
            "SELECT town_code, count(*) AS waiting, count(*) FILTER (WHERE attempts > 0) AS failing,"
            " greatest(0, extract(epoch FROM $1 - min(greatest(created_at, hold_until))))::float8 AS oldest"
            " FROM sms_outbox WHERE status = 'pending' AND (hold_until IS NULL OR hold_until <= $1)"
            " GROUP BY town_code", town_now)
        return {r["town_code"]: (r["waiting"], r["failing"], r["oldest"]) for r in rows}

    async def sms_of(self, request_id: uuid.UUID) -> list[Row]:
        return list(await self.conn.fetch(
            "SELECT id, kind, status, created_at, hold_until, attempts, last_error, sent_at FROM sms_outbox"
            " WHERE request_id = $1 ORDER BY id", request_id))



class PgUnitOfWork:
    """The unit of work on an open transaction: a route's own, or the consumer's (its inbox row)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._store = PgStore(conn)

    @property
    def store(self) -> PgStore:
        return self._store

    async def publish(self, *events: Envelope, trace_headers: Sequence[dict[str, str]] | None = None) -> None:
        await enqueue(self.conn, *events, trace_headers=trace_headers)


def unit_of_work(database: Database) -> UnitOfWorkFactory:
    """A new transaction on the service's pool per unit of work."""
    return database.units_of_work(PgUnitOfWork)


# The day-sequence claim and the bulk insert, for the bench's loaders and the upgrade tests that
# write rows the way intake does.
async def claim_tickets(conn: asyncpg.Connection, wanted: dict[tuple[str, date], int]) -> dict[tuple[str, date], int]:
    return await PgStore(conn).claim_tickets(wanted)


async def insert_requests(conn: asyncpg.Connection, rows: list[dict[str, Any]], first_step: str,
                          details: list[dict[str, Any]], citizens: list[dict[str, Any]] | None = None,
                          places: list[dict[str, Any]] | None = None) -> None:
    await PgStore(conn).insert_requests(rows, first_step, details, citizens, places)
