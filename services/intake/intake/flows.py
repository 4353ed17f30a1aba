"""Intake's filing, written a batch at a time (SPEC §5.2, §6).

The HTTP route validates a filing and hands it to the service's `GroupCommit`; the filings that
wait together are written here in one transaction: idempotency keys claimed, ticket numbers and
then repeat counts, the requests with their first timeline step, the
`intake.request.filed` events into the outbox (each with its own request's trace), the
idempotent answers saved. Each filing gets its own answer: (status, body) or the 422 meant for it.
A batch may hold filings of several towns of a county (SPEC §8): each is numbered, counted for the
repeat rule and keyed within its own town.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

import asyncpg

from townflow_shared.checks import present
from townflow_shared.db import transaction
from townflow_shared.events import (
    Colour,
    RequestFiled,
    RequestFiledData,
    RequestMerged,
    RequestMergedData,
    new_event,
)
from townflow_shared.group_commit import GroupCommit
from townflow_shared.http import unprocessable
from townflow_shared.outbox import enqueue
from townflow_shared.privacy import mask_personal_numbers
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.town import CatalogItem, Town

from . import rules, store

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Filing:
    """A validated filing waiting to be written, in its town."""

    town: Town
    filed_by: str
    filer_scope: str  # whose Idempotency-Keys these are within the town (see api.filer_scope)
    idempotency_key: str | None
    fingerprint: str
    item: CatalogItem
    requested_colour: Colour | None
    citizen_ref: str
    fields: dict[str, Any]  # the request's columns that come from the body as they are
    trace_headers: dict[str, str]

    @property
    def scope_and_key(self) -> tuple[str, str, str] | None:
        """(town, filer, key): a key belongs to the town filed in and its filer."""
        return (self.town.code, self.filer_scope, self.idempotency_key) if self.idempotency_key else None


_writers: WeakKeyDictionary[ServiceRuntime, GroupCommit[Filing, Answer]] = WeakKeyDictionary()


def filing_writer(runtime: ServiceRuntime) -> GroupCommit[Filing, Answer]:
    """The service's one writer of filings."""
    writer = _writers.get(runtime)
    if writer is None:
        async def write(filings: Sequence[Filing]) -> list[Answer | BaseException]:
            async with transaction(runtime.pool) as conn:
                return await file_requests(conn, filings, runtime.clock.now())

        writer = _writers[runtime] = GroupCommit(write)
    return writer


def _key_reused(fingerprint: str, answer: Answer | BaseException, first_fingerprint: str) -> Answer | BaseException:
    """A repeated Idempotency-Key: the first answer for the same body, else a 422."""
    if fingerprint != first_fingerprint:
        return unprocessable([("Idempotency-Key", "this key was used before with a different request body")],
                             where="header")
    return answer


async def file_requests(conn: asyncpg.Connection, filings: Sequence[Filing],
                        now: datetime) -> list[Answer | BaseException]:
    """Every filing's answer, in order: replayed for a known Idempotency-Key, else a new request."""
    answers: list[Answer | BaseException | None] = [None] * len(filings)
    keys = await _claim_keys(conn, filings)
    for i, (fingerprint, answer) in keys.replayed.items():
        answers[i] = _key_reused(filings[i].fingerprint, answer, fingerprint)
    new = [i for i in range(len(filings)) if answers[i] is None and i not in keys.repeated]
    if new:
        answers_of_new = await _file_new(conn, [filings[i] for i in new], now)
        for i, answer in zip(new, answers_of_new, strict=True):
            answers[i] = answer
    for i, first in keys.repeated.items():  # after their first, whose answer they repeat
        key = present(filings[first].scope_and_key, "the key of a repeated filing")
        fingerprint, first_answer = keys.stored[key] if key in keys.stored else (
            filings[first].fingerprint, answers[first])
        if first_answer is None:
            raise RuntimeError("the first filing with a repeated key has no answer")
        answers[i] = _key_reused(filings[i].fingerprint, first_answer, fingerprint)
    if any(a is None for a in answers):
        raise RuntimeError("a filing was left without an answer")
    return answers  # type: ignore[return-value]  # none is None, checked above


