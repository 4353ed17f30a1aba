"""Appraisal's rebuild shows where it is: progress lines with the replay's rate and the time left
(issue #16: a county-year's replay is long enough for someone to want to know)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer

from devstack.stack import REPO, Stack
from townflow_shared.events import TaskDispatched, TaskDispatchedData, new_event
from townflow_shared.kafka import topic_partitions

from .conftest import QINGHE, eventually
from .kafka_tools import group_caught_up, produce_together, topics_consumed_by

PROGRESS = re.compile(r"^  (\d+)/(\d+) \((\d+)%\), (\d+) msg/s, ETA (?:\d+h)?\d+m\d\ds$")
DONE = re.compile(r"^replayed (\d+) messages in [\d.]+s \((\d+) msg/s\): (\d+) applied, \d+ poison skipped$")
CONSUMED = topics_consumed_by("appraisal")


async def _messages(bootstrap: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(await topic_partitions(bootstrap, CONSUMED))).values())
    finally:
        await consumer.stop()


async def test_a_rebuild_prints_its_rate_and_time_left(stack: Stack, bootstrap: str) -> None:
    at = datetime.fromisoformat("2035-02-01T09:00:00+08:00")
    events = [new_event(TaskDispatched, TaskDispatchedData(
        task_id=str(uuid.uuid4()), request_id=rid, item_code="S005", kind="service", colour="yellow", village="V01",
        location="测试", lead_module="social", post="welfare", assignee="s014", assigned_via="A",
        respond_by=at + timedelta(hours=4), resolve_by=at + timedelta(days=5), dispatched_at=at),
        source="dispatch", town_code=QINGHE, subject=rid, correlation_id=rid, time=at)
        for rid in (str(uuid.uuid4()) for _ in range(12))]
    await produce_together(bootstrap, TaskDispatched.topic, [(e.key.encode(), e.model_dump_json().encode())
                                                             for e in events])
    await eventually(lambda: group_caught_up(bootstrap, "appraisal", CONSUMED), timeout=60,
                     what="appraisal to consume everything")
    total = await _messages(bootstrap)
    assert stack.postgres is not None
    database = f"appraisal_rebuild_{uuid.uuid4().hex[:8]}"
    stack.postgres.create_database(database)
    env = {**os.environ, **stack.services["appraisal"].env,
           # about ten batches whatever the session's tests wrote before, a line after each
           "TOWNFLOW_REBUILD_BATCH_MAX": str(max(1, total // 10)), "TOWNFLOW_REBUILD_PROGRESS_SECONDS": "0"}
    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "appraisal", "rebuild", "--into", stack.postgres.dsn(database), "--compare"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    progress = [m for line in lines if (m := PROGRESS.match(line))]
    assert len(progress) >= 5, result.stdout
    replayed = [int(m[1]) for m in progress]
    assert replayed == sorted(replayed) and replayed[-1] < total
    assert all(int(m[2]) == total for m in progress)
    done = next(m for line in lines if (m := DONE.match(line)))
    assert int(done[1]) == total and int(done[2]) > 0
    assert "figures identical to the live database" in result.stdout


async def test_a_rebuild_waits_out_a_failover_of_its_database(stack: Stack, bootstrap: str) -> None:
    """Its database read-only as a failover leaves it: the replay processes wait, say so, and go
    on once it is writable again — nothing skipped, the figures the live ones (SPEC §6.1)."""
    await eventually(lambda: group_caught_up(bootstrap, "appraisal", CONSUMED), timeout=60,
                     what="appraisal to consume everything")
    assert stack.postgres is not None
    database = f"appraisal_rebuild_{uuid.uuid4().hex[:8]}"
    stack.postgres.create_database(database)
    env = {**os.environ, **stack.services["appraisal"].env, "TOWNFLOW_REBUILD_WORKERS": "2",
           "TOWNFLOW_RETRY_MAX_SECONDS": "1"}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appraisal", "rebuild", "--into", stack.postgres.dsn(database), "--compare",
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert child.stdout is not None
    seen: list[str] = []

    async def a_line_with(text: str) -> None:
        while text not in (line := (await child.stdout.readline()).decode()):  # type: ignore[union-attr]
            assert line, "".join(seen)  # the end of its output, and no such line
            seen.append(line)
        seen.append(line)

    try:
        # Migrated and ready to replay: from here on its sessions are cut and new ones read-only.
        await asyncio.wait_for(a_line_with("replaying"), 120)
        await asyncio.to_thread(stack.postgres.set_read_only, database, True)
        await asyncio.wait_for(a_line_with("a batch failed"), 120)
        await asyncio.to_thread(stack.postgres.set_read_only, database, False)
        rest, _ = await asyncio.wait_for(child.communicate(), 600)
    finally:
        if child.returncode is None:
            child.kill()
    output = "".join(seen) + rest.decode()
    assert child.returncode == 0, output
    assert re.search(r"^  \[[01]\] a batch failed \(.*read-only", output, re.MULTILINE), output
    done = next(m for line in output.splitlines() if (m := DONE.match(line)))
    assert int(done[1]) == await _messages(bootstrap)
    assert "figures identical to the live database" in output
