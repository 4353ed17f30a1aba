"""The audit trail on PostgreSQL (005_audit.sql, townflow_shared.audit_trail): records written by
many transactions at once and sealed by two replicas' passes at once make one unbroken chain; a
record updated or deleted behind the service's back is named by verify; prune leaves a checkpoint
verify accepts; a request's record commits with its change or not at all; the auditor's search
filters and pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from townflow_shared import audit, audit_trail
from townflow_shared.audit_api import AuditQuery
from townflow_shared.auth import Principal
from townflow_shared.clock import Clock
from townflow_shared.db import SHARED_MIGRATIONS, Database, create_pool, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR, ServiceSettings

from ..conftest import QINGHE
from .db_tools import migrated, plan_nodes

T0 = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)
HOME = "321003"


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated(fresh_database, max_size=8) as p:
        yield p


def _entry(n: int, at: datetime = T0, **changes: Any) -> audit.Entry:
    return replace(audit.Entry(
        service="dispatch", at=at, actor=f"s{n % 7:03d}", roles=("staff",), town=QINGHE, action="task.accept",
        target_type="task", target_id=f"task-{n}", outcome="ok", client="10.0.0.1", forwarded_for="",
        correlation_id=f"{n:032x}"), **changes)


async def _write(pool: asyncpg.Pool, *entries: audit.Entry) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await audit_trail.write_records(conn, entries)


async def _seal(pool: asyncpg.Pool, limit: int = audit_trail.SEAL_BATCH) -> int:
    async with pool.acquire() as conn:
        return len(await audit_trail.seal(conn, "dispatch", HOME, limit))


async def _append(pool: asyncpg.Pool, *entries: audit.Entry) -> None:
    await _write(pool, *entries)
    await _seal(pool)


async def _verify(pool: asyncpg.Pool) -> audit.Break | None:
    async with pool.acquire() as conn:
        return await audit_trail.verify_chain(conn, "dispatch")


async def test_two_replicas_writing_and_sealing_at_once_keep_one_unbroken_chain(
        pool: asyncpg.Pool, fresh_database: str) -> None:
    other = await create_pool(fresh_database, min_size=1, max_size=8)  # the second replica's pool
    try:
        async def sealing_while_written() -> None:
            while await pool.fetchval("SELECT count(*) FROM audit_log") < 203 or await _seal(pool, 7):
                await asyncio.gather(_seal(pool, 7), _seal(other, 5))

        await asyncio.gather(*(_write(pool if n % 2 else other, _entry(n)) for n in range(200)),
                             _write(pool, _entry(900), _entry(901), _entry(902)), sealing_while_written())
    finally:
        await other.close()
    seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM audit_log ORDER BY seq")]
    assert seqs == list(range(1, 204))
    assert await _verify(pool) is None
    # every record also left through the outbox, on the service's audit topic, in chain order
    outbox = await pool.fetch("SELECT topic, key, payload FROM outbox ORDER BY id")
    assert {(r["topic"], r["key"]) for r in outbox} == {("dispatch.audit.recorded.v1", "dispatch")}
    assert len(outbox) == 203


async def test_an_update_or_delete_is_refused_and_one_done_anyway_is_named_by_verify(pool: asyncpg.Pool) -> None:
    await _append(pool, *(_entry(n) for n in range(5)))
    await _write(pool, _entry(9))  # and one waiting to be sealed: as guarded
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE audit_log SET outcome = 'ok' WHERE seq = 2")
        for changed in ("UPDATE audit_pending SET actor = 's999'", "DELETE FROM audit_pending", "TRUNCATE audit_pending"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(changed)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log WHERE seq = 2")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE audit_log")
        # The database's owner can drop the guard: the chain still tells.
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_log SET actor = 's999' WHERE seq = 3")
    broken = await _verify(pool)
    assert broken is not None and broken.seq == 3 and "altered" in broken.reason
    async with pool.acquire() as conn:
        await conn.execute("UPDATE audit_log SET actor = 's002' WHERE seq = 3")
        assert await _verify(pool) is None
        await conn.execute("DELETE FROM audit_log WHERE seq = 2")
    broken = await _verify(pool)
    assert broken is not None and broken.seq == 2 and "missing" in broken.reason


async def test_prune_removes_what_is_past_the_retention_behind_a_checkpoint(pool: asyncpg.Pool) -> None:
    now = T0 + timedelta(days=400)
    await _append(pool, *(_entry(n, at=T0 + timedelta(days=n * 50)) for n in range(6)))  # days 0 to 250
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="180"):
            await audit_trail.prune(conn, "dispatch", HOME, now, 179)
        pruned = await audit_trail.prune(conn, "dispatch", HOME, now, 180)  # before day 220: days 0-200
    assert (pruned.count, pruned.through_seq) == (5, 5)
    rows = await pool.fetch("SELECT seq, action, detail FROM audit_log ORDER BY seq")
    assert [(r["seq"], r["action"]) for r in rows] == [(6, "task.accept"), (7, audit.PRUNE_ACTION)]
    assert rows[1]["detail"]["through_seq"] == 5 and rows[1]["detail"]["pruned"] == 5
    assert await _verify(pool) is None
    # appending goes on after the checkpoint, and a second prune vouches for its own cut
    await _append(pool, _entry(10, at=now))
    async with pool.acquire() as conn:
        again = await audit_trail.prune(conn, "dispatch", HOME, now + timedelta(days=200), 180)
    assert (again.count, again.through_seq) == (3, 8)  # the old checkpoint goes too: the new one vouches
    assert await _verify(pool) is None
    async with pool.acquire() as conn:
        nothing = await audit_trail.prune(conn, "dispatch", HOME, now + timedelta(days=200), 180)
    assert nothing.count == 0


def _request(method: str, path: str, service: str = "dispatch") -> audit_trail.Pending:
    class Route:
        path = "/v1/tasks/{task_id}/accept"
        openapi_extra = None

    scope = {"type": "http", "method": method, "path": path, "route": Route(), "path_params": {"task_id": "t-1"},
             "client": ("10.1.2.3", 5555), "headers": [(b"x-forwarded-for", b"192.0.2.7")]}
    pending = audit_trail.Pending(service, Clock(), scope, wanted=True)
    pending.actor = Principal(sub="s007", roles=frozenset({"staff"}), town=QINGHE)
    return pending


async def test_a_requests_record_commits_with_its_change_or_not_at_all(pool: asyncpg.Pool) -> None:
    database = Database()
    database.use(pool)
    units = database.units_of_work(lambda conn: conn)
    committed = _request("POST", "/v1/tasks/t-1/accept")
    token = audit_trail._pending.set(committed)
    try:
        async with units() as conn:
            await conn.execute("CREATE TABLE changed (n int)")
        with pytest.raises(RuntimeError):
            async with units() as conn:
                await conn.execute("INSERT INTO changed VALUES (1)")
                raise RuntimeError("refused after the change")
    finally:
        audit_trail._pending.reset(token)
    assert committed.written
    rows = await pool.fetch("SELECT actor, roles, town_code, action, target_type, target_id, outcome, client,"
                            " forwarded_for FROM audit_pending")  # committed; sealed by the next pass
    assert [dict(r) for r in rows] == [{
        "actor": "s007", "roles": ["staff"], "town_code": QINGHE, "action": "task.accept", "target_type": "task",
        "target_id": "t-1", "outcome": "ok", "client": "10.1.2.3", "forwarded_for": "192.0.2.7"}]


async def test_the_auditors_search_filters_and_pages_newest_first(pool: asyncpg.Pool) -> None:
    await _append(pool, *(_entry(n, at=T0 + timedelta(hours=n)) for n in range(10)),
                  _entry(10, at=T0 + timedelta(hours=10), town="321003105", action="case.steps", target_id="case-1", outcome="case.not_found"))

    async def found(towns: list[str] | None = None, **query: Any) -> list[int]:
        return [r["seq"] for r in await audit_trail.search(pool, towns, AuditQuery(**query))]

    assert await found(limit=3) == [11, 10, 9, 8]  # one more than the page: there is a next one
    assert await found(before=9, limit=2) == [8, 7, 6]
    assert await found(actor="s001") == [9, 2]
    assert await found(target="task-4") == [5]
    assert await found(action="case.") == [11]
    assert await found(action="task.accept", since=T0 + timedelta(hours=7)) == [10, 9, 8]
    assert await found(until=T0 + timedelta(hours=2)) == [2, 1]
    assert await found(outcome="case.not_found") == [11]
    assert await found([QINGHE], limit=20) == list(range(10, 0, -1))


async def test_a_date_range_is_read_newest_first_by_time_and_paged_without_gap_or_overlap(
        pool: asyncpg.Pool) -> None:
    """A date range is read by time, newest first (backwards along the time index: a page costs
    its own records wherever the range lies): a record written late with an early time stands at
    its time, a pending one among the sealed; the page after a record goes on from it."""
    await _append(pool, *(_entry(n, at=T0 + timedelta(hours=n)) for n in range(8)),
                  _entry(8, at=T0 + timedelta(hours=2, minutes=30)),  # written late, timed among the first
                  _entry(10, at=T0 + timedelta(hours=3)))  # the same time as task-3, written later
    await _write(pool, _entry(9, at=T0 + timedelta(hours=3, minutes=30)))  # not sealed yet
    week = AuditQuery(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=5))
    in_order = ["task-4", "task-9", "task-10", "task-3", "task-8", "task-2"]
    assert [r["target_id"] for r in await audit_trail.search(pool, None, week)] == in_order
    pages, before = [], None
    while True:
        rows = await audit_trail.search(pool, None, week.model_copy(update={"limit": 2, "before": before}))
        pages.append([r["target_id"] for r in rows[:2]])
        if len(rows) <= 2:
            break
        before = rows[1]["id"]
    assert pages == [in_order[0:2], in_order[2:4], in_order[4:6]]
    assert [r["target_id"] for r in await audit_trail.search(
        pool, None, week.model_copy(update={"actor": "s002"}))] == ["task-9", "task-2"]


def test_the_command_line_verifies_prunes_and_names_the_broken_record(fresh_database: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m <service> audit verify|prune`, as an operator runs it (audit_trail.main)."""
    settings = ServiceSettings(service_name="dispatch", database_url=SecretStr(fresh_database),
                               town_dir=DEMO_COUNTY_DIR, audit_retention_days=365)

    async def made() -> None:
        pool = await create_pool(fresh_database, min_size=1, max_size=2)
        await migrate(pool, [SHARED_MIGRATIONS])
        await _append(pool, *(_entry(n, at=datetime.now(UTC) - timedelta(days=400 - n)) for n in range(4)))
        await pool.close()

    asyncio.run(made())
    assert audit_trail.main(["verify"], settings) == 0
    assert "holds" in capsys.readouterr().out
    assert audit_trail.main(["prune"], settings) == 0
    assert "pruned 4 audit records of dispatch through 4" in capsys.readouterr().out  # all 4 past 365 days
    assert audit_trail.main(["verify"], settings) == 0

    async def tampered() -> None:
        conn = await asyncpg.connect(fresh_database)
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_log SET detail = '{\"through_seq\": 3, \"through_hash\": \"x\"}'")
        await conn.close()

    asyncio.run(tampered())
    capsys.readouterr()
    assert audit_trail.main(["verify"], settings) == 1
    assert "audit chain of dispatch broken at record 5" in capsys.readouterr().out


