"""Appraisal's one way of taking in events (flows.apply_batch) on a real database of the test's
own: the same events applied one per transaction and all in one batch give the same figures and
totals equal to the sums of the tasks' contributions; a month's read touches that month's rows
only, however many months the database holds (issue #16)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from appraisal import flows, handlers, store, unit_of_work
from appraisal.app import MIGRATIONS
from appraisal.bulletin import Workbooks
from appraisal.settings import AppraisalSettings
from devstack.postgres import Postgres
from townflow_shared import events
from townflow_shared.clock import Clock
from townflow_shared.county import County, load_county
from townflow_shared.db import SHARED_MIGRATIONS, Database, create_pool, migrate
from townflow_shared.events import Envelope, new_event
from townflow_shared.settings import DEMO_TOWN_DIR

from ..conftest import QINGHE

COUNTY: County = load_county(DEMO_TOWN_DIR)
TOWN = COUNTY.town(QINGHE)
assert TOWN is not None


async def _database(dsn: str) -> asyncpg.Pool:
    pool = await create_pool(dsn, 1, 2)
    await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
    return pool


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await _database(fresh_database)
    yield p
    await p.close()


def _event(event_type: type[Envelope], data: Any, request_id: str, at: datetime) -> Envelope:
    return new_event(event_type, data, source="dispatch", town_code=QINGHE, subject=request_id,
                     correlation_id=request_id, time=at)


def matter(start: datetime, *, post: str = "welfare", redispatch_to: str | None = None, overdue: bool = False,
           rework: bool = False, rating: str | None = "satisfied") -> list[Envelope]:
    """A matter's events in the order a consumer would see them: filed, dispatched (and, if
    `redispatch_to`, returned as invalid and dispatched again), accepted, completed (twice around
    a failed closure check with `rework`), supervised overdue, rated."""
    rid, tid = str(uuid.uuid4()), str(uuid.uuid4())
    p = TOWN.posts[post]
    history: list[Envelope] = [_event(events.RequestFiled, events.RequestFiledData(
        request_id=rid, ticket_no=f"T{rid[:6]}", channel="window", item_code="S005", colour="orange",
        description="测试", village="V02", location="测试", citizen_ref="c" * 64, filed_at=start), rid, start)]

    def dispatched(task_id: str, to: str, redispatch_of: str | None = None) -> Envelope:
        return _event(events.TaskDispatched, events.TaskDispatchedData(
            task_id=task_id, request_id=rid, item_code="S005", kind="service", colour="orange", village="V02",
            location="测试", lead_module=TOWN.posts[to].module, post=to, assignee=TOWN.posts[to].a_holder,
            assigned_via="A", respond_by=start + timedelta(hours=4), resolve_by=start + timedelta(days=3),
            dispatched_at=start, redispatch_of=redispatch_of, invalid_return=bool(redispatch_of) or None), rid, start)

    history.append(dispatched(tid, post))
    if redispatch_to:
        first, tid = tid, str(uuid.uuid4())
        history.append(dispatched(tid, redispatch_to, redispatch_of=first))
        p = TOWN.posts[redispatch_to]
    history.append(_event(events.TaskAccepted, events.TaskAcceptedData(task_id=tid, request_id=rid, by=p.a_holder,
                                                        accepted_at=start + timedelta(hours=1)), rid, start))
    done = start + timedelta(days=1)
    history.append(_event(events.TaskCompleted, events.TaskCompletedData(task_id=tid, request_id=rid, by=p.a_holder, resolution="办结",
                                                          completed_at=done, on_time=True), rid, done))
    if rework:
        history.append(_event(events.TaskVerified, events.TaskVerifiedData(task_id=tid, request_id=rid, passed=False, note="返工",
                                                            by="s030", at=done), rid, done))
        again = done + timedelta(days=3)
        history.append(_event(events.TaskCompleted, events.TaskCompletedData(
            task_id=tid, request_id=rid, by=p.a_holder, resolution="办结", completed_at=again, on_time=False),
            rid, again))
    if overdue:
        history.append(_event(events.TaskSupervised, events.TaskSupervisedData(task_id=tid, request_id=rid, level="overdue",
                                                                notified=[p.a_holder], at=done), rid, done))
    if rating:
        history.append(_event(events.RequestRated, events.RequestRatedData(request_id=rid, ticket_no=f"T{rid[:6]}",
                                                            rating=rating, rated_at=done), rid, done))  # type: ignore[arg-type]
    return history


def inspection(start: datetime, officers: list[str], tasks: int) -> Envelope:
    iid = str(uuid.uuid4())
    return new_event(events.InspectionDone, events.InspectionDoneData(
        inspection_id=iid, target="SITE-1", task_ids=[str(uuid.uuid4()) for _ in range(tasks)], units=[],
        officers=officers, findings=[], started_at=start, finished_at=start), source="enforcement",
        town_code=QINGHE, subject=iid, correlation_id=iid, time=start)


async def apply(pool: asyncpg.Pool, history: list[Envelope], publishing: bool = False) -> None:
    """The events through appraisal's handlers into one consumer transaction's batch, applied."""
    batches = flows.Batches(COUNTY, publishing)
    database = Database()
    database.use(pool)
    deps = flows.Deps(settings=AppraisalSettings(), county=COUNTY, clock=Clock(), database=database,
                      unit_of_work=unit_of_work.postgres(database), batches=batches, workbooks=Workbooks())
    handler_of = dict(handlers.HANDLERS)
    async with pool.acquire() as conn, conn.transaction(), batches.scope(conn):
        for event in history:
            await handler_of[type(event)](conn, event, deps)


async def figures(pool: asyncpg.Pool, period: str) -> dict[str, list[dict[str, object]]]:
    return {kind: [flows.as_dict(f) for f in figs]
            for kind, figs in (await _month_figures(pool, period)).items()}


async def _month_figures(pool: asyncpg.Pool, period: str) -> dict[str, list[Any]]:
    async with pool.acquire() as conn:
        return await flows.month_figures(store.Store(conn), TOWN, period)  # type: ignore[return-value]


SUMS = """
SELECT subject_type, subject_id, period, sum(dispatched)::int AS dispatched, sum(resolved)::int AS resolved,
       sum(rated)::int AS rated, sum(overdue)::int AS overdue, sum(reworked)::int AS reworked,
       round(sum(points), 6) AS points FROM (
    SELECT 'staff' AS subject_type, assignee AS subject_id, period, c_dispatched AS dispatched,
           c_resolved AS resolved, c_rated AS rated, c_overdue AS overdue, c_reworked AS reworked,
           c_points::numeric AS points FROM task_facts WHERE assignee IS NOT NULL
    UNION ALL SELECT 'module', module, period, c_dispatched, c_resolved, c_rated, c_overdue, c_reworked,
           c_points::numeric FROM task_facts WHERE module IS NOT NULL
    UNION ALL SELECT 'village', village, period, c_dispatched, c_resolved, c_rated, c_overdue, c_reworked,
           c_points::numeric FROM task_facts WHERE village IS NOT NULL
    UNION ALL SELECT 'seconded_unit', seconded_unit, period, c_dispatched, c_resolved, c_rated, c_overdue,
           c_reworked, c_points::numeric FROM task_facts WHERE seconded_unit IS NOT NULL
    UNION ALL SELECT 'staff', staff_id, period, 0, 0, 0, 0, 0, points::numeric FROM inspection_points
    UNION ALL SELECT 'module', module, period, 0, 0, 0, 0, 0, points::numeric FROM inspection_points
      WHERE module IS NOT NULL
    UNION ALL SELECT 'seconded_unit', seconded_unit, period, 0, 0, 0, 0, 0, points::numeric FROM inspection_points
      WHERE seconded_unit IS NOT NULL) AS c
