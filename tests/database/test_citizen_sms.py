"""Citizens' SMS in intake (issue #31 item 3, 015_citizen_sms.sql) on PostgreSQL: the filing queues
its message in its own transaction, with the ticket and code and never the phone, once per source
and kind; two replicas never lease the same message, a lease run out frees it; a held message waits
for the town's clock; the choice to opt out is kept."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from intake import flows, metrics, sms
from intake.app import MIGRATIONS
from intake.settings import IntakeSettings
from intake.store import PgStore, PgUnitOfWork
from townflow_shared import events
from townflow_shared.metrics import REGISTRY

from ..conftest import QINGHE
from .db_tools import migrated
from .test_sealed_personal_data import COUNTY, KEYRING, NOW, _filing

PHONE = "13912345678"


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated(fresh_database, MIGRATIONS, max_size=3) as p:
        yield p


def _texted(phone: str, *, opt_out: bool = False) -> flows.Filing:
    return dataclasses.replace(_filing(phone), sms_opt_out=opt_out, sms_template=None if opt_out else "SMS_FILED",
                               status_url="https://zwt.example/status")


async def _file(pool: asyncpg.Pool, *filings: flows.Filing) -> list[dict[str, object]]:
    async with pool.acquire() as conn, conn.transaction():
        answers = await flows.file_requests(PgUnitOfWork(conn), filings, NOW, KEYRING)
    return [a[1] for a in answers if isinstance(a, tuple)]


async def test_the_filing_queues_its_sms_in_its_transaction_once_and_without_the_phone(pool: asyncpg.Pool) -> None:
    texted, opted_out = await _file(pool, _texted(PHONE), _texted("13987654321", opt_out=True))
    rows = await pool.fetch("SELECT * FROM sms_outbox")
    assert [(r["kind"], r["template"], r["status"], str(r["request_id"])) for r in rows] == [
        ("filed", "SMS_FILED", "pending", texted["request_id"])]
    assert rows[0]["params"] == {"ticket": texted["ticket_no"], "code": texted["access_code"],
                                 "url": f"https://zwt.example/status?ticket={texted['ticket_no']}"}
    assert PHONE not in json.dumps([dict(r) for r in rows], default=str)
    choices = {str(r["request_id"]): r["opted_out"] for r in await pool.fetch("SELECT * FROM request_sms")}
    assert choices == {texted["request_id"]: False, opted_out["request_id"]: True}
    again = {k: v for k, v in dict(rows[0]).items() if k in ("request_id", "town_code", "kind", "source_id",
                                                             "template", "params", "red", "created_at")}
    async with pool.acquire() as conn:  # the same source and kind again (an event delivered twice)
        await PgStore(conn).enqueue_sms([again | {"hold_until": None}])
    assert await pool.fetchval("SELECT count(*) FROM sms_outbox") == 1


async def test_two_replicas_never_lease_one_message_and_a_lease_run_out_frees_it(pool: asyncpg.Pool) -> None:
    await _file(pool, _texted(PHONE), _texted("13900000001"))
    async with pool.acquire() as a, pool.acquire() as b:
        first = await PgStore(a).claim_sms("replica-a", 60, NOW, 1)
        second = await PgStore(b).claim_sms("replica-b", 60, NOW, 10)
        assert len(first) == 1 and len(second) == 1 and first[0]["id"] != second[0]["id"]
        assert await PgStore(b).claim_sms("replica-b", 60, NOW, 10) == []  # both held
        assert await PgStore(a).sms_still_held(first[0]["id"], "replica-a")
        assert not await PgStore(a).sms_still_held(first[0]["id"], "replica-b")
        assert not await PgStore(a).sms_still_held(first[0]["id"], "replica-a", 120)  # not for a call that long
        await PgStore(b).sms_release([second[0]["id"]], "replica-a")  # not a's to give back
        assert await PgStore(b).claim_sms("replica-c", 60, NOW, 10) == []
        await PgStore(b).sms_release([second[0]["id"]], "replica-b")  # given back untried: due at once
        [back] = await PgStore(b).claim_sms("replica-b", 60, NOW, 10)
        assert back["id"] == second[0]["id"] and back["attempts"] == 0
        # replica-a is killed mid-send: once its lease has run out, b takes the message over.
        await a.execute("UPDATE sms_outbox SET lease_until = now() - interval '1 second' WHERE id = $1", first[0]["id"])
        [taken] = await PgStore(b).claim_sms("replica-b", 60, NOW, 10)
        assert taken["id"] == first[0]["id"] and not await PgStore(a).sms_still_held(taken["id"], "replica-a")
        await PgStore(b).sms_sent(taken["id"], "biz-1", NOW)
        await PgStore(b).sms_retry(second[0]["id"], "gateway unavailable: ConnectError", 3600)
        assert await PgStore(a).claim_sms("replica-a", 60, NOW, 10) == []  # sent, and backing off
    rows = {r["id"]: r for r in await pool.fetch("SELECT * FROM sms_outbox")}
    assert (rows[taken["id"]]["status"], rows[taken["id"]]["provider_id"]) == ("sent", "biz-1")
    assert (rows[second[0]["id"]]["attempts"], rows[second[0]["id"]]["last_error"]) == (
        1, "gateway unavailable: ConnectError")


async def test_a_held_message_waits_for_the_towns_clock(pool: asyncpg.Pool) -> None:
    await _file(pool, _texted(PHONE))
    async with pool.acquire() as conn:
        store = PgStore(conn)
        [row] = await store.claim_sms("replica-a", 60, NOW, 10)
        morning = NOW + timedelta(hours=10)
        await store.sms_hold(row["id"], morning, "quiet hours: held until 08:00")
        assert await store.claim_sms("replica-a", 60, morning - timedelta(seconds=1), 10) == []
        [again] = await store.claim_sms("replica-a", 60, morning, 10)
        assert again["id"] == row["id"] and again["attempts"] == 0
        [logged] = await store.sms_of(uuid.UUID(str(row["request_id"])))
        assert logged["last_error"] == "quiet hours: held until 08:00"


async def test_the_primarys_completion_texts_each_merged_citizen_once_per_event_kind_and_matter(
        pool: asyncpg.Pool) -> None:
    """重复件 (016): one event and kind queue a message per matter, the primary's and each merged
    one's (not one who opted out); the event delivered again adds none."""
    primary, duplicate, quiet = await _file(pool, _texted(PHONE), _texted("13900000002"),
                                            _texted("13900000003", opt_out=True))
    settings = IntakeSettings(sms_url="http://gateway.test/", sms_access_key_id="LTAI-test",
                              sms_access_key_secret="secret", sms_sign_name="青禾镇",
                              sms_template_completed="SMS_DONE", sms_template_callback="SMS_CALLBACK",
                              sms_status_url="https://zwt.example/status")
    async with pool.acquire() as conn:
        for merged in (duplicate, quiet):
            await PgStore(conn).set_merged_into(uuid.UUID(str(merged["request_id"])),
                                                uuid.UUID(str(primary["request_id"])), NOW)
    done = events.TaskCompletedData(task_id="T-1", request_id=str(primary["request_id"]), by="s017",
                                    resolution="已办结", completed_at=NOW + timedelta(hours=1), on_time=True,
                                    reply="路灯已修复")
    event_id = uuid.uuid4()
    for _ in range(2):
        async with pool.acquire() as conn, conn.transaction():
            await sms.queue_completion(settings, PgUnitOfWork(conn), COUNTY.towns[QINGHE], done, event_id)
    rows = await pool.fetch("SELECT request_id, kind, params FROM sms_outbox WHERE source_id = $1", event_id)
    assert sorted((str(r["request_id"]), r["kind"], r["params"]["ticket"]) for r in rows) == sorted(
        (str(t["request_id"]), kind, t["ticket_no"]) for t in (primary, duplicate) for kind in ("callback", "completed"))


