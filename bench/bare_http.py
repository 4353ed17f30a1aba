"""The second yardstick: the floor of the first hop alone. A FastAPI app on uvicorn (the same
versions and server as intake) takes a filing-sized JSON body and writes one row in one
PostgreSQL transaction (fsync'd commit) per request — no token, no rules, no outbox, no Kafka, no
trace. Driven as hard as it goes by the same aiohttp client as the benchmark's load, on the same
machine, it says how many filings per second this machine could take before anything else of
Townflow runs.

    python -m uvicorn bench.bare_http:app   (TOWNFLOW_BARE_HTTP_DSN names the database)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg
from fastapi import FastAPI, Request
from pydantic import BaseModel

from devstack.processes import Child, free_port, port_open, wait_until

REPO = Path(__file__).resolve().parent.parent
BODY = {"channel": "window", "item_code": "S001", "description": "bench", "village": "V01",
        "location": "bench", "citizen": {"name": "压测", "phone": "13900000000"}}


class Citizen(BaseModel):
    name: str
    phone: str | None = None


class Filing(BaseModel):
    channel: str
    item_code: str
    description: str
    village: str
    location: str
    citizen: Citizen


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["TOWNFLOW_BARE_HTTP_DSN"], min_size=10, max_size=10)
    await app.state.pool.execute(
        "CREATE TABLE IF NOT EXISTS bare_filings (id uuid PRIMARY KEY, item_code text, body jsonb)")
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/filings", status_code=201)
async def file(body: Filing, request: Request) -> dict[str, str]:
    filing_id = uuid.uuid4()
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO bare_filings VALUES ($1, $2, $3)", filing_id, body.item_code,
                           body.model_dump_json())
    return {"id": str(filing_id)}


async def _drive(url: str, seconds: float, concurrency: int) -> int:
    done = 0
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:
        async def worker() -> None:
            nonlocal done
            while time.monotonic() < until:
                async with client.post(url, json=BODY) as response:
                    response.raise_for_status()
                    await response.read()
                    done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def run_bare_http(dsn: str, workdir: Path, seconds: float = 15.0, concurrency: int = 64) -> dict[str, float]:
    """Filings per second the bare first hop sustains, flat out, on this machine."""
    port = free_port()
    child = Child("bare-http", [sys.executable, "-m", "uvicorn", "bench.bare_http:app", "--port", str(port),
                                "--log-level", "warning", "--no-access-log"],
                  log=workdir / "logs" / "bare-http.log", env={**os.environ, "TOWNFLOW_BARE_HTTP_DSN": dsn},
                  cwd=REPO).start()
    try:
        def listening() -> bool:
            child.check_alive()
            return port_open(port)

        wait_until(listening, 30, "the bare HTTP app")
        url = f"http://127.0.0.1:{port}/filings"
        await _drive(url, 2.0, concurrency)  # warm the pool and the connections
        done = await _drive(url, seconds, concurrency)
    finally:
        child.stop()
    return {"seconds": seconds, "concurrency": concurrency, "filings": done,
            "throughput": round(done / seconds, 1)}