WHERE period IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
TOTALS = """SELECT subject_type, subject_id, period, dispatched, resolved, rated, overdue, reworked,
            round(points, 6) AS points FROM subject_totals ORDER BY 1, 2, 3"""


async def test_one_batch_and_one_event_at_a_time_give_the_same_figures(
        pool: asyncpg.Pool, postgres: Postgres) -> None:
    start = datetime.fromisoformat("2033-03-06T09:00:00+08:00")
    history = [e for n in range(6) for e in matter(start + timedelta(hours=n), overdue=n % 3 == 0, rework=n == 1,
                                                      rating=("satisfied", "unsatisfied", None)[n % 3])]
    # returned as invalid and redispatched within the batch: s024 is listed with no task and −3 points
    history += matter(start, post="agri-services", redispatch_to="veterans")
    history.append(inspection(start, ["s026", "s040"], 3))
    one_by_one_name = f"own_{uuid.uuid4().hex[:12]}"
    postgres.create_database(one_by_one_name)
    one_by_one = await _database(postgres.dsn(one_by_one_name))
    try:
        await apply(pool, history)
        for event in history:
            await apply(one_by_one, [event])
        batched = await figures(pool, "2033-03")
        assert batched == await figures(one_by_one, "2033-03")
        staff = {f["subject_id"]: f for f in batched["staff"]}
        assert staff["s014"]["counts"]["dispatched"] == 6  # type: ignore[index]
        assert staff["s014"]["counts"]["reworked"] == 1 and staff["s014"]["counts"]["overdue"] == 2  # type: ignore[index]
        assert staff["s024"]["counts"]["dispatched"] == 0 and staff["s024"]["points"] == -3  # type: ignore[index]
        assert staff["s040"]["points"] == 5 + 3 * 2  # one inspection of three tasks
        assert {f["subject_id"] for f in batched["seconded_unit"]} == {"land"}
        for db in (pool, one_by_one):
            assert [dict(r) for r in await db.fetch(TOTALS)] == [dict(r) for r in await db.fetch(SUMS)]
    finally:
        await one_by_one.close()