@dataclass
class _Keys:
    replayed: dict[int, tuple[str, Answer]]      # filing -> (first fingerprint, first answer) from the database
    repeated: dict[int, int]                     # filing -> the earlier filing of this batch with its key
    stored: dict[tuple[str, str, str], tuple[str, Answer]]  # key -> what the database holds


async def _claim_keys(conn: asyncpg.Connection, filings: Sequence[Filing]) -> _Keys:
    """An Idempotency-Key answers as it did the first time: from the database, or from the
    first filing of this very batch that carried it."""
    first_with_key: dict[tuple[str, str, str], int] = {}
    repeated: dict[int, int] = {}
    for i, filing in enumerate(filings):
        if (key := filing.scope_and_key) is not None:
            if key in first_with_key:
                repeated[i] = first_with_key[key]
            else:
                first_with_key[key] = i
    if not first_with_key:
        return _Keys({}, repeated, {})
    rows = await store.claim_idempotency_keys(
        conn, [(*key, filings[i].fingerprint) for key, i in first_with_key.items()])
    stored = {
        key: (row["fingerprint"], (row["status"], row["response"])) for key, row in rows.items()}
    replayed = {first_with_key[key]: stored[key] for key in rows}
    return _Keys(replayed, repeated, stored)


async def _file_new(conn: asyncpg.Connection, filings: Sequence[Filing], now: datetime) -> list[Answer]:
    """New requests: gap-free tickets of each town, then repeat counts within each town that see
    every committed filing, the rows, the events."""
    days = [filing.town.calendar.local(now).date() for filing in filings]
    wanted = Counter((filing.town.code, day) for filing, day in zip(filings, days, strict=True))
    last = await store.claim_tickets(conn, dict(wanted))
    next_sequence = {town_day: last[town_day] - count + 1 for town_day, count in wanted.items()}
    earlier = await store.repeat_counts(
        conn, [f.town.code for f in filings], [f.citizen_ref for f in filings], [f.item.code for f in filings],
        [now - timedelta(days=f.town.rules.intake.repeat_filing_window_days) for f in filings])
    in_this_batch: Counter[tuple[str, str, str]] = Counter()
    rows, events = [], []
    answers: list[Answer] = []
    for filing, day, earlier_filings in zip(filings, days, earlier, strict=True):
        town = filing.town
        sequence = next_sequence[(town.code, day)]
        next_sequence[(town.code, day)] += 1
        repeat_key = (town.code, filing.citizen_ref, filing.item.code)
        colour = rules.colour_for(filing.requested_colour, filing.item,
                                  earlier_filings + in_this_batch[repeat_key], town.rules.intake)
        in_this_batch[repeat_key] += 1
        request_id = uuid.uuid4()
        ticket_no = rules.ticket_number(town.code, day, sequence)  # the ticket names its town
        access_code = rules.new_access_code()
        fields = filing.fields
        rows.append({
            "request_id": request_id, "ticket_no": ticket_no, "access_code": access_code,
            "item_code": filing.item.code, "colour": colour, **fields,
            "citizen_ref": filing.citizen_ref, "filed_by": filing.filed_by,
            "filed_at": now, "status": "filed", "status_at": now, "trace_headers": filing.trace_headers,
        })
        events.append(new_event(
            RequestFiled,
            RequestFiledData(
                request_id=str(request_id), ticket_no=ticket_no, channel=fields["channel"],
                item_code=filing.item.code, colour=colour,
                # Free text leaves intake masked: a phone typed into it must not reach subscribers.
                description=mask_personal_numbers(fields["description"]),
                village=fields["village"], location=mask_personal_numbers(fields["location"]),
                target=fields["target"],
                citizen_ref=filing.citizen_ref, proxy_agent_id=fields["proxy_agent_id"],
                village_record_id=fields["village_record_id"], filed_at=now),
            source="intake", town_code=town.code, subject=str(request_id),
            correlation_id=str(request_id), time=now))
        body: dict[str, Any] = {"request_id": str(request_id), "ticket_no": ticket_no,
                                "access_code": access_code, "colour": colour, "status": "filed"}
        answers.append((201, body))
    await store.insert_requests(conn, rows, "filed", [{"channel": f.fields["channel"]} for f in filings])
    duplicates = await possible_duplicates(conn, filings, [row["request_id"] for row in rows], now)
    for (_, answer), found in zip(answers, duplicates, strict=True):
        answer["possible_duplicates"] = found
    await enqueue(conn, *events, trace_headers=[f.trace_headers for f in filings])
    saved = [(*key, *answer) for filing, answer in zip(filings, answers, strict=True)
             if (key := filing.scope_and_key) is not None]  # a retry answers with the same hints
    if saved:
        await store.save_idempotent_responses(conn, saved)
    return answers


