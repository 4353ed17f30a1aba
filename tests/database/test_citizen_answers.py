"""Intake's record of what the citizen is told (issue #27, 008_citizen_answers.sql) on PostgreSQL:
each part of a matter's answer is set by the newest event that carries it, whatever order the
events arrive in, and only for a matter of the event's town."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from intake import flows
from intake.app import MIGRATIONS
from intake.personal_data import Keyring, new_key_spec
from intake.store import PgUnitOfWork
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import BAILU, QINGHE
from .db_tools import migrated

# The keyring intake seals the citizen with (its keys are the stack's in production; new ones here).
KEYRING = Keyring({"k1": new_key_spec()}, "k1", b"database-tier-lookup-key")
COUNTY = load_county(DEMO_COUNTY_DIR)
FILED = datetime.fromisoformat("2027-01-05T10:00:00+08:00")


def _filing() -> flows.Filing:
    town = COUNTY.towns[QINGHE]
    return flows.Filing(
        town=town, filed_by="s010", filer_scope="s010", idempotency_key=None, fingerprint="f",
        item=town.catalog["S001"], requested_colour=None, citizen_ref="0" * 64, trace_headers={},
        fields={"channel": "window", "description": "为新生儿办理户口登记", "village": "V01", "location": "一组",
                "target": None, "proxy_agent_id": None, "village_record_id": None, "citizen_name": "测试群众",
                "citizen_phone": "13800000000", "citizen_id_number": None})


async def test_each_part_of_the_answer_is_the_newest_events_and_only_the_towns(fresh_database: str) -> None:
    async with migrated(fresh_database, MIGRATIONS) as pool:
        async with pool.acquire() as conn, conn.transaction():
            (answer,) = await flows.file_requests(PgUnitOfWork(conn), [_filing()], FILED, KEYRING)
        assert isinstance(answer, tuple)
        request_id = answer[1]["request_id"]
        qinghe, bailu = COUNTY.towns[QINGHE], COUNTY.towns[BAILU]

        async def record(town: object, at: datetime, **parts: object) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await flows.record_answer(PgUnitOfWork(conn), town, request_id, at, **parts)  # type: ignore[arg-type]

        def later(hours: int) -> datetime:
            return FILED + timedelta(hours=hours)

        await record(qinghe, later(3), promised_by=later(100))  # an extension, before the dispatch it follows
        await record(qinghe, later(1), module="social", promised_by=later(50))  # the dispatch, arriving late
        await record(qinghe, later(5), reply="已为您办理完毕。")
        await record(qinghe, later(4), reply="更早的答复")  # an older completion, arriving late
        await record(bailu, later(6), reply="另一个镇的事件", module="police")  # not Bailu's matter
        async with pool.acquire() as conn:
            row = await PgUnitOfWork(conn).store.answer_of(uuid.UUID(request_id))
        assert row is not None
        assert (row["reply"], row["replied_at"]) == ("已为您办理完毕。", later(5))
        assert (row["handling_module"], row["handling_since"]) == ("social", later(1))
        assert (row["promised_by"], row["promised_at"]) == (later(100), later(3))
        assert row["town_code"] == QINGHE
        assert await pool.fetchval("SELECT count(*) FROM request_answers") == 1


async def test_a_matter_never_filed_here_gets_no_answer_row(fresh_database: str) -> None:
    async with migrated(fresh_database, MIGRATIONS) as pool:
        async with pool.acquire() as conn, conn.transaction():
            await flows.record_answer(PgUnitOfWork(conn), COUNTY.towns[QINGHE], str(uuid.uuid4()), FILED, reply="答复")
        assert await pool.fetchval("SELECT count(*) FROM request_answers") == 0