async def test_a_months_read_touches_only_that_months_rows(pool: asyncpg.Pool) -> None:
    """Twelve months held or one: reading a month reads that month's rows of subject_totals and
    no others (counted by PostgreSQL's own statistics of the transaction)."""
    async def tuples_read(period: str) -> tuple[int, int]:
        """(rows of subject_totals read by scans of any kind, subjects in the figures). The
        backend's counters also hold its earlier transactions' until they are flushed: the
        difference across the read, inside one transaction, is the read's own."""
        stats = ("SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
                 " WHERE relname = 'subject_totals'")
        async with pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval(stats)
            figs = await flows.month_figures(store.Store(conn), TOWN, period)
            after = await conn.fetchval(stats)
        return after - before, sum(len(f) for f in figs.values())

    async def hold_month(month: int) -> None:
        """A month of three matters, and as many staff as a large town has."""
        period = f"2034-{month:02d}"
        await apply(pool, [e for n in range(3) for e in matter(
            datetime.fromisoformat(f"{period}-10T09:00:00+08:00") + timedelta(hours=n))])
        await pool.execute("INSERT INTO subject_totals (town_code, subject_type, subject_id, period, dispatched)"
                           " SELECT $1, 'staff', 'x' || n, $2, 1 FROM generate_series(1, 300) AS n", QINGHE, period)
        await pool.execute("ANALYZE subject_totals")

    await hold_month(1)
    read_alone, subjects = await tuples_read("2034-01")
    assert subjects > 300 and read_alone == subjects
    for month in range(2, 13):
        await hold_month(month)
    assert await pool.fetchval("SELECT count(*) FROM subject_totals") == 12 * subjects
    assert await tuples_read("2034-01") == (read_alone, subjects)


def suspended(history: list[Envelope]) -> Envelope:
    """The matter's task suspended (挂起) after its dispatch: its figures gain one suspension."""
    task = next(e for e in history if isinstance(e, events.TaskDispatched))
    d = task.data
    return _event(events.TaskSuspended, events.TaskSuspendedData(
        task_id=d.task_id, request_id=d.request_id, category="awaiting_citizen", reason="等补正材料",
        requested_by=d.assignee, approved_by="s030", suspended_at=d.dispatched_at + timedelta(minutes=5),
        resolve_by=d.resolve_by, working_left_seconds=3600), d.request_id, d.dispatched_at)