async def possible_duplicates(conn: asyncpg.Connection, filings: Sequence[Filing],
                              request_ids: list[uuid.UUID], now: datetime) -> list[list[dict[str, Any]]]:
    """重复件 (SPEC §10): for each new filing, the open matters of its town that may be the same
    one (same target, or same item and village with a similar location), newest first, at most
    rules.DUPLICATE_HINTS_MAX of them. Only what the filer needs to decide: no location text or
    personal data (a proxy agent files too)."""
    since = [now - timedelta(days=f.town.rules.intake.duplicate_window_days) for f in filings]
    found: list[list[dict[str, Any]]] = [[] for _ in filings]
    for row in await store.duplicate_candidates(conn, request_ids, since, rules.OPEN_STATUSES,
                                                rules.DUPLICATE_CANDIDATES_PER_KIND):
        if len(found[row["n"] - 1]) == rules.DUPLICATE_HINTS_MAX:
            continue  # the rows come newest first: this filing's hints are complete
        filing = filings[row["n"] - 1]
        candidate = rules.Candidate(row["ticket_no"], row["item_code"], row["village"], row["location"],
                                    row["target"])
        why = rules.duplicate_reason(candidate, item_code=filing.item.code, village=filing.fields["village"],
                                     location=filing.fields["location"], target=filing.fields["target"],
                                     rules=filing.town.rules.intake)
        if why is not None:
            found[row["n"] - 1].append({
                "ticket_no": row["ticket_no"], "item_code": row["item_code"], "village": row["village"],
                "status": row["status"],
                "filed_at": row["filed_at"].astimezone(filing.town.calendar.tz).isoformat(), "reason": why[0],
                "location_similarity": why[1]})
    return found


async def record_merge(conn: asyncpg.Connection, *, merged: asyncpg.Record, into_request_id: uuid.UUID,
                       into_ticket_no: str, by: str, now: datetime, reversed_: bool = False) -> None:
    """Merge a matter into its primary, or undo that (`reversed_`): the row, the merged matter's
    timeline step, and `intake.request.merged` keyed by the merged matter, so dispatch closes (or
    reopens) its task in order with its other events."""
    await store.set_merged_into(conn, merged["request_id"], None if reversed_ else into_request_id,
                                None if reversed_ else now)
    step = "unmerged" if reversed_ else "merged"
    await store.add_timeline(conn, merged["request_id"], now, step, {"into": into_ticket_no}, None)
    await enqueue(conn, new_event(
        RequestMerged,
        RequestMergedData(request_id=str(merged["request_id"]), ticket_no=merged["ticket_no"],
                          into_request_id=str(into_request_id), into_ticket_no=into_ticket_no,
                          reversed=reversed_, by=by, at=now),
        source="intake", town_code=merged["town_code"], subject=str(merged["request_id"]),
        correlation_id=str(merged["request_id"]), time=now))
