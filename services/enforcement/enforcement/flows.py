"""Enforcement's operations inside the caller's transaction: rules decide, store writes,
the outbox carries the events."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from townflow_shared.deadlines import DueBatch
from townflow_shared.events import CaseUpdated, CaseUpdatedData, EventData, new_event
from townflow_shared.events import Envelope as _Envelope
from townflow_shared.outbox import enqueue
from townflow_shared.telemetry import current_trace_headers
from townflow_shared.town import EnforcementRules, Town

from . import rules, store

log = logging.getLogger(__name__)


def event(town_code: str, event_type: type[_Envelope], data: EventData, subject: Any,
          correlation_id: Any, now: datetime, causation_id: Any = None) -> _Envelope:
    """An event of enforcement about a record of `town_code`."""
    return new_event(event_type, data, source="enforcement", town_code=town_code,
                     subject=str(subject), correlation_id=str(correlation_id), time=now,
                     causation_id=causation_id)


async def add_need(conn: asyncpg.Connection, town: Town, *, target: str, item_code: str,
                   source: str, task_id: str | None, request_id: str | None, now: datetime,
                   due: datetime | None = None) -> uuid.UUID | None:
    """综合查一次: join the target's planned inspection in `town`, or plan a new one there (the
    same target in another town is another town's visit). None if the task already has its need
    (a redelivered event)."""
    units = rules.need_units(town.catalog[item_code])
    planned = await store.planned_inspection_for_update(conn, town.code, target)
    if planned is None:
        inspection_id = await store.create_inspection(conn, town.code, target, units, now)
    else:
        inspection_id = planned["inspection_id"]
    added = await store.add_need(conn, town_code=town.code, inspection_id=inspection_id, source=source, task_id=task_id,
                                 request_id=request_id, item_code=item_code, target=target, units=units,
                                 due=due, now=now, trace_headers=current_trace_headers())
    if not added:
        return None
    if source == "task" and task_id is not None and target in await repeated_targets(conn, town, now, target):
        # 多头检查: the target's latest planned inspection (this one) is proposed as its visit.
        await store.mark_repeated_need(conn, town.code, task_id)
    needs = await store.needs_of(conn, inspection_id)
    await store.set_inspection(conn, inspection_id,
                               units=rules.union_units(*(n["units"] for n in needs)),
                               visits_saved=rules.visits_saved([n["units"] for n in needs]))
    return inspection_id


async def case_event(conn: asyncpg.Connection, case: dict[str, Any] | asyncpg.Record,
                     step: str, now: datetime, *, decision: str | None = None,
                     transferred_to: str | None = None, causation_id: Any = None) -> None:
    await enqueue(conn, event(case["town_code"], CaseUpdated, CaseUpdatedData(
        case_id=str(case["case_id"]), task_id=case["task_id"], request_id=case["request_id"],
        step=step, decision=decision, transferred_to=transferred_to, at=now),  # type: ignore[arg-type]
        case["case_id"], case["request_id"], now, causation_id))


async def open_case(conn: asyncpg.Connection, town: Town, *, need: asyncpg.Record,
                    inspection_id: uuid.UUID, outcome: str, by: str, now: datetime) -> uuid.UUID:
    """立案 for a violation, with `town`'s decision limits; a not-delegated or criminal finding is
    filed and transferred at once."""
    item = town.catalog[need["item_code"]]
    case_id = uuid.uuid4()
    destination = rules.transfer_destination(outcome, item)
    limits = town.rules.enforcement
    row = {
        "case_id": case_id, "town_code": town.code, "task_id": need["task_id"], "request_id": need["request_id"],
        "inspection_id": inspection_id, "item_code": item.code, "target": need["target"],
        "step": "transferred" if destination else "filed", "filed_at": now,
        "decision_due": rules.decision_due(now, False, limits),
        "transferred_to": destination,
        "next_flag_at": None if destination else rules.next_case_flag_at(now, False, (), limits),
    }
    await store.create_case(conn, row)
    await store.add_case_step(conn, town.code, case_id, "filed", now, by, f"inspection finding: {outcome}")
    await case_event(conn, row, "filed", now)
    if destination:
        await store.add_case_step(conn, town.code, case_id, "transferred", now, by, destination)
        await case_event(conn, row, "transferred", now, transferred_to=destination)
    return case_id


async def flag_due_cases(conn: asyncpg.Connection, limits_of: Mapping[str, EnforcementRules], now: datetime,
                         limit: int) -> DueBatch:
    """Flag up to `limit` undecided cases of every town past day 60 (warning) or past their
    decision limit (overdue), each by its town's limits (`limits_of` by town code), earliest due
    first, and move each case's next due moment on. Each flag once: the claim locks the rows
    (another replica skips them) and a flag already set keeps its time. A case of a town no longer
    served fails alone (logged) and is tried again next pass."""
    claimed = await store.claim_due_cases(conn, list(limits_of), now, limit)
    flags: list[tuple[uuid.UUID, bool, bool, datetime | None]] = []
    flagged = failed = 0
    for case in claimed:
        try:
            done = {flag for flag, at in (("warning", case["warned_at"]), ("overdue", case["overdue_at"])) if at}
            limits = limits_of[case["town_code"]]
            due = rules.case_flags_due(case["filed_at"], case["extended"], done, now, limits)
            flags.append((case["case_id"], "warning" in due, "overdue" in due,
                          rules.next_case_flag_at(case["filed_at"], case["extended"], done | set(due), limits)))
            flagged += len(due)
        except Exception:  # one bad row never stops the rest
            log.exception("deadline check of case %s failed; it is tried again next pass", case["case_id"])
            failed += 1
    if flags:
        await store.set_case_flags(conn, flags, now)
    return DueBatch(len(claimed), flagged, failed)


async def repeated_targets(db: asyncpg.Connection | asyncpg.Pool, town: Town, now: datetime,
                           target: str | None = None) -> dict[str, list[rules.Visit]]:
    """The town's targets flagged for 多头检查 now (or whether `target` is), with their visits."""
    limits = town.rules.enforcement
    rows = await store.visits_since(db, town.code, rules.visits_since(now, limits), target)
    return rules.repeated_inspections(
        [rules.Visit(str(r["inspection_id"]), r["target"], tuple(r["units"]), r["started_at"]) for r in rows],
        now, limits)
