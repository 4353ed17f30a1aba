"""Intake's record of who read citizens' personal data, and the task holders it decides from
(009_matter_reads.sql), on a database of the test's own: the appraisal office's filters (towns,
a period's bounds, one person), newest first and paged; a task's holder kept across events that
arrive out of order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from intake import flows
from intake.app import MIGRATIONS
from intake.store import PgStore, PgUnitOfWork
from townflow_shared.county import load_county
from townflow_shared.events import TaskDispatchedData
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import BAILU, QINGHE
from .db_tools import migrated

T0 = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)  # 23:00 on 31 March in the towns


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated(fresh_database, MIGRATIONS) as p:
        yield p


def _read(town: str, staff: str, at: datetime, ticket: str) -> dict[str, object]:
    return {"town_code": town, "read_at": at, "staff_id": staff, "basis": "assignee", "request_id": uuid.uuid4(),
            "ticket_no": ticket, "task_id": None}


async def test_the_record_is_filtered_by_town_period_and_person_newest_first_and_paged(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        store = PgStore(conn)
        for n, (town, staff, at) in enumerate([
                (QINGHE, "s049", T0 - timedelta(hours=1)), (QINGHE, "s048", T0), (QINGHE, "s049", T0),
                (QINGHE, "s049", T0 + timedelta(hours=1)),  # 00:00 on 1 April in the towns
                (BAILU, "s049", T0)]):
            await store.record_personal_data_read(_read(town, staff, at, f"{town}-20270331-{n:05d}"))
        march = (datetime(2027, 3, 1, tzinfo=UTC) - timedelta(hours=8), datetime(2027, 4, 1, tzinfo=UTC) - timedelta(hours=8))

        async def tickets(towns: list[str], since: datetime | None = None, until: datetime | None = None,
                          staff: str | None = None, limit: int = 10, offset: int = 0) -> list[str]:
            rows = await store.personal_data_reads(towns, since, until, staff, limit, offset)
            return [r["ticket_no"][-1:] for r in rows]

        assert await tickets([QINGHE]) == ["3", "2", "1", "0"]  # newest first; the same moment: the later read first
        assert await tickets([QINGHE, BAILU]) == ["3", "4", "2", "1", "0"]
        assert await tickets([QINGHE], *march) == ["2", "1", "0"]  # April's first minute is April's
        assert await tickets([QINGHE], *march, staff="s049") == ["2", "0"]
        assert await tickets([QINGHE], limit=2, offset=1) == ["2", "1"]
        assert await tickets([QINGHE], staff="s999") == []
        row = (await store.personal_data_reads([BAILU], None, None, None, 1, 0))[0]
        assert set(row.keys()) == {"town_code", "read_at", "staff_id", "basis", "ticket_no", "task_id"}


async def test_a_tasks_holder_is_kept_whichever_of_its_events_comes_first(pool: asyncpg.Pool) -> None:
    town = load_county(DEMO_COUNTY_DIR).towns[QINGHE]
    request_id = str(uuid.uuid4())
    dispatched = TaskDispatchedData(
        task_id="t-1", request_id=request_id, item_code="S001", kind="service", colour="yellow", village="V01",
        location="一组", lead_module="police", post="household", assignee="s049", assigned_via="A",
        respond_by=T0 + timedelta(hours=2), resolve_by=T0 + timedelta(days=3), dispatched_at=T0)
    async with pool.acquire() as conn, conn.transaction():
        uow = PgUnitOfWork(conn)
        await flows.hold_task(uow, town, "t-1", request_id, T0 + timedelta(minutes=5), "accepted")
        await flows.hold_task(uow, town, "t-1", request_id, T0, "dispatched", dispatched=dispatched)
        await flows.hold_task(uow, town, "t-2", request_id, T0 + timedelta(minutes=9), "dispatched",
                              dispatched=dispatched.model_copy(update={"task_id": "t-2", "assignee": "s050"}))
        held = [dict(r) for r in await uow.store.holders_of(uuid.UUID(request_id))]
    assert [(h["task_id"], h["assignee"], h["post"], h["lead_module"], h["status"]) for h in held] == [
        ("t-1", "s049", "household", "police", "accepted"), ("t-2", "s050", "household", "police", "dispatched")]
