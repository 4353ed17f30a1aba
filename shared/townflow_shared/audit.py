"""The audit trail's rules (等保 2.0 level 3, 安全审计; issue #28): what one record holds, how
records chain, how a chain is verified, how a route names its action, and how old records are
pruned behind a checkpoint. Plain functions, no I/O: audit_trail.py writes and reads them.

A record says who (the token's subject, roles and town), did what (a dotted action such as
`task.accept`) to what (a type and an id: a task, a matter's ticket number, a case — never a
citizen's name, phone or id number), with what outcome (`ok` or the refusal's code), when, from
which client address and under which correlation id. Each service keeps one chain: record n
carries the hash of record n-1, so a record deleted, altered or inserted out of turn is found.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS_HASH = "0" * 64  # the hash before a chain's first record
OK = "ok"
# The least retention 等保 2.0 level 3 accepts (网络安全法 §21: logs kept at least six months).
MIN_RETENTION_DAYS = 180
PRUNE_ACTION = "audit.prune"  # the checkpoint record a prune leaves
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class Entry:
    """One audited action, before it takes its place in a chain."""

    service: str
    at: datetime
    actor: str  # the token's `sub`; "" when the caller had no valid token (a citizen, a refusal)
    roles: tuple[str, ...]
    town: str | None  # the caller's town claim; None for the county's roles and anonymous callers
    action: str
    target_type: str
    target_id: str
    outcome: str  # OK, or the refusal's code
    client: str  # the peer's address as the service saw it
    forwarded_for: str  # X-Forwarded-For as it came (the console's user's address), unverified
    correlation_id: str  # the request's trace id: the same as the logs' and the spans'
    detail: Mapping[str, Any] = field(default_factory=dict)  # a checkpoint's facts; never personal data


@dataclass(frozen=True)
class Record(Entry):
    """An entry in its chain: its number, the hash of the one before, its own hash."""

    seq: int = 0
    prev_hash: str = GENESIS_HASH
    hash: str = ""


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # microseconds: PostgreSQL keeps them


_HASHED = ("service", "at", "actor", "roles", "town", "action", "target_type", "target_id", "outcome", "client",
           "forwarded_for", "correlation_id", "detail")  # Entry's fields, with `seq` beside them


def canonical(entry: Entry, seq: int) -> str:
    """The bytes a record's hash covers: sorted keys, no spaces, UTF-8, the time in UTC."""
    values = {name: getattr(entry, name) for name in _HASHED}
    values |= {"seq": seq, "at": _utc(entry.at), "roles": sorted(entry.roles), "detail": dict(entry.detail)}
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(entry: Entry, seq: int, prev_hash: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(entry, seq)}".encode()).hexdigest()


def chained(entries: Iterable[Entry], head_seq: int, head_hash: str) -> list[Record]:
    """`entries` appended after the chain's head (its last number and hash), in order."""
    records = []
    for entry in entries:
        head_seq += 1
        record_hash = chain_hash(entry, head_seq, head_hash)
        records.append(Record(**{name: getattr(entry, name) for name in _HASHED}, seq=head_seq, prev_hash=head_hash,
                              hash=record_hash))
        head_hash = record_hash
    return records


@dataclass(frozen=True)
class Break:
    """The first record at which a chain does not hold, and why."""

    seq: int
    reason: str


