"""Intake's filing batch on PostgreSQL (group commit): every row of a batch written by one
statement each (no pipelines: shared/tests/test_no_statement_pipelines.py), read back as filed,
its first timeline step beside it, and each Idempotency-Key's answer saved for a retry."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from intake import flows
from intake.app import MIGRATIONS
from intake.personal_data import Keyring, new_key_spec
from intake.store import PgUnitOfWork
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import BAILU, QINGHE

# The keyring intake seals the citizen with (its keys are the stack's in production; new ones here).
KEYRING = Keyring({"k1": new_key_spec()}, "k1", b"database-tier-lookup-key")
COUNTY = load_county(DEMO_COUNTY_DIR)
FILED = datetime.fromisoformat("2027-01-05T10:00:00.123456+08:00")


def _filing(town_code: str, n: int, key: str | None) -> flows.Filing:
    town = COUNTY.towns[town_code]
    return flows.Filing(
        town=town, filed_by="s010", filer_scope="s010", idempotency_key=key, fingerprint=f"f{n}",
        item=town.catalog["S001"], requested_colour=None, citizen_ref=f"{n:064d}",
        trace_headers={"traceparent": f"00-{n:032x}-{n:016x}-01"},
        fields={"channel": "window" if n % 2 else "hotline", "description": f"第{n}件：户口登记 \"引号\" \\ 反斜杠",
                "village": "V01", "location": f"{n}组", "target": None, "proxy_agent_id": None,
                "village_record_id": None, "citizen_name": f"群众{n}", "citizen_phone": "13800000000",
                "citizen_id_number": None})


async def test_a_batch_across_towns_is_written_as_filed_and_a_retry_gets_the_saved_answer(fresh_database: str) -> None:
    pool = await create_pool(fresh_database)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        filings = [_filing(QINGHE if n % 3 else BAILU, n, f"key-{n}" if n % 2 else None) for n in range(1, 8)]
        async with pool.acquire() as conn, conn.transaction():
            answers = await flows.file_requests(PgUnitOfWork(conn), filings, FILED, KEYRING)
        bodies = [a[1] for a in answers if isinstance(a, tuple) and a[0] == 201]
        assert len(bodies) == len(filings)
        rows = {str(r["request_id"]): r for r in await pool.fetch("SELECT * FROM requests")}
        for filing, body in zip(filings, bodies, strict=True):
            row = rows[body["request_id"]]
            assert (row["ticket_no"], row["access_code"], row["town_code"]) == (
                body["ticket_no"], body["access_code"], filing.town.code)
            assert row["filed_at"] == FILED and row["status_at"] == FILED  # to the microsecond
            assert row["trace_headers"] == filing.trace_headers
            citizen = KEYRING.citizen_of(row, await pool.fetchrow(  # sealed: the plaintext columns are blank
                "SELECT * FROM request_citizens WHERE request_id = $1", row["request_id"]))
            assert citizen is not None and (citizen.name, citizen.phone, citizen.id_number) == (
                filing.fields["citizen_name"], filing.fields["citizen_phone"], filing.fields["citizen_id_number"])
            assert (row["citizen_name"], row["citizen_phone"]) == ("", None)
            assert {k: row[k] for k in filing.fields if not k.startswith("citizen_")} == {
                k: v for k, v in filing.fields.items() if not k.startswith("citizen_")}
            step = await pool.fetchrow("SELECT at, step, detail FROM timeline WHERE request_id = $1",
                                       row["request_id"])
            assert (step["at"], step["step"], step["detail"]) == (FILED, "filed", {"channel": filing.fields["channel"]})
        # Gap-free tickets per town, in filing order.
        for town in (QINGHE, BAILU):
            numbers = [int(b["ticket_no"].rsplit("-", 1)[1]) for f, b in zip(filings, bodies, strict=True)
                       if f.town.code == town]
            assert numbers == list(range(1, len(numbers) + 1))
        # A retry with a key answers what the first filing was answered; a new filing is not made.
        retried = [dataclasses.replace(f) for f in filings if f.idempotency_key]
        async with pool.acquire() as conn, conn.transaction():
            again = await flows.file_requests(PgUnitOfWork(conn), retried, FILED, KEYRING)
        first = {f.idempotency_key: b for f, b in zip(filings, bodies, strict=True) if f.idempotency_key}
        assert [a[1]["request_id"] for a in again if isinstance(a, tuple)] == [
            first[f.idempotency_key]["request_id"] for f in retried]
        assert await pool.fetchval("SELECT count(*) FROM requests") == len(filings)
        assert uuid.UUID(bodies[0]["request_id"])
    finally:
        await pool.close()
