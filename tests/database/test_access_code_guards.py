"""Intake's wrong access codes on PostgreSQL (issue #28, 010_access_code_addresses.sql): kept per
address for the hour they count, read under the ticket's row lock (the first guess too), and the
entries a replica of the release before wrote (no address) read as one address's and carried over."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from intake import rules
from intake.app import MIGRATIONS
from intake.store import PgUnitOfWork
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate

NOW = datetime.fromisoformat("2027-01-05T10:00:00+08:00")
TICKET = "321003104-20270105-00001"


async def test_wrong_codes_are_kept_per_address_for_the_hour_and_old_entries_carry_over(fresh_database: str) -> None:
    pool = await create_pool(fresh_database)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        # What a replica of the release before left: times without an address.
        await pool.execute("INSERT INTO access_code_guards (ticket_no, failures) VALUES ($1, $2)", TICKET,
                           [NOW - timedelta(minutes=90), NOW - timedelta(minutes=10)])
        async with pool.acquire() as conn, conn.transaction():
            store = PgUnitOfWork(conn).store
            assert await store.wrong_codes_for_update(TICKET) == [
                rules.WrongCode(NOW - timedelta(minutes=90), ""), rules.WrongCode(NOW - timedelta(minutes=10), "")]
            await store.save_wrong_code(TICKET, rules.WrongCode(NOW, "a"), NOW - rules.CODE_GUESS_WINDOW)
        async with pool.acquire() as conn, conn.transaction():
            kept = await PgUnitOfWork(conn).store.wrong_codes_for_update(TICKET)
        assert kept == [rules.WrongCode(NOW - timedelta(minutes=10), ""), rules.WrongCode(NOW, "a")]
        assert await pool.fetchval("SELECT failures FROM access_code_guards WHERE ticket_no = $1", TICKET) == []
    finally:
        await pool.close()


async def test_concurrent_first_guesses_on_a_ticket_are_counted_one_after_the_other(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=4, max_size=8)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])

        async def guess(n: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                store = PgUnitOfWork(conn).store
                seen = await store.wrong_codes_for_update(TICKET)
                await asyncio.sleep(0.01)  # widen the window a lost update would need
                await store.save_wrong_code(TICKET, rules.WrongCode(NOW + timedelta(seconds=len(seen)), f"{n}"),
                                            NOW - rules.CODE_GUESS_WINDOW)

        await asyncio.gather(*(guess(n) for n in range(6)))
        async with pool.acquire() as conn, conn.transaction():
            kept = await PgUnitOfWork(conn).store.wrong_codes_for_update(TICKET)
        assert [w.at for w in kept] == [NOW + timedelta(seconds=s) for s in range(6)]
    finally:
        await pool.close()
