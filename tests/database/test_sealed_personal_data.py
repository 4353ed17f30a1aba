"""The citizen's personal data at rest in intake (issue #28 item 7, 011_sealed_personal_data.sql) on
PostgreSQL: a filed matter's row and its outbox event hold no name, phone or id number; the
repeat-filing rule and a lookup by phone work on keyed hashes; `re-encrypt` moves every matter (the
previous release's plaintext rows too) to a new key in resumable batches while every matter stays
readable; erasure blanks old closed matters only, and keeps them."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devstack.postgres import Postgres
from intake import flows, rules, store
from intake.app import MIGRATIONS
from intake.personal_data import Keyring, new_key_spec
from intake.settings import IntakeSettings
from intake.store import PgUnitOfWork
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, Database, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import QINGHE
from .db_tools import database_before, migrated

COUNTY = load_county(DEMO_COUNTY_DIR)
NOW = datetime.fromisoformat("2027-06-01T10:00:00+08:00")
CITIZEN_REF_KEY = b"database-tier-citizen-ref-key"
K1 = new_key_spec()
KEYRING = Keyring({"k1": K1}, "k1", b"database-tier-lookup-key")
NAME, ID_NUMBER = "测试群众甲", "32100319900101123X"


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated(fresh_database, MIGRATIONS, max_size=3) as p:
        yield p


def _filing(phone: str, *, name: str = NAME, id_number: str | None = None,
            description: str = "为新生儿办理户口登记") -> flows.Filing:
    town = COUNTY.towns[QINGHE]
    return flows.Filing(
        town=town, filed_by="s010", filer_scope="s010", idempotency_key=None, fingerprint="f",
        item=town.catalog["S001"], requested_colour=None,
        citizen_ref=rules.citizen_ref(CITIZEN_REF_KEY, id_number, phone), trace_headers={},
        fields={"channel": "window", "description": description, "village": "V01", "location": "一组",
                "target": None, "proxy_agent_id": None, "village_record_id": None, "citizen_name": name,
                "citizen_phone": phone, "citizen_id_number": id_number})


async def _file(pool: asyncpg.Pool, *filings: flows.Filing, now: datetime = NOW,
                keyring: Keyring = KEYRING) -> list[dict[str, Any]]:
    async with pool.acquire() as conn, conn.transaction():
        answers = await flows.file_requests(PgUnitOfWork(conn), filings, now, keyring)
    return [a[1] for a in answers if isinstance(a, tuple)]


async def _file_in_the_clear(pool: asyncpg.Pool, name: str, phone: str) -> uuid.UUID:
    """A matter as the previous release files it: its citizen in the plaintext columns, no sealed row."""
    request_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO requests (request_id, ticket_no, access_code, channel, item_code, colour, description,"
        " village, location, citizen_name, citizen_phone, citizen_ref, filed_by, filed_at, status, status_at)"
        " VALUES ($1, $2, 'ABCDEF', 'window', 'S001', 'yellow', '旧版本受理', 'V01', '一组', $3, $4, $5, 's010',"
        " $6, 'filed', $6)", request_id, f"{QINGHE}-20270601-9{request_id.int % 10000:04d}", name, phone,
        "0" * 64, NOW)
    return request_id


async def _sealed(pool: asyncpg.Pool) -> dict[uuid.UUID, asyncpg.Record]:
    return {r["request_id"]: r for r in await pool.fetch("SELECT * FROM request_citizens")}


async def _citizens(pool: asyncpg.Pool, keyring: Keyring) -> dict[uuid.UUID, tuple[str, str | None] | None]:
    """Every matter's citizen as the service reads it."""
    sealed = await _sealed(pool)
    return {row["request_id"]: (c.name, c.phone) if (c := keyring.citizen_of(
                row, sealed.get(row["request_id"]))) is not None else None
            for row in await pool.fetch("SELECT * FROM requests")}


