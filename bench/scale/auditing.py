"""The audit trail of a county-year (issue #28: an auditor's search over a county-year of actions,
p95 ≤ 100 ms): the records the staff's and citizens' requests of the generated history would have
left in each service's audit trail, and how they get there.

`entries` derives them from a town-month's events (history.py), one record per request a person
made — a filing, an accept and the citizen's data shown to its holder, a completion, a check, an
extension asked and approved, an inspection started and its result, a case's step, evidence
photos recorded, a rating —
and none for what the services did on their own (a dispatch, a supervision, a task completed by
its inspection). Pure: no I/O.

`write` puts them into the services' `audit_pending` with the product's own writer
(`audit_trail.write_records`, as a command's transaction does); each service's sealing pass then
chains them and publishes them on its audit topic as it does in production (`wait_sealed` waits
for that). `load_chained` is the shortcut for a volume the stack cannot seal in the time at hand
(bench/scale/audit_search.py): the same records chained by the product's `audit.chained` and
COPYed into `audit_log` with the head moved, as the sealing pass would have left them.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import asyncpg

from townflow_shared import audit, audit_trail, events
from townflow_shared.audit import OK, Entry
from townflow_shared.town import Town

from .history import TownMonth

CONSOLE = "127.0.0.1"  # staff act through the console: the services see its address
FILER = "s010"  # who files at the window (loaders.FILED_BY)


class _Trail:
    def __init__(self, town: Town) -> None:
        self.town = town
        self.by_service: dict[str, list[Entry]] = defaultdict(list)

    def add(self, service: str, at: datetime, actor: str, action: str, target_type: str, target_id: str,
            correlation_id: str) -> None:
        staff = self.town.staff.get(actor)
        roles = tuple(sorted(staff.roles)) if staff is not None else ()
        # The person's own desk behind the console (X-Forwarded-For): the same address for a person.
        desk = zlib.crc32(f"{self.town.code}:{actor}".encode())
        self.by_service[service].append(Entry(
            service=service, at=at, actor=actor, roles=roles, town=self.town.code if actor else None, action=action,
            target_type=target_type, target_id=target_id, outcome=OK, client=CONSOLE,
            forwarded_for=f"10.{desk >> 16 & 255}.{desk >> 8 & 255}.{desk & 255}" if actor else "",
            correlation_id=correlation_id))


def entries(town: Town, month: TownMonth) -> dict[str, list[Entry]]:
    """Each service's audit records of the town-month's requests, in the order they were made."""
    trail = _Trail(town)
    duty = town.info.command_centre_duty[0]
    ticket_of: dict[str, str] = {}  # request id -> ticket number
    holder_of: dict[str, str] = {}  # task id -> assignee
    officers_of: dict[str, list[str]] = {}  # task id -> the officers who inspected it
    for event in month.events():
        d, trace = event.data, event.id.hex  # the request's trace id: one per event, reproducible
        if isinstance(d, events.RequestFiledData):
            ticket_of[d.request_id] = d.ticket_no
            trail.add("intake", d.filed_at, FILER, "request.create", "request", d.ticket_no, trace)
        elif isinstance(d, events.TaskDispatchedData):
            holder_of[d.task_id] = d.assignee
            if d.redispatch_of:  # the command centre's redispatch; a first dispatch is dispatch's own
                trail.add("dispatch", d.dispatched_at, duty, "task.redispatch", "task", d.redispatch_of, trace)
        elif isinstance(d, events.TaskReturnedData):
            trail.add("dispatch", d.returned_at, d.by, "task.return", "task", d.task_id, trace)
        elif isinstance(d, events.TaskAcceptedData):
            trail.add("dispatch", d.accepted_at, d.by, "task.accept", "task", d.task_id, trace)
            # The task's page shows its holder the citizen's name and phone (issue #27): a read of
            # personal data, recorded by intake.
            trail.add("intake", d.accepted_at + timedelta(seconds=20), d.by, "matter.citizen_read", "request",
                      ticket_of.get(d.request_id, d.request_id), event.id.hex[::-1])
        elif isinstance(d, events.TaskExtendedData):
            at = event.time
            trail.add("dispatch", at - timedelta(minutes=20), holder_of.get(d.task_id, ""), "task.extend", "task",
                      d.task_id, trace[::-1])
            trail.add("dispatch", at, d.approved_by, "task.extension.approve", "task", d.task_id, trace)
        elif isinstance(d, events.TaskCompletedData) and d.inspection_id is None:
            trail.add("dispatch", d.completed_at, d.by, "task.complete", "task", d.task_id, trace)
        elif isinstance(d, events.TaskVerifiedData) and "," not in d.by:  # an inspection's check is automatic
            trail.add("dispatch", d.at, d.by, "task.verify", "task", d.task_id, trace)
        elif isinstance(d, events.InspectionDoneData):
            for task_id in d.task_ids:
                officers_of[task_id] = d.officers
            trail.add("enforcement", d.started_at, d.officers[0], "inspection.start", "inspection", d.inspection_id,
                      trace[::-1])
            trail.add("enforcement", d.finished_at, d.officers[0], "inspection.result", "inspection",
                      d.inspection_id, trace)
        elif isinstance(d, events.EvidenceRecordedData):  # photos on an inspection, or on a case's step
            kind, record = ("case", d.case_id) if d.case_id else ("inspection", d.inspection_id)
            trail.add("enforcement", d.recorded_at, d.recorded_by, f"{kind}.evidence", kind, str(record), trace)
        elif isinstance(d, events.CaseUpdatedData) and d.step != "filed":  # a violation's filing is automatic
            officer = (officers_of.get(d.task_id) or [duty])[0]
            trail.add("enforcement", d.at, officer, "case.steps", "case", d.case_id, trace)
        elif isinstance(d, events.RequestRatedData):  # the citizen, with the ticket's access code
            trail.add("intake", d.rated_at, "", "request.rating", "request", d.ticket_no, trace)
        elif isinstance(d, events.PlanPublishedData):
            leader = d.targets[0].officers[0] if d.targets else duty
            trail.add("enforcement", d.published_at, leader, "random_plan.create", "random_plan", d.plan_id, trace)
    return dict(trail.by_service)


async def write(pools: Mapping[str, asyncpg.Pool], by_service: Mapping[str, Sequence[Entry]]) -> int:
    """Into each service's `audit_pending` by the product's writer, a transaction per service."""
    async def one(service: str, records: Sequence[Entry]) -> None:
        async with pools[service].acquire() as conn, conn.transaction():
            await audit_trail.write_records(conn, records)

    await asyncio.gather(*(one(s, r) for s, r in by_service.items() if r))
    return sum(len(r) for r in by_service.values())


async def wait_sealed(dsns: Mapping[str, str], timeout: float,
                      report: Callable[[str], None] = print) -> dict[str, int]:
    """Until every service's sealing pass has chained what was written and its relay published it
    (the reads are timed on a system at rest): the chain's length of each."""
    deadline = time.monotonic() + timeout
    conns = {s: await asyncpg.connect(dsn) for s, dsn in dsns.items()}
    try:
        while True:
            waiting = {s: await c.fetchval("SELECT (SELECT count(*) FROM audit_pending) + (SELECT count(*) FROM outbox)")
                       for s, c in conns.items()}
            if not any(waiting.values()):
                return {s: await c.fetchval("SELECT seq FROM audit_head") for s, c in conns.items()}
            if time.monotonic() > deadline:
                raise TimeoutError(f"audit records still unsealed or unpublished after {timeout:.0f}s: {waiting}")
            report(f"  audit records and events waiting for their sealing pass and relay: {waiting}")
            await asyncio.sleep(5)  # a county-year's backlog goes 2,000 a transaction: minutes, not moments
    finally:
        for c in conns.values():
            await c.close()


