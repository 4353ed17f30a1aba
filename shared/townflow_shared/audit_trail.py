"""The audit trail's machinery (issue #28; the rules are in audit.py): recording every
state-changing request of a service in the transaction of its change, chaining the records, the
auditor's search, `python -m <service> audit verify|prune` (docs/security-audit.md).

How a request is recorded, whatever the route (so a new route cannot forget):
- `AuditMiddleware` opens a `Pending` record for each request: the method, the route, the client
  address, X-Forwarded-For; `note_actor` (auth.py) adds the caller once its token is read.
- The transaction a command handler commits (`record_pending`, called by each service's unit of
  work just before COMMIT) writes the pending record with outcome `ok`: the change and its record
  commit together or not at all. One INSERT, no lock.
- A refused request's transaction rolled back: the middleware writes the record with the
  refusal's code in a small transaction of its own, after the answer is known; so it does for a
  request whose handler committed nothing (a read-only POST such as a what-if).
- A read of a citizen's personal data (a GET) is recorded the same way once the read says so
  (`note_read`).

The sealing pass (`sealing_loop`, one per replica, every SEAL_SECONDS) chains what was written:
it takes the chain's head row (`audit_head`, FOR UPDATE), so two replicas' passes take turns and
the chain has no fork, while no command ever waits for the head. It also puts the sealed records in the outbox for the
service's audit topic (`<service>.audit.recorded.v1`), for the county's SIEM. The auditor's route
is audit_api.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import audit
from .audit import OK, STATE_CHANGING, Break, Entry, Record
from .clock import Clock
from .db import OUTAGES, Database, create_pool
from .events import AUDIT_TYPES, AuditRecordedData, new_event
from .metrics import AUDIT_UNSEALED, AUDIT_UNSEALED_AGE
from .outbox import enqueue
from .problems import DATABASE_UNAVAILABLE

if TYPE_CHECKING:
    from .audit_api import AuditQuery
    from .auth import Principal
    from .county import County
    from .settings import ServiceSettings

log = logging.getLogger(__name__)
# A refusal's problem document is small; more than this is not one of ours.
_PROBLEM_BYTES = 16_384
_FORWARDED_MAX = 200  # X-Forwarded-For as it came, cut: a header is the caller's to fill


@dataclass
class Pending:
    """One request's record in the making (see the module's docstring)."""

    service: str
    clock: Clock
    scope: Scope  # the request's; its route and path parameters are known once it is routed
    wanted: bool  # state-changing, or a read that turned out to show personal data
    actor: Principal | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    written: bool = False

    def entry(self, outcome: str) -> Entry:
        route = self.scope.get("route")
        named: str | None = (getattr(route, "openapi_extra", None) or {}).get("x-audit-action")
        template = str(getattr(route, "path", None) or self.scope["path"])
        derived = audit.action_of(self.scope["method"], template, named)
        params = self.scope.get("path_params") or {}
        target_id = self.target_id or (str(params.get(derived.target_param, "")) if derived.target_param else "")
        client = self.scope.get("client")
        headers = dict(self.scope.get("headers") or [])
        actor = self.actor
        return Entry(
            service=self.service, at=self.clock.now(), actor=actor.sub if actor else "",
            roles=tuple(sorted(actor.roles)) if actor else (), town=actor.town if actor else None,
            action=self.action or derived.code, target_type=self.target_type or derived.target_type,
            target_id=target_id[:200], outcome=outcome, client=client[0] if client else "",
            forwarded_for=headers.get(b"x-forwarded-for", b"").decode("latin-1")[:_FORWARDED_MAX],
            correlation_id=_trace_id())


def _trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""


_pending: ContextVar[Pending | None] = ContextVar("townflow_audit_pending", default=None)


def note_actor(principal: Principal) -> None:
    """The caller of the current request (auth.py, once the token is verified)."""
    pending = _pending.get()
    if pending is not None:
        pending.actor = principal


def note_read(action: str, target_type: str, target_id: str) -> None:
    """The current read showed a citizen's personal data: record it (in the read's transaction,
    when it has one that commits after this; else once the answer is sent)."""
    pending = _pending.get()
    if pending is not None:
        pending.wanted, pending.action, pending.target_type, pending.target_id = True, action, target_type, target_id


def name_target(target_type: str, target_id: str) -> None:
    """The record a creating request made (a filing's ticket number), known only in its handler."""
    pending = _pending.get()
    if pending is not None:
        pending.target_type, pending.target_id = target_type, target_id


def pending() -> Pending | None:
    """The current request's record, for a command written in another task's transaction
    (intake's group commit of filings): that task puts it in its `batch`."""
    return _pending.get()


async def record_pending(conn: asyncpg.Connection) -> list[Pending]:
    """Write the current request's record (and those of a `batch`) in the caller's open
    transaction, just before it commits: outcome `ok`. Call `committed` with the answer once it
    has; nothing when no record is pending or it was written already, or in a `preliminary` step."""
    if _preliminary.get():
        return []
    waiting = [p for p in (_pending.get(), *(_batch.get() or ())) if p is not None and p.wanted and not p.written]
    if not waiting:
        return []
    unique = list({id(p): p for p in waiting}.values())
    await write_records(conn, [p.entry(OK) for p in unique])
    return unique


def committed(written: Sequence[Pending]) -> None:
    """The transaction that wrote these committed: the middleware writes them no more. The
    sealing pass chains them on its next round (within SEAL_SECONDS)."""
    for one in written:
        one.written = True


_batch: ContextVar[list[Pending] | None] = ContextVar("townflow_audit_batch", default=None)
_preliminary: ContextVar[bool] = ContextVar("townflow_audit_preliminary", default=False)


@contextmanager
def preliminary() -> Iterator[None]:
    """A transaction a command commits before its own (intake counts a wrong access code, and
    commits it, before the refusal): not the command's record, which its own transaction writes,
    or the middleware with the refusal's code."""
    token = _preliminary.set(True)
    try:
        yield
    finally:
        _preliminary.reset(token)



@contextmanager
def batch() -> Iterator[list[Pending]]:
    """For a writer that commits other requests' commands in its own task (intake's group commit
    of filings): the records put in the list it yields are written with its transaction, and the
    record of the request that happened to start the task is not (it is in the list if its
    command is in the batch)."""
    held: list[Pending] = []
    request, batched = _pending.set(None), _batch.set(held)
    try:
        yield held
    finally:
        _batch.reset(batched)
        _pending.reset(request)


_ADD = (
    "INSERT INTO audit_pending (at, actor, roles, town_code, action, target_type, target_id, outcome, client,"
    " forwarded_for, correlation_id, detail)"
    " SELECT at, actor, string_to_array(roles, ' '), town_code, action, target_type, target_id, outcome, client,"
    " forwarded_for, correlation_id, detail FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[],"
    " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::jsonb[])"
    " AS r(at, actor, roles, town_code, action, target_type, target_id, outcome, client, forwarded_for,"
    " correlation_id, detail)")


async def write_records(conn: asyncpg.Connection, entries: Sequence[Entry]) -> None:
    """Write `entries` in the caller's transaction, in one statement, without a lock, into a table
    with one index (`audit_pending`): they commit with the change they record, and are chained
    into `audit_log` moments later (`seal`)."""
    columns: list[list[Any]] = [[] for _ in range(12)]
    for e in entries:
        for column, value in zip(columns, (
                e.at, e.actor, " ".join(e.roles), e.town, e.action, e.target_type, e.target_id, e.outcome,
                e.client, e.forwarded_for, e.correlation_id, dict(e.detail)), strict=True):
            column.append(value)
    await conn.execute(_ADD, *columns)


_HEAD = "SELECT seq, hash FROM audit_head FOR UPDATE"
SEAL_BATCH = 2000  # records chained in one transaction: a burst is sealed in a few


def _entry(service: str, r: Any) -> Entry:
    return Entry(service=service, at=r["at"], actor=r["actor"], roles=tuple(r["roles"]), town=r["town_code"],
                 action=r["action"], target_type=r["target_type"], target_id=r["target_id"], outcome=r["outcome"],
                 client=r["client"], forwarded_for=r["forwarded_for"], correlation_id=r["correlation_id"],
                 detail=r["detail"])


async def _seal_locked(conn: asyncpg.Connection, service: str, home: str, limit: int) -> list[Record]:
    """Move up to `limit` pending records, oldest written first, into the chain after the head,
    which the caller's transaction holds; and into the outbox for the audit topic."""
    head = await conn.fetchrow(_HEAD)
    await conn.execute("SELECT set_config('townflow.audit_seal', 'on', true)")  # the trigger lets them go
    taken = await conn.fetch(
        "DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending ORDER BY id LIMIT $1)"
        " RETURNING id, at, actor, roles, town_code, action, target_type, target_id, outcome, client, forwarded_for,"
        " correlation_id, detail", limit)
    await conn.execute("SELECT set_config('townflow.audit_seal', '', true)")
    if not taken:
        return []
    rows = sorted(taken, key=lambda r: r["id"])  # RETURNING keeps no order
    records = audit.chained([_entry(service, r) for r in rows], head["seq"], head["hash"])
    await conn.execute(
        "WITH sealed AS (INSERT INTO audit_log (seq, id, at, actor, roles, town_code, action, target_type,"
        " target_id, outcome, client, forwarded_for, correlation_id, detail, prev_hash, hash)"
        " SELECT seq, id, at, actor, string_to_array(roles, ' '), town_code, action, target_type, target_id,"
        " outcome, client, forwarded_for, correlation_id, detail, prev_hash, hash FROM unnest($1::bigint[],"
        " $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
        " $10::text[], $11::text[], $12::text[], $13::text[], $14::jsonb[], $15::text[], $16::text[])"
        " AS r(seq, id, at, actor, roles, town_code, action, target_type, target_id, outcome, client,"
        " forwarded_for, correlation_id, detail, prev_hash, hash))"
        " UPDATE audit_head SET seq = $17, hash = $18",
        [r.seq for r in records], [row["id"] for row in rows], [r.at for r in records], [r.actor for r in records],
        [" ".join(r.roles) for r in records], [r.town for r in records], [r.action for r in records],
        [r.target_type for r in records], [r.target_id for r in records], [r.outcome for r in records],
        [r.client for r in records], [r.forwarded_for for r in records], [r.correlation_id for r in records],
        [dict(r.detail) for r in records], [r.prev_hash for r in records], [r.hash for r in records],
        records[-1].seq, records[-1].hash)
    event_type = AUDIT_TYPES.get(service)
    if event_type is not None:
        await enqueue(conn, *(new_event(
            event_type, AuditRecordedData(**_record_fields(r)), source=service, town_code=r.town or home,
            subject=str(r.seq), correlation_id=r.correlation_id, time=r.at) for r in records))
    return records


def _record_fields(record: Record) -> dict[str, Any]:
    return {name: getattr(record, name) for name in Record.__dataclass_fields__} | {
        "roles": list(record.roles), "detail": dict(record.detail)}


async def seal(conn: asyncpg.Connection, service: str, home: str, limit: int = SEAL_BATCH) -> list[Record]:
    """Chain the records written since the last seal, oldest written first, and put them in the
    outbox for the audit topic, in one transaction. The head row is locked only for this: two
    replicas' passes take turns, and no command waits for it."""
    # Most passes find nothing: asked first without the lock, which would write the head's row.
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM audit_pending)"):
        return []
    async with conn.transaction():
        return await _seal_locked(conn, service, home, limit)


