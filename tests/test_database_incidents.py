"""Database incidents under load on two replicas of every service, as a managed PostgreSQL has
them: dispatch's database fails over (its sessions cut, new ones read-only) for a few seconds,
then PostgreSQL stops altogether for a few seconds, while matters are filed through intake with
Idempotency-Keys and retried until acknowledged. An outage is not poison (SPEC §6.1): afterwards
every acknowledged matter has exactly one task in dispatch and is counted once by appraisal, and
no `.dlq` topic holds a valid event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from bench.chaos import (
    consumed_topics,
    dead_letters,
    file_steadily,
    judge_dead_letters,
    matter_counts,
    ready_after,
    settle,
)
from devstack.stack import Stack

from .conftest import StackFactory, eventually

READ_ONLY_SECONDS = 5.0
STOPPED_SECONDS = 5.0
MATTERS = 60
RATE = 3.0  # matters per second: the filing spans both incidents


@pytest.fixture(scope="module")
def incident_stack(replicated_stack: StackFactory) -> Stack:
    return replicated_stack(2)


@pytest.mark.timeout(420)
async def test_failover_and_outage_of_the_database_lose_nothing_count_nothing_twice_and_dead_letter_nothing(
        incident_stack: Stack) -> None:
    stack = incident_stack
    assert stack.kafka is not None
    acknowledged: dict[str, str] = {}
    filing = asyncio.create_task(file_steadily(stack, f"db-incident-{uuid.uuid4().hex[:8]}", MATTERS, RATE,
                                               acknowledged))

    async def flowing() -> bool:
        return len(acknowledged) >= 5

    await eventually(flowing, what="the first matters acknowledged")

    await asyncio.to_thread(stack.make_database_read_only, "dispatch")
    await asyncio.sleep(READ_ONLY_SECONDS)  # the incident's length, not a wait for a condition
    await asyncio.to_thread(stack.make_database_writable, "dispatch")
    await asyncio.to_thread(stack.stop_postgres)
    await asyncio.sleep(STOPPED_SECONDS)
    await asyncio.to_thread(stack.start_postgres)
    recovery = await ready_after(stack, since=time.monotonic(), timeout=60)

    await filing
    consumed = consumed_topics()
    settled = await settle(stack, consumed, timeout=120)

    # Judged first, settled or not: a dead-lettered event is never retried, so it is the cause of
    # whatever else is missing.
    letters = judge_dead_letters(await dead_letters(stack.kafka.bootstrap), [], consumed)
    assert letters["valid_events_dead_lettered"] == 0, (
        f"{letters['valid_events_dead_lettered']} valid events were dead-lettered during a database incident"
        " (only poison may be): " + json.dumps(letters["valid_events_dead_lettered_reasons"], ensure_ascii=False))
    assert settled, "consumers did not catch up, or outboxes did not empty, within 120 s of the incidents"
    counts = await matter_counts(stack, list(acknowledged.values()))
    assert counts == {"matters_acknowledged": MATTERS, "lost_in_dispatch": 0, "counted_twice_in_dispatch": 0,
                      "lost_in_appraisal": 0, "counted_twice_in_appraisal": 0}, counts
    assert recovery <= 30.0, f"every replica ready {recovery}s after the database came back"