_COLUMNS = ("seq", "id", "at", "actor", "roles", "town_code", "action", "target_type", "target_id", "outcome",
            "client", "forwarded_for", "correlation_id", "detail", "prev_hash", "hash")


async def load_chained(conn: asyncpg.Connection, service: str, records: Sequence[Entry]) -> int:
    """`records` appended to the service's chain as the sealing pass appends them (`audit.chained`
    after the head, the head moved), by COPY: for a volume the sealing would take too long to
    build here. Not published (no outbox row): the search reads the database only."""
    async with conn.transaction():
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head FOR UPDATE")
        first_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM audit_log") + 1
        chained = audit.chained(records, head["seq"], head["hash"])
        rows = [(r.seq, first_id + i, r.at, r.actor, list(r.roles), r.town, r.action, r.target_type, r.target_id,
                 r.outcome, r.client, r.forwarded_for, r.correlation_id, "{}", r.prev_hash, r.hash)
                for i, r in enumerate(chained)]
        await conn.copy_records_to_table("audit_log", records=rows, columns=_COLUMNS)
        # audit_pending's ids go on after these, as if they had been written before them
        await conn.execute("SELECT setval(pg_get_serial_sequence('audit_pending', 'id'), $1)", first_id + len(rows))
        await conn.execute("UPDATE audit_head SET seq = $1, hash = $2", chained[-1].seq, chained[-1].hash)
    return len(rows)


AUDITED = ("intake", "dispatch", "enforcement")  # appraisal's (seconded scores, what-ifs) are not in the history
# What an auditor asks of a service's trail: its action, and the id of the matter's record there.
ACTIONS = {"intake": "matter.citizen_read", "dispatch": "task.accept", "enforcement": "inspection.result"}
PREFIXES = {"intake": "request.", "dispatch": "task.", "enforcement": "case."}


def search_values(first: TownMonth, values: Mapping[str, str]) -> dict[str, str]:
    """The auditor's searches' parameters (reads.SEARCHES), from the oldest town-month: a person
    (a task's holder), a matter's record in each service, an action, a week of the history's first
    month — the oldest week, the farthest from the newest records a search starts from."""
    week = datetime.combine(first.month + timedelta(days=7), datetime.min.time(), first.plan.time.tzinfo)
    return {
        "audit_actor": values["subject_id"], "audit_town": first.town_code,
        "audit_since": week.isoformat(), "audit_until": (week + timedelta(days=7)).isoformat(),
        "audit_from": f"{week:%Y-%m-%d}", "audit_to": f"{week + timedelta(days=6):%Y-%m-%d}",  # the console's days
        "audit_target_intake": values["ticket_no"], "audit_target_dispatch": values["task_id"],
        "audit_target_enforcement": values["inspection_id"],
        **{f"audit_action_{s}": a for s, a in ACTIONS.items()}, **{f"audit_prefix_{s}": p for s, p in PREFIXES.items()},
    }


def searches(service: str) -> dict[str, dict[str, str]]:
    """By person, matter, action (and every action under a prefix), date range, and their pairs."""
    week = {"since": "audit_since", "until": "audit_until"}
    return {
        "person": {"actor": "audit_actor"}, "person in town": {"actor": "audit_actor", "town": "audit_town"},
        "matter": {"target": f"audit_target_{service}"}, "action": {"action": f"audit_action_{service}"},
        "action prefix": {"action": f"audit_prefix_{service}"}, "week": week,
        "person week": {"actor": "audit_actor", **week}, "action week": {"action": f"audit_action_{service}", **week},
        "town week": {"town": "audit_town", **week},
    }
