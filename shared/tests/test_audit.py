"""The audit trail's rules (townflow_shared.audit): chaining, verifying, pruning, naming actions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from townflow_shared import audit
from townflow_shared.audit import GENESIS_HASH, Entry, Record

AT = datetime(2027, 3, 1, 1, 2, 3, 456789, tzinfo=UTC)


def _entry(n: int, **changes: object) -> Entry:
    entry = Entry(service="dispatch", at=AT + timedelta(minutes=n), actor=f"s{n:03d}", roles=("staff",),
                  town="321003104", action="task.accept", target_type="task", target_id=f"t{n}", outcome="ok",
                  client="10.0.0.1", forwarded_for="", correlation_id=f"{n:032x}")
    return replace(entry, **changes)  # type: ignore[arg-type]


def _chain(count: int) -> list[Record]:
    return audit.chained([_entry(n) for n in range(count)], 0, GENESIS_HASH)


def test_records_chain_from_the_genesis_hash_each_on_the_one_before() -> None:
    records = _chain(3)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert audit.verify(records, 3, records[-1].hash) is None


def test_appending_continues_the_head() -> None:
    first = _chain(2)
    more = audit.chained([_entry(7)], first[-1].seq, first[-1].hash)
    assert more[0].seq == 3 and more[0].prev_hash == first[-1].hash
    assert audit.verify([*first, *more], 3, more[0].hash) is None


def test_the_hash_covers_every_field_and_the_time_to_the_microsecond() -> None:
    entry = _entry(1)
    base = audit.chain_hash(entry, 1, GENESIS_HASH)
    for change in ({"actor": "s999"}, {"roles": ("staff", "admin")}, {"town": None}, {"action": "task.complete"},
                   {"target_id": "t9"}, {"outcome": "task.not_assignee"}, {"client": "10.0.0.2"},
                   {"forwarded_for": "1.2.3.4"}, {"correlation_id": "x"}, {"at": AT + timedelta(microseconds=1)},
                   {"detail": {"a": 1}}):
        assert audit.chain_hash(replace(entry, **change), 1, GENESIS_HASH) != base, change  # type: ignore[arg-type]
    assert audit.chain_hash(entry, 2, GENESIS_HASH) != base
    assert audit.chain_hash(entry, 1, "1" * 64) != base


def test_the_canonical_form_is_the_same_whatever_the_offset_or_role_order() -> None:
    utc = _entry(1, roles=("module_leader", "staff"))
    local = replace(utc, at=utc.at.astimezone(ZoneInfo("Asia/Shanghai")), roles=("staff", "module_leader"))
    assert audit.canonical(local, 1) == audit.canonical(utc, 1)


def test_an_altered_record_is_named() -> None:
    records = _chain(4)
    records[2] = replace(records[2], outcome="ok", actor="someone else")
    broken = audit.verify(records, 4, records[-1].hash)
    assert broken is not None and broken.seq == 3 and "altered" in broken.reason


def test_a_deleted_record_is_named() -> None:
    records = _chain(4)
    del records[1]
    broken = audit.verify(records, 4, records[-1].hash)
    assert broken is not None and broken.seq == 2 and "missing" in broken.reason


def test_a_deleted_tail_is_found_by_the_head() -> None:
    records = _chain(4)
    broken = audit.verify(records[:3], 4, records[-1].hash)
    assert broken is not None and broken.seq == 4


def test_a_record_rehashed_after_an_edit_breaks_the_next_link() -> None:
    records = _chain(3)
    edited = replace(records[1], actor="x")
    records[1] = replace(edited, hash=audit.chain_hash(edited, 2, edited.prev_hash))
    broken = audit.verify(records, 3, records[-1].hash)
    assert broken is not None and broken.seq == 3 and "prev_hash" in broken.reason


def test_a_missing_beginning_needs_a_checkpoint() -> None:
    records = _chain(5)
    broken = audit.verify(records[2:], 5, records[-1].hash)
    assert broken is not None and broken.seq == 2


def test_a_prune_leaves_a_checkpoint_that_vouches_for_the_new_oldest_record() -> None:
    records = _chain(5)
    cutoff = AT + timedelta(minutes=2)
    mark = audit.chained([audit.checkpoint("dispatch", AT + timedelta(days=200), records[1].seq, records[1].hash, 2,
                                           cutoff)],
                         records[-1].seq, records[-1].hash)
    kept = [*records[2:], *mark]
    assert mark[0].action == audit.PRUNE_ACTION and mark[0].detail["through_seq"] == 2
    assert audit.verify(kept, 6, mark[0].hash) is None
    # a forged checkpoint hash is caught: the checkpoint is in the chain too
    forged = replace(mark[0], detail={**mark[0].detail, "through_hash": "f" * 64})
    broken = audit.verify([*records[2:], forged], 6, mark[0].hash)
    assert broken is not None and broken.seq == 6


def test_the_retention_is_at_least_180_days() -> None:
    now = datetime(2027, 12, 31, tzinfo=UTC)
    assert audit.retention_cutoff(now, 180) == now - timedelta(days=180)
    assert audit.retention_cutoff(now, 365) == now - timedelta(days=365)
    with pytest.raises(ValueError, match="180"):
        audit.retention_cutoff(now, 179)


@pytest.mark.parametrize(("method", "template", "named", "expected"), [
    ("POST", "/v1/tasks/{task_id}/accept", None, ("task.accept", "task", "task_id")),
    ("POST", "/v1/tasks/{task_id}/extension/approve", None, ("task.extension.approve", "task", "task_id")),
    ("POST", "/v1/requests", None, ("request.create", "request", None)),
    ("POST", "/v1/requests/{ticket_no}/merge", None, ("request.merge", "request", "ticket_no")),
    ("POST", "/v1/staff/{staff_id}/off-post", None, ("staff.off_post", "staff", "staff_id")),
    ("POST", "/v1/random-plans", None, ("random_plan.create", "random_plan", None)),
    ("POST", "/v1/what-if", "what_if.run", ("what_if.run", "what_if", None)),
    ("DELETE", "/v1/cases/{case_id}", None, ("case.delete", "case", "case_id")),
])
def test_a_route_names_its_action_and_target(method: str, template: str, named: str | None,
                                             expected: tuple[str, str, str | None]) -> None:
    assert audit.action_of(method, template, named) == audit.Action(*expected)