# How often a replica's pass runs; at once again while a pass finds a full batch (a backlog). Not
# woken by each commit: under load that was a sealing transaction (the head's lock, an outbox
# insert, a commit's fsync, and a relay cycle for the audit topic) for nearly every audited
# request, 11 % of enforcement's CPU at 150 matters/s (py-spy, docs/benchmarks.md#audit-cost).
# On a timer one pass takes a second's records, whatever the rate.
SEAL_SECONDS = 1.0


PRUNE_EVERY = timedelta(hours=1)  # how often a replica prunes what is past the retention


def sealing_loop(service: str, database: Database, home: str, clock: Clock,
                 retention_days: int) -> Callable[[Any], Awaitable[None]]:
    """The background pass of a service (runtime.py): seals what was written every SEAL_SECONDS
    (at once again after a full batch); and prunes what is past the retention
    (`prune`) every PRUNE_EVERY, a failed prune logged and tried again next time, never in the
    way of the sealing."""

    async def sealing_loop(_: Any) -> None:
        next_prune: datetime | None = None
        while True:
            # the time read before the seal: every record written before it is sealed by this pass,
            # then pruned with the others if it is past the retention (a record sealed after the
            # prune would stay until the next, an hour on: the test clock's jump made that visible)
            now = clock.now()
            async with database.pool.acquire() as conn:
                sealed = await seal(conn, service, home)
                # due, or the clock was moved back (a test clock given back to the real one)
                if next_prune is None or not next_prune - PRUNE_EVERY <= now < next_prune:
                    next_prune = now + PRUNE_EVERY
                    try:
                        await prune(conn, service, home, now, retention_days)
                    except OUTAGES:
                        raise  # the database away: the runtime's guard waits it out
                    except Exception:
                        log.exception("pruning %s's audit trail failed; trying again in %s", service, PRUNE_EVERY)
            if len(sealed) < SEAL_BATCH:
                await asyncio.sleep(SEAL_SECONDS)

    return sealing_loop