class ChainCheck:
    """Verifies a chain fed oldest record first (`feed`), then its head (`end`): the first break,
    or None. Records stream through it, so a county-year is checked in flat memory. The oldest
    record continues the genesis hash, or the record a checkpoint says the prune before it removed
    last (`PRUNE_ACTION`; the checkpoint's own place in the chain vouches for it)."""

    def __init__(self) -> None:
        self.first: Record | None = None
        self.last: Record | None = None
        self.vouched: dict[int, str] = {}  # through_seq -> through_hash of each checkpoint seen
        self.broken: Break | None = None

    def feed(self, record: Record) -> Break | None:
        if self.broken is None:
            self.broken = self._check(record)
        return self.broken

    def _check(self, record: Record) -> Break | None:
        previous = self.last
        if previous is None:
            self.first = record
        elif record.seq != previous.seq + 1:
            return Break(previous.seq + 1, f"missing: record {previous.seq} is followed by {record.seq}")
        elif record.prev_hash != previous.hash:
            return Break(record.seq, "prev_hash is not the hash of the record before")
        if chain_hash(record, record.seq, record.prev_hash) != record.hash:
            return Break(record.seq, "altered: its hash does not match its content")
        if record.action == PRUNE_ACTION:
            self.vouched[int(record.detail["through_seq"])] = str(record.detail["through_hash"])
        self.last = record
        return None

    def end(self, head_seq: int, head_hash: str) -> Break | None:
        if self.broken is not None:
            return self.broken
        first, last = self.first, self.last
        if first is None or last is None:
            return None if head_seq == 0 else Break(head_seq, "missing: the chain is empty")
        if first.seq == 1:
            if first.prev_hash != GENESIS_HASH:
                return Break(1, "the first record does not start from the genesis hash")
        elif self.vouched.get(first.seq - 1) != first.prev_hash:
            return Break(first.seq - 1, f"missing: the records before {first.seq} are gone without a checkpoint")
        if (last.seq, last.hash) != (head_seq, head_hash):
            return Break(last.seq + 1, f"missing: the chain's head is record {head_seq}, the last found {last.seq}")
        return None


def verify(records: Iterable[Record], head_seq: int, head_hash: str) -> Break | None:
    """The first break of `records` (oldest first) as a chain ending at the head, or None."""
    check = ChainCheck()
    for record in records:
        if check.feed(record) is not None:
            break
    return check.end(head_seq, head_hash)


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Records before this may be pruned; a retention under the legal minimum is refused."""
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(f"audit retention {retention_days} days is under the minimum of {MIN_RETENTION_DAYS}")
    return now - timedelta(days=retention_days)


def checkpoint(service: str, now: datetime, through_seq: int, through_hash: str, pruned: int,
               cutoff: datetime) -> Entry:
    """The record a prune appends: the last pruned record's number and hash, so the chain's new
    oldest record can still be verified (`verify`)."""
    return Entry(service=service, at=now, actor=service, roles=(), town=None, action=PRUNE_ACTION,
                 target_type="audit_log", target_id=str(through_seq), outcome=OK, client="", forwarded_for="",
                 correlation_id="", detail={"through_seq": through_seq, "through_hash": through_hash,
                                            "pruned": pruned, "before": _utc(cutoff)})


@dataclass(frozen=True)
class Action:
    """What a route's request does: the action's code and the kind of record it acts on, and
    which of the path's parameters names that record (None: a new one, or none)."""

    code: str
    target_type: str
    target_param: str | None


def _singular(segment: str) -> str:
    name = segment.replace("-", "_")
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def action_of(method: str, template: str, named: str | None = None) -> Action:
    """The action a route's template names: `/v1/tasks/{task_id}/extension/approve` is
    `task.extension.approve` on task `task_id`; a POST to a collection (`/v1/requests`) is
    `request.create`. `named` (a route's `x-audit-action`) replaces the derived code."""
    parts = [p for p in template.strip("/").split("/") if p]
    if parts and parts[0].startswith("v") and parts[0][1:].isdigit():
        parts = parts[1:]
    if not parts:
        return Action(named or method.lower(), "service", None)
    target_type = _singular(parts[0])
    param = parts[1][1:-1] if len(parts) > 1 and parts[1].startswith("{") else None
    rest = [p.replace("-", "_") for p in parts[(2 if param else 1):] if not p.startswith("{")]
    verb = ".".join(rest) if rest else _BY_METHOD.get(method, method.lower())
    return Action(named or f"{target_type}.{verb}", target_type, param)