async def test_the_gauges_count_what_is_due_and_not_sent_per_town_and_how_long_the_oldest_waited(
        pool: asyncpg.Pool) -> None:
    """For the alert (TownflowIntakeSmsWaiting): a message held (quiet hours, the callback's day) is
    not waiting before its hold ends; one sent is not waiting; a failed attempt makes one failing."""
    await _file(pool, _texted(PHONE), _texted("13900000004"), _texted("13900000005"), _texted("13900000006"))
    later = NOW + timedelta(minutes=15)
    async with pool.acquire() as conn:
        store = PgStore(conn)
        failed, held, sent, due = await store.claim_sms("replica-a", 60, NOW, 10)
        await store.sms_retry(failed["id"], "gateway unavailable: ConnectError", 1)
        await store.sms_hold(held["id"], NOW + timedelta(minutes=10), "quiet hours: held until 08:00")
        await store.sms_sent(sent["id"], "biz-1", NOW)
        await store.sms_release([due["id"]], "replica-a")
        assert await store.sms_waiting(NOW) == {QINGHE: (2, 1, 0.0)}
    await metrics.refresh_gauges(pool, [QINGHE, "321003107"], later)
    assert {(name, town): REGISTRY.get_sample_value(name, {"town": town})
            for name in ("townflow_intake_sms_waiting", "townflow_intake_sms_failing",
                         "townflow_intake_sms_oldest_waiting_seconds") for town in (QINGHE, "321003107")} == {
        ("townflow_intake_sms_waiting", QINGHE): 3,  # the held one is due since NOW + 10 min
        ("townflow_intake_sms_failing", QINGHE): 1,
        ("townflow_intake_sms_oldest_waiting_seconds", QINGHE): 15 * 60,
        ("townflow_intake_sms_waiting", "321003107"): 0,
        ("townflow_intake_sms_failing", "321003107"): 0,
        ("townflow_intake_sms_oldest_waiting_seconds", "321003107"): 0,
    }