async def test_a_filed_matter_and_its_event_hold_no_personal_data(pool: asyncpg.Pool) -> None:
    (answer,) = await _file(pool, _filing("138-0000-0000", id_number=ID_NUMBER))
    row_text = await pool.fetchval(
        "SELECT r::text || c::text FROM requests r JOIN request_citizens c USING (request_id) WHERE ticket_no = $1",
        answer["ticket_no"])
    for secret in (NAME, "13800000000", "138-0000-0000", ID_NUMBER, "1123X"):
        assert secret not in row_text
    assert all(NAME not in text and "0000" not in text and ID_NUMBER not in text
               for text in [r["payload"] for r in await pool.fetch("SELECT payload::text FROM outbox")])
    row, sealed = await pool.fetchrow("SELECT * FROM requests"), await pool.fetchrow("SELECT * FROM request_citizens")
    assert (row["citizen_name"], row["citizen_phone"], row["citizen_id_number"], sealed["key_id"]) == (
        "", None, None, "k1")
    assert all(sealed[c].startswith("v1:k1:aes-256-gcm:") for c in ("name_enc", "phone_enc", "id_number_enc"))
    citizen = KEYRING.citizen_of(row, sealed)
    assert citizen is not None and (citizen.name, citizen.phone, citizen.id_number) == (NAME, "138-0000-0000", ID_NUMBER)
    # Copied into another matter's row, the values do not open there.
    (other,) = await _file(pool, _filing("13900000000", name="别人"))
    other_id = uuid.UUID(other["request_id"])
    await pool.execute("UPDATE request_citizens SET name_enc = $1 WHERE request_id = $2", sealed["name_enc"], other_id)
    with pytest.raises(ValueError, match="does not open"):
        KEYRING.citizen_of(await pool.fetchrow("SELECT * FROM requests WHERE request_id = $1", other_id),
                           await pool.fetchrow("SELECT * FROM request_citizens WHERE request_id = $1", other_id))


async def test_the_repeat_rule_and_a_lookup_by_phone_go_by_keyed_hashes(pool: asyncpg.Pool) -> None:
    """The third filing of one item by one citizen within the window is raised a colour (SPEC
    §6.1), however the phone was typed, with no phone in the clear to compare."""
    colours = [(await _file(pool, _filing(typed), now=NOW + timedelta(minutes=n)))[0]["colour"]
               for n, typed in enumerate(["13800000000", "+86 138 0000 0000", "138-0000-0000"])]
    assert colours == ["yellow", "yellow", "orange"]
    await _file(pool, _filing("13900000000", name="别人"))
    found = await pool.fetch("SELECT request_id FROM request_citizens WHERE town_code = $1 AND phone_hash = $2",
                             QINGHE, KEYRING.phone_hash("8613800000000"))
    assert len(found) == 3


async def test_re_encrypt_moves_every_matter_to_the_new_key_in_batches_and_reads_never_stop(
        pool: asyncpg.Pool) -> None:
    sealed = await _file(pool, *(_filing(f"1380000000{n}", name=f"群众{n}") for n in range(5)))
    legacy = await _file_in_the_clear(pool, "旧群众", "13700000000")
    expected = await _citizens(pool, KEYRING)
    assert expected[legacy] == ("旧群众", "13700000000") and len(expected) == 6
    k2 = "aes-256-gcm:" + base64.b64encode(bytes(range(32))).decode()
    rotated = Keyring({"k1": K1, "k2": k2}, "k2", b"database-tier-lookup-key")
    database = Database()
    database.use(pool)

    class Stopped(Exception):
        pass

    def stop_after_two_batches(line: str) -> None:
        if line.startswith("2 "):
            raise Stopped(line)

    with pytest.raises(Stopped):  # a run stopped midway (the operator's Ctrl-C, a pod evicted) ...
        await flows.reseal(store.unit_of_work(database), rotated, 1, report=stop_after_two_batches)
    assert await pool.fetchval("SELECT count(*) FROM request_citizens WHERE key_id = 'k2'") == 2

    lines: list[str] = []
    done = await flows.reseal(store.unit_of_work(database), rotated, 2, report=lines.append)  # ... starts again
    assert done.moved == 4 and not done.unreadable
    assert await _citizens(pool, rotated) == expected
    rows = await pool.fetch("SELECT * FROM request_citizens")
    assert len(rows) == 6 and {r["key_id"] for r in rows} == {"k2"}
    assert all(r["name_enc"].startswith("v1:k2:") for r in rows)
    assert "旧群众" not in await pool.fetchval("SELECT string_agg(requests::text, '') FROM requests")
    assert len(sealed) == 5 and await pool.fetchval(
        "SELECT count(*) FROM request_citizens WHERE phone_hash = $1", rotated.phone_hash("13700000000")) == 1
    # k1 may go now: every matter opens without it.
    only_k2 = Keyring({"k2": k2}, "k2", b"database-tier-lookup-key")
    assert await _citizens(pool, only_k2) == expected
    assert (await flows.reseal(store.unit_of_work(database), only_k2, 10)).moved == 0


