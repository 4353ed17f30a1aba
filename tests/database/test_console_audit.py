"""The console's audit trail on a real PostgreSQL (issue #28 items 3 and 6): wrong passwords, the
lock they cause and the attempt refused while it holds are records written with the failure
count; a sign-in and its sign-out are too, once each; sessions that ran out are recorded at the
moment they ran out, once whatever replicas sweep at once; the shared sealing pass chains them and
puts them in the outbox for console.audit.recorded.v1; `python -m console audit verify` holds,
then names a record altered behind the console's back; the auditor's search reads them by town."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from console import session_audit
from console.accounts import Accounts
from console.app import ALL_MIGRATIONS
from console.session import Session, id_hash
from console.session_audit import Where
from console.sign_in import Limits, Refused, check_sign_in
from console.store import PgSessions, SignInFailures
from devstack.demo_accounts import DEMO_PASSWORD
from townflow_shared import audit_trail, db
from townflow_shared.audit_api import AuditQuery, search_page
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import QINGHE

COUNTY = load_county(DEMO_COUNTY_DIR)
HOME = audit_trail.home_of(COUNTY)
LIMITS = Limits(per_account=3, per_address=50, window=timedelta(minutes=15))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(fresh_database, 1, 6, service="console")
    await db.migrate(p, ALL_MIGRATIONS)
    yield p
    await p.close()


async def _seal(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return len(await audit_trail.seal(conn, "console", HOME))


def _verify(dsn: str) -> subprocess.CompletedProcess[str]:
    """`python -m console audit verify`, as an operator runs it, on the console's database."""
    env = {**os.environ, "TOWNFLOW_DATABASE_URL": dsn, "TOWNFLOW_TOWN_DIR": str(DEMO_COUNTY_DIR)}
    return subprocess.run([sys.executable, "-m", "console", "audit", "verify"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60)


async def test_failures_a_lock_a_sign_in_and_a_sign_out_make_a_chain_that_verify_checks(
        pool: asyncpg.Pool, fresh_database: str) -> None:
    units = db.Database()
    units.use(pool)
    accounts, failures = Accounts(COUNTY), units.units_of_work(SignInFailures)
    where = Where("198.51.100.7", "198.51.100.7", "ab" * 16)

    async def attempt(password: str, login: str = "qh-s010") -> object:
        return await check_sign_in(accounts, failures, LIMITS, login, password, where)

    assert [await attempt("not-the-Password-1") for _ in range(3)] == [Refused()] * 3
    waiting = await attempt(DEMO_PASSWORD)
    assert isinstance(waiting, Refused) and waiting.wait_seconds is not None and 0 < waiting.wait_seconds <= 15 * 60
    assert await attempt("whatever-Password-2", login="Typed-Secret-Into-Login") == Refused()
    await pool.execute("UPDATE sign_in_failures SET failures = '{}'")  # as if the wait were over
    person = await attempt(DEMO_PASSWORD)
    assert not isinstance(person, Refused)
    sessions = PgSessions(pool, 30 * 60, 8 * 3600)
    sid = await sessions.begin(Session(person=person))
    await asyncio.gather(*(sessions.end(sid, session_audit.SIGN_OUT, where) for _ in range(3)))  # recorded once

    assert await _seal(pool) == 8
    rows = await pool.fetch("SELECT seq, action, outcome, target_type, target_id, actor, town_code, client,"
                            " correlation_id, detail FROM audit_log ORDER BY seq")
    assert [(r["action"], r["outcome"], r["target_id"], r["actor"]) for r in rows] == [
        *[("session.sign_in", "sign_in.wrong_password", "qh-s010", "")] * 3,
        ("session.account_lock", "ok", "qh-s010", ""),  # the third failure locked it
        ("session.sign_in", "sign_in.account_waiting", "qh-s010", ""),  # its right password, unchecked
        ("session.sign_in", "sign_in.unknown_account", "", ""),  # what was typed is no one's: not kept
        ("session.sign_in", "ok", "qh-s010", "s010"),
        ("session.sign_out", "ok", "qh-s010", "s010"),
    ]
    assert "Typed-Secret" not in str([dict(r) for r in rows])
    assert {(r["client"], r["correlation_id"]) for r in rows} == {("198.51.100.7", "ab" * 16)}
    assert 0 < rows[3]["detail"]["wait_seconds"] <= 15 * 60 and rows[0]["town_code"] == QINGHE
    outbox = await pool.fetch("SELECT topic, key FROM outbox ORDER BY id")
    assert {(r["topic"], r["key"]) for r in outbox} == {("console.audit.recorded.v1", "console")}
    assert len(outbox) == len(rows)

    # The operator's check holds; a record altered behind the console's back is named.
    holds = await asyncio.to_thread(_verify, fresh_database)
    assert holds.returncode == 0, holds.stdout + holds.stderr
    assert "audit chain of console holds" in holds.stdout
    await pool.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")  # as the database's owner could
    await pool.execute("UPDATE audit_log SET outcome = 'ok' WHERE seq = 2")
    broken = await asyncio.to_thread(_verify, fresh_database)
    assert broken.returncode == 1 and "broken at record 2" in broken.stdout and "altered" in broken.stdout


async def test_an_address_that_fails_too_often_is_a_record_of_its_own(pool: asyncpg.Pool) -> None:
    units = db.Database()
    units.use(pool)
    limits = Limits(per_account=5, per_address=3, window=timedelta(minutes=15))
    where = Where("203.0.113.9")
    for n in range(4):
        await check_sign_in(Accounts(COUNTY), units.units_of_work(SignInFailures), limits, f"sq-s03{n}",
                            "spray-Password-1", where)
    await _seal(pool)
    rows = await pool.fetch("SELECT action, outcome, target_type, target_id, town_code FROM audit_log ORDER BY seq")
    assert [(r["action"], r["outcome"], r["target_type"], r["target_id"]) for r in rows if r["target_type"] == "address"
            ] == [("session.address_lock", "ok", "address", "203.0.113.9")]
    assert rows[-1]["outcome"] == "sign_in.address_waiting"  # the fourth, refused unchecked


async def test_sessions_that_ran_out_are_recorded_once_at_the_moment_they_ran_out(pool: asyncpg.Pool) -> None:
    person = Accounts(COUNTY).holder("qh-s010")
    assert person is not None
    sessions = PgSessions(pool, 30 * 60, 8 * 3600)
    idle, old, live = [await sessions.begin(Session(person=person)) for _ in range(3)]
    await pool.execute("UPDATE sessions SET seen_at = now() - interval '31 minutes' WHERE id_hash = $1", id_hash(idle))
    await pool.execute("UPDATE sessions SET started_at = now() - interval '9 hours' WHERE id_hash = $1", id_hash(old))
    other = PgSessions(pool, 30 * 60, 8 * 3600)  # another replica's sweep, at the same moment
    assert sorted(await asyncio.gather(sessions.end_expired(), other.end_expired())) in ([0, 2], [1, 1])
    assert await sessions.end_expired() == 0
    assert await sessions.resume(live, activity=True) is not None
    await _seal(pool)
    rows = await pool.fetch("SELECT action, actor, target_id, client, at, (SELECT now()) AS now FROM audit_log"
                            " ORDER BY action")
    assert [(r["action"], r["actor"], r["target_id"], r["client"]) for r in rows] == [
        ("session.idle_timeout", "s010", "qh-s010", ""), ("session.lifetime_end", "s010", "qh-s010", "")]
    ran_out = [r["now"] - r["at"] for r in rows]  # idle: 1 minute ago; lifetime: an hour ago
    assert timedelta(seconds=50) < ran_out[0] < timedelta(minutes=2)
    assert timedelta(minutes=59) < ran_out[1] < timedelta(minutes=61)


async def test_a_towns_auditor_reads_the_records_about_its_towns_accounts(pool: asyncpg.Pool) -> None:
    units = db.Database()
    units.use(pool)
    for login in ("qh-s010", "sq-s011"):
        await check_sign_in(Accounts(COUNTY), units.units_of_work(SignInFailures), LIMITS, login, "wrong-Password-9",
                            Where("192.0.2.1"))
    tz = next(iter(COUNTY.towns.values())).calendar.tz
    town = await search_page(pool, "console", [QINGHE], AuditQuery(action="session."), tz)
    county = await search_page(pool, "console", None, AuditQuery(target="sq-s011"), tz)
    assert [r.target_id for r in town.records] == ["qh-s010"] and town.records[0].seq is None  # not sealed yet
    assert [(r.service, r.target_id, r.outcome) for r in county.records] == [
        ("console", "sq-s011", "sign_in.wrong_password")]


async def test_records_past_the_retention_are_pruned_behind_a_checkpoint_and_verify_holds(
        pool: asyncpg.Pool, fresh_database: str) -> None:
    person = Accounts(COUNTY).holder("qh-s010")
    now = await pool.fetchval("SELECT now()")
    async with pool.acquire() as conn, conn.transaction():
        await audit_trail.write_records(conn, [session_audit.record(
            session_audit.SIGN_IN, now - timedelta(days=days), session_audit.Account.of(person, signed_in=True),
            Where("192.0.2.2")) for days in (400, 200, 10)])
    await _seal(pool)
    async with pool.acquire() as conn:
        pruned = await audit_trail.prune(conn, "console", HOME, now, 180)
    assert (pruned.count, pruned.through_seq) == (2, 2)
    left = await pool.fetch("SELECT action FROM audit_log ORDER BY seq")
    assert [r["action"] for r in left] == ["session.sign_in", "audit.prune"]
    holds = await asyncio.to_thread(_verify, fresh_database)
    assert holds.returncode == 0, holds.stdout + holds.stderr