# A refusal's record waits for its answer at most this long: a database that hangs (a partition)
# delays the answer by no more, and the answer says what happened.
WRITE_SECONDS = 2.0
_DATABASE_AWAY = DATABASE_UNAVAILABLE.name  # the answer already says the database is away


class AuditMiddleware:
    """Opens each request's `Pending` record and writes what no transaction of the request did —
    a refusal (with its code), an error, a state-changing request that committed nothing — before
    the answer leaves: whoever is told the outcome can find its record. Plain ASGI, like the
    service's other middlewares."""

    def __init__(self, app: ASGIApp, service: str, database: Database, clock: Clock) -> None:
        self.app = app
        self.service, self.database, self.clock = service, database, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        this = Pending(self.service, self.clock, scope, wanted=scope["method"] in STATE_CHANGING)
        token = _pending.set(this)
        held: list[Message] = []  # a refusal's answer, until its code is read and recorded
        problem = bytearray()

        async def send_once_recorded(message: Message) -> None:
            recorded = this.wanted and scope.get("route") is not None
            if message["type"] == "http.response.start" and recorded:
                if message["status"] < 400:
                    if not this.written:
                        await self._write(this, OK)
                else:
                    held.append(message)
                    return
            elif held:
                held.append(message)
                if len(problem) < _PROBLEM_BYTES:
                    problem.extend(message.get("body", b"")[:_PROBLEM_BYTES])
                if message.get("more_body", False):
                    return
                await self._write(this, _code_of(bytes(problem)) or f"http.{held[0]['status']}")
                for one in held:
                    await send(one)
                held.clear()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_once_recorded)
        except BaseException:
            if this.wanted and scope.get("route") is not None:
                await self._write(this, "error")
            raise
        finally:
            _pending.reset(token)

    async def _write(self, this: Pending, outcome: str) -> None:
        """One record in a transaction of its own. A read is recorded only when it showed personal
        data (`note_read`); a request no route took (a mistyped URL's 404) acted on nothing."""
        if not self.database.opened:  # an app built without starting (the unit tests' fakes): no database
            return
        if outcome == _DATABASE_AWAY:
            log.warning("audit record of %s %s not written: the database is away", this.scope["method"],
                        this.scope["path"])
            return
        try:
            async with asyncio.timeout(WRITE_SECONDS), self.database.transaction() as conn:
                await write_records(conn, [this.entry(outcome)])
            committed([this])
        except OUTAGES as exc:  # the database away: the request's own answer says so already
            log.warning("audit record of %s %s not written: %s", this.scope["method"], this.scope["path"], exc)


