"""A request whose transaction PostgreSQL undoes to break a deadlock is answered 503 `service.busy`
(to be sent again), never a 500, and keeps nothing: in a rolling upgrade a citizen's rating met a
new replica's migration at the same rows and was answered 500 once. Against a real server, through
a service's own edge (http.mount_common)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from fastapi import FastAPI

from townflow_shared import db
from townflow_shared.http import mount_common


async def _waiting_for_a_lock(conn: asyncpg.Connection, pid: int) -> bool:
    return bool(await conn.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))


async def test_a_request_that_loses_a_deadlock_is_answered_busy_and_keeps_nothing(fresh_database: str) -> None:
    other = await asyncpg.connect(fresh_database)
    watcher = await asyncpg.connect(fresh_database)
    pool = await db.create_pool(fresh_database, 1, 1, service="probe")
    app = FastAPI()

    @app.post("/rate")
    async def rate() -> dict[str, str]:
        # Writes a row of its own, holds `x`, then asks for `y`, which the other session holds
        # while it asks for `x`: whichever checks for a deadlock first is undone (this one: the
        # other waits 10 s before it checks).
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO kept VALUES ('rate')")
            await conn.execute("LOCK TABLE x IN ACCESS EXCLUSIVE MODE")
            await conn.execute("LOCK TABLE y IN ACCESS EXCLUSIVE MODE")
        return {"status": "rated"}

    mount_common(app, "probe", with_test_clock=False)
    try:
        await other.execute("CREATE TABLE x (one int); CREATE TABLE y (one int); CREATE TABLE kept (what text);"
                            " SET deadlock_timeout = '10s'")
        request_pid = await pool.fetchval("SELECT pg_backend_pid()")
        holding = other.transaction()
        await holding.start()
        await other.execute("LOCK TABLE y IN ACCESS EXCLUSIVE MODE")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            answer = asyncio.create_task(client.post("/rate"))
            while not await _waiting_for_a_lock(watcher, request_pid):  # holds x, waits for y
                await asyncio.sleep(0.02)
            blocked = asyncio.create_task(other.execute("LOCK TABLE x IN ACCESS EXCLUSIVE MODE"))
            got = await asyncio.wait_for(answer, 30)
            await asyncio.wait_for(blocked, 30)  # the other gets `x` once the request is undone
        await holding.rollback()
        assert got.status_code == 503, got.text
        assert got.headers["content-type"] == "application/problem+json"
        assert got.json()["code"] == "service.busy" and got.headers["retry-after"] == "1"
        assert await other.fetchval("SELECT count(*) FROM kept") == 0  # nothing of the request kept
    finally:
        await other.close()
        await watcher.close()
        await pool.close()