async def test_re_encrypt_while_the_service_reads_every_matter_stays_readable(pool: asyncpg.Pool) -> None:
    """Read side by side with the batches, every matter opens with the keyring the service runs
    with (both keys, the new one current): a rotation needs no downtime."""
    await _file(pool, *(_filing(f"1380000000{n}", name=f"群众{n}") for n in range(4)))
    expected = await _citizens(pool, KEYRING)
    rotated = Keyring({"k1": K1, "k2": new_key_spec("sm4-gcm")}, "k2", b"database-tier-lookup-key")
    database = Database()
    database.use(pool)
    resealing = asyncio.create_task(flows.reseal(store.unit_of_work(database), rotated, 1))
    seen: list[dict[uuid.UUID, Any]] = []
    while not resealing.done():  # the service's reads, side by side with the batches
        seen.append(await _citizens(pool, rotated))
    assert (await resealing).moved == 4
    assert seen and all(s == expected for s in seen)
    assert {r["key_id"] for r in await pool.fetch("SELECT key_id FROM request_citizens")} == {"k2"}
    assert all(r["v"].split(":")[2] == "sm4-gcm" for r in await pool.fetch("SELECT name_enc AS v FROM request_citizens"))


async def test_erasure_blanks_the_personal_data_of_old_closed_matters_only(pool: asyncpg.Pool) -> None:
    settings = IntakeSettings(intake_personal_data_retention_days=30, intake_erasure_batch_size=2)
    filed = await _file(pool, *(_filing(f"1380000000{n}", name=f"群众{n}",
                                        description=f"第{n}件，联系电话 1391234567{n}") for n in range(6)),
                        now=NOW - timedelta(days=90))
    ids = [uuid.UUID(f["request_id"]) for f in filed]
    old_closed, recent_closed, old_open, follower, follower_of_recent, old_closed_2 = ids

    async def close(request_id: uuid.UUID, days_ago: int) -> None:
        await pool.execute("UPDATE requests SET status = 'closed', status_at = $2 WHERE request_id = $1",
                           request_id, NOW - timedelta(days=days_ago))

    await close(old_closed, 31)
    await close(old_closed_2, 45)
    await close(recent_closed, 29)
    await pool.execute("UPDATE requests SET merged_into = $2 WHERE request_id = $1", follower, old_closed)
    await pool.execute("UPDATE requests SET merged_into = $2 WHERE request_id = $1", follower_of_recent, recent_closed)
    for request_id in (old_closed, recent_closed):  # a photo each, with where it was taken (issue #29)
        await pool.execute(
            "INSERT INTO attachments SELECT $1, $2, town_code, 'photo', 1, 'image/jpeg', 100, 'x', 10, 10, 'k', 'kt',"
            " 'jpeg', 200, 'y', '2026-11-09T08:15:30', 30.83, 106.92, 's010', $3 FROM requests WHERE request_id = $2",
            uuid.uuid4(), request_id, NOW)
    database = Database()
    database.use(pool)
    clock = Clock()
    clock.set(NOW)
    unit_of_work = store.unit_of_work(database)
    deps = flows.Deps(settings=settings, county=COUNTY, clock=clock, unit_of_work=unit_of_work,
                      filing_writer=flows.filing_writer(unit_of_work, clock, KEYRING), citizen_ref_key=None,
                      keyring=KEYRING)
    assert await flows.erase_expired_personal_data(deps) == 3  # in batches of two
    rows = {r["request_id"]: r for r in await pool.fetch("SELECT * FROM requests")}
    sealed = await _sealed(pool)
    for erased in (old_closed, old_closed_2, follower):
        row, citizen = rows[erased], sealed[erased]
        assert citizen["erased_at"] == NOW and KEYRING.citizen_of(row, citizen) is None
        assert all(citizen[c] is None for c in ("name_enc", "phone_enc", "id_number_enc", "phone_hash", "key_id"))
        assert (row["citizen_name"], row["citizen_phone"]) == ("", None) and "1391234567" not in row["description"]
        assert row["ticket_no"] and row["status"] in ("closed", "filed") and row["citizen_ref"]  # the matter stays
    for kept in (recent_closed, old_open, follower_of_recent):
        assert KEYRING.citizen_of(rows[kept], sealed[kept]) is not None and sealed[kept]["erased_at"] is None
        assert "1391234567" in rows[kept]["description"]
    assert await pool.fetchval("SELECT count(*) FROM timeline WHERE request_id = $1", old_closed) == 1
    # A photo's position and capture time are the citizen's too: gone with the rest, the photo kept.
    positions = {r["request_id"]: tuple(r)[1:] for r in await pool.fetch(
        "SELECT request_id, latitude, longitude, captured_at FROM attachments")}
    assert positions == {old_closed: (None, None, None), recent_closed: (30.83, 106.92, "2026-11-09T08:15:30")}
    assert await flows.erase_expired_personal_data(deps) == 0