def _code_of(body: bytes) -> str | None:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return code if isinstance(code, str) else None


# --- the auditor's search ------------------------------------------------------------------------
_COLUMNS = ("id, seq, at, actor, roles, town_code, action, target_type, target_id, outcome, client, forwarded_for,"
            " correlation_id, prev_hash, hash")
_FILTERS = (
    " FROM audit_records WHERE ($1::text[] IS NULL OR town_code = ANY($1)) AND ($2::text IS NULL OR actor = $2)"
    " AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR action LIKE $4 || '%')"
    " AND ($5::text IS NULL OR target_id = $5) AND ($6::text IS NULL OR outcome = $6)"
    " AND ($7::timestamptz IS NULL OR at >= $7) AND ($8::timestamptz IS NULL OR at < $8) AND action <> $10")
_SEARCH = f"SELECT {_COLUMNS}{_FILTERS} AND ($9::bigint IS NULL OR id < $9) ORDER BY id DESC LIMIT $11"
# A date range is read newest first by time, backwards along the time index from the range's end:
# a page costs its own records, wherever the range lies in the year. Ordered by id, as the other
# searches are, PostgreSQL (not knowing that ids grow with time) walked back from the newest
# record to the range: for a week of a county-year's oldest month, millions of rows, seconds.
# The page after record $9 holds what comes after it in that order (its time bounds the scan).
_AFTER = (" AND ($9::bigint IS NULL OR (at <= (SELECT at FROM audit_records WHERE id = $9)"
          " AND (at, id) < (SELECT at, id FROM audit_records WHERE id = $9)))")