async def test_suspensions_count_once_per_task_in_the_totals_and_the_suspension_rate(pool: asyncpg.Pool) -> None:
    start = datetime.fromisoformat("2035-05-07T09:00:00+08:00")
    twice, once, never = (matter(start + timedelta(hours=n)) for n in range(3))
    await apply(pool, [*twice, suspended(twice), *once, *never])
    await apply(pool, [suspended(once), suspended(twice)])  # a later batch: a second suspension of `twice`
    figs = await figures(pool, "2035-05")
    staff = {f["subject_id"]: f for f in figs["staff"]}
    assert staff["s014"]["counts"]["suspended"] == 2 and staff["s014"]["counts"]["dispatched"] == 3  # type: ignore[index]
    assert staff["s014"]["rates"]["suspension"] == 2 / 3  # type: ignore[index]
    assert {f["subject_id"]: f["rates"]["suspension"] for f in figs["village"]} == {"V02": 2 / 3}  # type: ignore[index]
    assert await pool.fetchval("SELECT sum(c_suspended) FROM task_facts") == 2
    assert await pool.fetchval(
        "SELECT suspended FROM subject_totals WHERE subject_type = 'staff' AND subject_id = 's014'") == 2


async def test_two_batches_of_one_villages_month_publish_its_figures_in_the_order_they_read_them(
        pool: asyncpg.Pool) -> None:
    """Two replicas' batches touch village V02 through different matters: A changes its totals
    (a new matter dispatched), B only touches them (a rating it already had, applied again: no
    task's facts or contribution change, so no row of task_facts or subject_totals is locked). B must wait for A's commit
    before it reads the month's figures, so the row it puts in the outbox comes after A's and
    carries figures that count A's matter: the rolling upgrade once saw the topic get them the
    other way round."""
    start = datetime.fromisoformat("2035-05-06T09:00:00+08:00")
    first = matter(start)
    await apply(pool, first)
    rated_again = next(e for e in first if isinstance(e, events.RequestRated))
    second = matter(start + timedelta(hours=2))[:2]  # filed and dispatched: V02's dispatched count + 1
    batches = flows.Batches(COUNTY, publishing=True)
    database = Database()
    database.use(pool)
    deps = flows.Deps(settings=AppraisalSettings(), county=COUNTY, clock=Clock(), database=database,
                      unit_of_work=unit_of_work.postgres(database), batches=batches, workbooks=Workbooks())
    handler_of = dict(handlers.HANDLERS)
    outbox = ("SELECT id, payload FROM outbox WHERE topic = $1 AND key = 'village:V02' ORDER BY id")

    async def batch_b(conn: asyncpg.Connection) -> None:
        async with conn.transaction(), batches.scope(conn):
            await handler_of[type(rated_again)](conn, rated_again, deps)

    async with pool.acquire() as a, pool.acquire() as b:
        b_pid = await b.fetchval("SELECT pg_backend_pid()")
        before = await a.fetchval("SELECT coalesce(max(id), 0) FROM outbox")  # the pool has two connections
        async with a.transaction():
            async with batches.scope(a):
                for event in second:
                    await handler_of[type(event)](a, event, deps)
            b_done = asyncio.create_task(batch_b(b))
            # pg_locks is read live (pg_stat_activity would be a snapshot within A's transaction)
            await _until(lambda: a.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", b_pid), b_done)
        await asyncio.wait_for(b_done, 10)
    rows = [r for r in await pool.fetch(outbox, events.ScoreUpdated.topic) if r["id"] > before]
    assert len(rows) == 2, rows
    a_row, b_row = (json.loads(r["payload"])["data"] for r in rows)
    assert str(rated_again.id) in b_row["cause_event_ids"]  # B's row is the later one
    assert str(second[-1].id) in a_row["cause_event_ids"]
    village = {f["subject_id"]: f for f in (await figures(pool, "2035-05"))["village"]}["V02"]
    assert (b_row["rates"], b_row["points"]) == (village["rates"], village["points"])


async def _until(condition: Callable[[], Awaitable[bool | None]], running: asyncio.Task[None]) -> None:
    """Wait until `condition` holds; fail if `running` ends first (it did not wait) or in 10 s."""
    async with asyncio.timeout(10):
        while not await condition():
            assert not running.done(), "batch B did not wait for batch A's commit"
            await asyncio.sleep(0.02)