async def test_the_previous_releases_cached_statements_survive_the_migration(postgres: Postgres, tmp_path: Path) -> None:
    """v1.1.0 reads `requests` whole through prepared statements each connection caches; 011 adds a
    table beside it rather than columns to it, so those statements keep returning the rows they were
    planned for (a column added made every old replica's next `SELECT * … FOR UPDATE` in a transaction
    fail with InvalidCachedStatementError: a 500, seen in the rolling upgrade test)."""
    pool = await database_before(postgres, MIGRATIONS, "011", tmp_path)
    try:
        legacy = await _file_in_the_clear(pool, "旧群众", "13700000000")
        ticket = await pool.fetchval("SELECT ticket_no FROM requests WHERE request_id = $1", legacy)
        async with pool.acquire() as old_replica:
            for_update = "SELECT * FROM requests WHERE ticket_no = $1 FOR UPDATE"
            async with old_replica.transaction():
                assert (await old_replica.fetchrow(for_update, ticket))["citizen_name"] == "旧群众"
            assert "intake/011_sealed_personal_data.sql" in await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
            async with old_replica.transaction():  # the statement cached before the migration, again
                assert (await old_replica.fetchrow(for_update, ticket))["citizen_name"] == "旧群众"
        # The previous release's matter is read from its plaintext and erased like any other.
        assert (await _citizens(pool, KEYRING))[legacy] == ("旧群众", "13700000000")
        await pool.execute("UPDATE requests SET status = 'closed', status_at = $2 WHERE request_id = $1",
                           legacy, NOW - timedelta(days=400))
        database = Database()
        database.use(pool)
        clock = Clock()
        clock.set(NOW)
        unit_of_work = store.unit_of_work(database)
        deps = flows.Deps(settings=IntakeSettings(), county=COUNTY, clock=clock, unit_of_work=unit_of_work,
                          filing_writer=flows.filing_writer(unit_of_work, clock, KEYRING), citizen_ref_key=None,
                          keyring=KEYRING)
        assert await flows.erase_expired_personal_data(deps) == 1
        assert (await _citizens(pool, KEYRING))[legacy] is None
        assert "旧群众" not in await pool.fetchval("SELECT requests::text FROM requests WHERE request_id = $1", legacy)
    finally:
        await pool.close()