async def test_a_date_range_reads_the_records_waiting_to_be_sealed_by_time_however_large_their_table_grew(
        pool: asyncpg.Pool) -> None:
    """A burst through audit_pending (the sealer down a while, a history loaded) leaves the table as
    large on disk once sealed: its rows are deleted, its pages kept until a VACUUM gets its lock. A
    date range must read it by its time index (006_audit_pending_by_time.sql), not every page: the
    county-year of bench-scale saw dispatch's week searches at 127-171 ms, a scan of 450 MB of empty
    pages, against 8-15 ms."""
    await pool.execute("ALTER TABLE audit_pending SET (autovacuum_enabled = false)")  # keeps its pages, as a busy one
    await _write(pool, *(_entry(n, at=T0 + timedelta(seconds=n)) for n in range(20_000)))
    while await _seal(pool):
        pass
    assert await pool.fetchval("SELECT count(*) FROM audit_pending") == 0
    assert await pool.fetchval("SELECT pg_relation_size('audit_pending')") > 2_000_000  # the burst's pages kept
    await pool.execute("ANALYZE audit_pending")
    a_week_before = AuditQuery(since=T0 - timedelta(days=7), until=T0)
    statement, arguments = audit_trail.search_statement(None, a_week_before)
    explained = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *arguments)  # the pool decodes JSON
    scans = [(node["Node Type"], node.get("Relation Name")) for node in plan_nodes(explained[0]["Plan"])]
    assert ("Seq Scan", "audit_pending") not in scans, json.dumps(explained, indent=1)
    assert any(relation == "audit_pending" for _, relation in scans)
    assert await audit_trail.search(pool, None, a_week_before) == []