_SEARCH_IN_RANGE = f"SELECT {_COLUMNS}{_FILTERS}{_AFTER} ORDER BY at DESC, id DESC LIMIT $11"


def search_statement(towns: Sequence[str] | None, query: AuditQuery) -> tuple[str, list[Any]]:
    """The statement `search` runs and its arguments (bench/scale EXPLAINs the same)."""
    exact, prefix = (None, query.action) if query.action and query.action.endswith(".") else (query.action, None)
    in_range = query.since is not None or query.until is not None
    return _SEARCH_IN_RANGE if in_range else _SEARCH, [
        list(towns) if towns is not None else None, query.actor, exact, prefix, query.target, query.outcome,
        query.since, query.until, query.before, audit.PRUNE_ACTION if query.action != audit.PRUNE_ACTION else "",
        query.limit + 1]


async def search(pool: asyncpg.Pool, towns: Sequence[str] | None, query: AuditQuery) -> list[asyncpg.Record]:
    """Records matching `query` in `towns` (None: every record, the county auditor's), newest
    first: by time within a date range, else as written; a prune's checkpoints only when asked
    for by their action."""
    statement, arguments = search_statement(towns, query)
    return await pool.fetch(statement, *arguments)


# --- verify and prune ---------------------------------------------------------------------------
_BATCH = 5000  # rows per fetch while walking a chain: memory stays flat over a county-year


async def _sealed(conn: asyncpg.Connection, service: str) -> AsyncIterator[Record]:
    async for r in conn.cursor(
            "SELECT seq, prev_hash, hash, at, actor, roles, town_code, action, target_type, target_id, outcome, client,"
            " forwarded_for, correlation_id, detail FROM audit_log ORDER BY seq", prefetch=_BATCH):
        yield Record(**_fields(_entry(service, r)), seq=r["seq"], prev_hash=r["prev_hash"], hash=r["hash"])


def _fields(entry: Entry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in Entry.__dataclass_fields__}


