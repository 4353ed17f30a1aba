"""Intake's county migration (005_towns.sql) on a database of the test's own: a one-town
database's rows get their town from their ticket numbers, its day's sequence goes on, another
town starts its own, and old idempotency keys still answer."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path

from devstack.postgres import Postgres
from intake import flows
from intake.app import MIGRATIONS
from intake.personal_data import Keyring, new_key_spec
from intake.store import PgUnitOfWork
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import BAILU, QINGHE
from .db_tools import database_before

# The keyring intake seals the citizen with (its keys are the stack's in production; new ones here).
KEYRING = Keyring({"k1": new_key_spec()}, "k1", b"database-tier-lookup-key")

def _filing(town_code: str, key: str | None = None, fingerprint: str = "f") -> flows.Filing:
    town = load_county(DEMO_COUNTY_DIR).towns[town_code]
    return flows.Filing(
        town=town, filed_by="s010", filer_scope="s010", idempotency_key=key, fingerprint=fingerprint,
        item=town.catalog["S001"], requested_colour=None, citizen_ref="0" * 64, trace_headers={},
        fields={"channel": "window", "description": "为新生儿办理户口登记", "village": "V01", "location": "一组",
                "target": None, "proxy_agent_id": None, "village_record_id": None, "citizen_name": "测试群众",
                "citizen_phone": "13800000000", "citizen_id_number": None})


async def test_the_migration_gives_a_one_town_databases_rows_their_town(postgres: Postgres, tmp_path: Path) -> None:
    """A county without TOWNFLOW_LEGACY_TOWN_CODE still knows the town of the old rows: the ticket
    numbers name it. Its day's sequence goes on, another town starts its own, old keys still answer."""
    pool = await database_before(postgres, MIGRATIONS, "005", tmp_path)
    try:
        old_answer = {"request_id": str(uuid.uuid4()), "ticket_no": f"{QINGHE}-20270105-00002",
                      "access_code": "ABCDEF", "colour": "yellow", "status": "filed"}
        async with pool.acquire() as conn:
            for n in (1, 2):
                await conn.execute(
                    "INSERT INTO requests (request_id, ticket_no, access_code, channel, item_code, colour,"
                    " description, village, location, citizen_name, citizen_ref, filed_by, filed_at)"
                    " VALUES ($1, $2, 'ABCDEF', 'window', 'S001', 'yellow', 'x', 'V01', 'x', '某人', $3,"
                    " 's010', '2027-01-05T09:00:00+08:00')", uuid.uuid4(), f"{QINGHE}-20270105-0000{n}", "0" * 64)
            await conn.execute("INSERT INTO ticket_sequences (day, last) VALUES ('2027-01-05', 2)")
            await conn.execute("INSERT INTO idempotency_keys (scope, key, fingerprint, status, response)"
                               " VALUES ('s010', 'old-key', 'f', 201, $1)", old_answer)
        assert await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS], default_town=None) == [
            "intake/005_towns.sql", "intake/006_rolling_from_one_town.sql",  # a no-op: no legacy town
            "intake/007_duplicates.sql", "intake/008_citizen_answers.sql", "intake/009_matter_reads.sql",
            "intake/010_access_code_addresses.sql", "intake/011_sealed_personal_data.sql",
            "intake/012_attachments.sql", "intake/013_task_photos.sql", "intake/014_place.sql",
            "intake/015_citizen_sms.sql", "intake/016_merged_citizens_sms.sql"]
        assert {r["town_code"] for r in await pool.fetch("SELECT town_code FROM requests")} == {QINGHE}
        assert [tuple(r) for r in await pool.fetch("SELECT town_code, day, last FROM ticket_sequences")] == [
            (QINGHE, date(2027, 1, 5), 2)]

        async with pool.acquire() as conn, conn.transaction():
            answers = await flows.file_requests(
                PgUnitOfWork(conn), [_filing(QINGHE), _filing(BAILU), _filing(QINGHE, key="old-key"), _filing(BAILU, key="old-key")],
                datetime.fromisoformat("2027-01-05T10:00:00+08:00"), KEYRING)
        tickets = [a[1]["ticket_no"] for a in answers if isinstance(a, tuple)]
        assert tickets == [f"{QINGHE}-20270105-00003", f"{BAILU}-20270105-00001", old_answer["ticket_no"],
                           f"{BAILU}-20270105-00002"]  # the old key is 青禾镇's s010's, not 白鹭镇's
    finally:
        await pool.close()
