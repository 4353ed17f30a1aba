"""What sealing the citizen's personal data costs intake's filing (issue #28 item 7's target: at most
5 % of the filing throughput), A/B in one run on one PostgreSQL: intake's own filing batch
(`flows.file_requests`: idempotency keys, tickets, the repeat rule, the rows, the first timeline
step, the events into the outbox, duplicate hints; one fsync'd commit per batch) with the citizen
sealed (AES-256-GCM, and SM4-GCM) against the same batch writing the citizen in the clear as the
release before did. The variants take turns, round after round, in a shuffled order, so a busy
moment of the shared machine falls on all of them; each round's ratio to the clear variant is
taken, and the median of those rounds reported.

Two measures of each turn: filings per second (wall clock), and the CPU a filing costs — this
process's and its PostgreSQL backend's, from /proc. On a shared machine whose other users come and
go, the wall clock mostly measures them; the CPU per filing is what bounds intake's throughput when
it is busy (its replicas are CPU-bound at the knee, docs/benchmarks.md), and barely moves with the
neighbours. Without HTTP, token, validation and the group-commit queue in front, the batch is the
denominator at its smallest, so either share measured here is an upper bound of the share in the
service.

    python -m bench.sealing [--rounds 12] [--batches 10] [--batch 50] [--preload 20000]
                                    (writes bench/results/sealing-ab-<time>.json)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from devstack.postgres import Postgres
from intake import flows, rules
from intake.app import MIGRATIONS
from intake.personal_data import Keyring, new_key_spec
from intake.store import PgUnitOfWork
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR

from .procstats import cpu_seconds

COUNTY = load_county(DEMO_COUNTY_DIR)
TOWN = COUNTY.towns["321003104"]
CITIZEN_REF_KEY = b"bench-citizen-ref-key"
START = datetime(2027, 1, 4, 1, 0, tzinfo=UTC)


class InTheClear:
    """The release before: the citizen's columns as typed, nothing sealed, no hash, no key id."""

    def sealed(self, request_id: uuid.UUID, town_code: str, name: str, phone: str | None,
               id_number: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return {"citizen_name": name, "citizen_phone": phone, "citizen_id_number": id_number}, None


SEALERS: dict[str, Any] = {
    "clear": InTheClear(),
    "aes-256-gcm": Keyring({"a": new_key_spec("aes-256-gcm")}, "a", b"bench-lookup-key-0123456789"),
    "sm4-gcm": Keyring({"s": new_key_spec("sm4-gcm")}, "s", b"bench-lookup-key-0123456789"),
}


def filings(n: int, seed: int) -> list[flows.Filing]:
    """A batch as a town's windows file it: each citizen with a name, a phone and (half) an id number."""
    batch = []
    for i in range(n):
        phone = f"139{seed % 10_000:04d}{i:04d}"
        id_number = f"32100319900101{i:04d}" if i % 2 else None
        batch.append(flows.Filing(
            town=TOWN, filed_by="s010", filer_scope="s010", idempotency_key=f"k-{seed}-{i}" if i % 3 == 0 else None,
            fingerprint=f"f-{seed}-{i}", item=TOWN.catalog["S001"], requested_colour=None,
            citizen_ref=rules.citizen_ref(CITIZEN_REF_KEY, id_number, phone), trace_headers={},
            fields={"channel": "window", "description": "为新生儿办理户口登记", "village": f"V0{1 + i % 3}",
                    "location": f"{i % 9}组", "target": None, "proxy_agent_id": None, "village_record_id": None,
                    "citizen_name": f"压测群众{i}", "citizen_phone": phone, "citizen_id_number": id_number}))
    return batch


async def one_turn(conn: asyncpg.Connection, backend: int, sealer: Any, batches: int, size: int, day: int,
                   seed: int) -> tuple[float, float]:
    """Filings per second over `batches` batches of `size`, each in its own transaction, and the CPU
    microseconds a filing cost (this process and the connection's backend)."""
    work = [filings(size, seed * 1000 + b) for b in range(batches)]
    now = START + timedelta(days=day)
    t0, cpu0 = time.perf_counter(), time.process_time() + cpu_seconds(backend)
    for batch in work:
        async with conn.transaction():
            await flows.file_requests(PgUnitOfWork(conn), batch, now, sealer)
    wall, cpu = time.perf_counter() - t0, time.process_time() + cpu_seconds(backend) - cpu0
    return batches * size / wall, cpu / (batches * size) * 1e6


def sealing_cpu_microseconds(sealer: Any, n: int = 5000) -> float:
    """The sealing alone: one citizen's three values and the phone's hash, per filing."""
    rid = uuid.uuid4()
    t0 = time.perf_counter()
    for i in range(n):
        sealer.sealed(rid, TOWN.code, f"压测群众{i}", "13900000000", "32100319900101123X" if i % 2 else None)
    return (time.perf_counter() - t0) / n * 1e6


async def run(rounds: int, batches: int, size: int, preload: int, workdir: Path) -> dict[str, Any]:
    postgres = Postgres(workdir / "postgres").start()
    try:
        postgres.create_database("sealing")
        pool = await create_pool(postgres.dsn("sealing"), min_size=1, max_size=1)
        try:
            await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
            async with pool.acquire() as conn:  # one connection: its backend's CPU is the database's share
                backend = await conn.fetchval("SELECT pg_backend_pid()")
                # A town's table as it is after some weeks, planned on its statistics: on an empty one
                # the first rounds are faster than the later ones (duplicate candidates fill up to their cap).
                for b in range(0, preload, size * 10):
                    await one_turn(conn, backend, SEALERS["clear"], 10, size, b // (size * 10) % 7, -1 - b)
                await conn.execute("ANALYZE")
                rates: dict[str, list[float]] = {name: [] for name in SEALERS}
                cpu: dict[str, list[float]] = {name: [] for name in SEALERS}
                day = 7
                for r in range(rounds):
                    order = list(SEALERS)
                    random.shuffle(order)
                    for name in order:
                        rate, us = await one_turn(conn, backend, SEALERS[name], batches, size, day, day)
                        rates[name].append(rate)
                        cpu[name].append(us)
                        day += 1
                    print(f"round {r + 1}/{rounds}: " + ", ".join(
                        f"{n} {rates[n][-1]:.0f}/s {cpu[n][-1]:.0f} us" for n in SEALERS), flush=True)
        finally:
            await pool.close()
    finally:
        postgres.stop()

    def paired(series: dict[str, list[float]]) -> dict[str, float]:
        """Each round's variants ran within seconds of each other: the median of the rounds' own
        ratios to the clear variant leaves out what the shared machine did between rounds."""
        return {n: round(statistics.median(a / c for a, c in zip(series[n], series["clear"], strict=True)), 3)
                for n in SEALERS if n != "clear"}

    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "rounds": rounds, "batches": batches, "batch": size,
        "preload": preload,
        "filings_per_second_median": {n: round(statistics.median(v), 1) for n, v in rates.items()},
        "throughput_ratio_to_clear": paired(rates),
        "cpu_us_per_filing_median": {n: round(statistics.median(v), 1) for n, v in cpu.items()},
        "cpu_ratio_to_clear": paired(cpu),
        "sealing_cpu_us_per_filing": {n: round(sealing_cpu_microseconds(s), 1) for n, s in SEALERS.items()},
        "rates": {n: [round(x, 1) for x in v] for n, v in rates.items()},
        "cpu_us": {n: [round(x, 1) for x in v] for n, v in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sealing")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batches", type=int, default=10, help="batches per variant per round")
    parser.add_argument("--batch", type=int, default=50, help="filings per batch (one transaction)")
    parser.add_argument("--preload", type=int, default=20_000, help="matters filed before the rounds")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="townflow-sealing-"))
    workdir.chmod(0o755)  # PostgreSQL (as `postgres` when we are root) must traverse it
    try:
        result = asyncio.run(run(args.rounds, args.batches, args.batch, args.preload, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({k: v for k, v in result.items() if k not in ("rates", "cpu_us")}, indent=2))
    out = Path(__file__).with_name("results") / f"sealing-ab-{result['at'][:19].replace('-', '').replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