async def verify_chain(conn: asyncpg.Connection, service: str) -> Break | None:
    """The first break of the service's chain, or None: one snapshot, streamed oldest first.
    Records not sealed yet (written in the last moments, in audit_pending) are not part of it."""
    check = audit.ChainCheck()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head")
        async for one in _sealed(conn, service):
            if check.feed(one) is not None:
                break
    return check.end(head["seq"], head["hash"])


@dataclass(frozen=True)
class Pruned:
    count: int
    through_seq: int | None


async def prune(conn: asyncpg.Connection, service: str, home: str, now: datetime, retention_days: int) -> Pruned:
    """Delete the sealed records older than the retention (the oldest, by number) and seal the
    checkpoint that vouches for the new oldest one, in one transaction."""
    cutoff = audit.retention_cutoff(now, retention_days)
    async with conn.transaction():
        await _seal_locked(conn, service, home, SEAL_BATCH)  # takes the head: no pass seals meanwhile
        last = await conn.fetchrow(
            "SELECT seq, hash FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log WHERE at < $1)", cutoff)
        if last is None:
            return Pruned(0, None)
        await conn.execute("SELECT set_config('townflow.audit_prune', 'on', true)")  # the trigger lets it delete
        count = int((await conn.execute("DELETE FROM audit_log WHERE seq <= $1", last["seq"])).split()[-1])
        await conn.execute("SELECT set_config('townflow.audit_prune', '', true)")
        await write_records(conn, [audit.checkpoint(service, now, last["seq"], last["hash"], count, cutoff)])
        await _seal_locked(conn, service, home, SEAL_BATCH)
    return Pruned(count, last["seq"])


async def refresh_audit_gauges(pool: asyncpg.Pool, service: str) -> None:
    """The unsealed backlog and its age: group-wide, set by the replica that reports for the service."""
    stats = await pool.fetchrow("SELECT count(*) AS n, min(at) AS oldest FROM audit_pending")
    AUDIT_UNSEALED.labels(service).set(stats["n"])
    oldest = stats["oldest"]
    AUDIT_UNSEALED_AGE.labels(service).set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0)


def home_of(county: County) -> str:
    """The town code of an audit event that has no town: the county's code, or the only town's."""
    return county.info.code if county.info is not None else next(iter(county.towns))


def main(argv: Sequence[str], settings: ServiceSettings) -> int:
    """`python -m <service> audit verify|prune`: exit 0 when the chain holds (or was pruned), 1
    naming the first broken record."""
    parser = argparse.ArgumentParser(prog=f"python -m {settings.service_name} audit")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="recompute the audit chain; name the first broken record")
    sub.add_parser("prune", help=f"delete records older than TOWNFLOW_AUDIT_RETENTION_DAYS "
                                 f"(at least {audit.MIN_RETENTION_DAYS}) behind a checkpoint")
    args = parser.parse_args(list(argv))
    return asyncio.run(_run(args.command, settings))


async def _run(command: str, settings: ServiceSettings) -> int:
    from .county import load_county

    pool = await create_pool(settings.database_url.get_secret_value(), 1, 2, service=settings.service_name)
    try:
        async with pool.acquire() as conn:
            now = await Clock().database_now(conn)
            if command == "verify":
                broken = await verify_chain(conn, settings.service_name)
                if broken is not None:
                    print(f"audit chain of {settings.service_name} broken at record {broken.seq}: {broken.reason}")
                    return 1
                print(f"audit chain of {settings.service_name} holds")
                return 0
            result = await prune(conn, settings.service_name, home_of(load_county(settings.town_dir)),
                                 now, settings.audit_retention_days)
            print(f"pruned {result.count} audit records of {settings.service_name}"
                  + (f" through {result.through_seq}" if result.through_seq else ""))
            return 0
    finally:
        await pool.close()


def cli(settings: ServiceSettings) -> None:
    """For a service's `__main__`: runs `audit ...` and exits when those are its arguments."""
    if sys.argv[1:2] == ["audit"]:
        sys.exit(main(sys.argv[2:], settings))
