"""The auditor's search over a county-year of audit records (issue #28: p95 ≤ 100 ms), without the
hours a full `make bench-scale` takes to build one: the real stack (intake, dispatch and
enforcement on their own databases), each service's chain filled with a county-year's volume of
records, then each search of `auditing.searches` timed through the real `GET /v1/audit` as the
county's auditor, round by round, and EXPLAINed with the product's own statement.

The records: the history's requests (auditing.entries) of the first town, `--months` months of
`--matters-per-town` a year, and the same again for each other town of the county (its own town
code, ticket numbers, task, inspection and case ids and trace ids; the staff ids are the copies'
own, as devstack's county has them), chained month by month in the order of their time by the
product's `audit.chained` and COPYed (auditing.load_chained): what the sealing passes would have
left, built in minutes. The searches' parameters are the ones `make bench-scale` uses.

    python -m bench.scale.audit_search [--towns 60] [--matters-per-town 13000] [--months 12]
                                       [--repetitions 50]   (bench/results/audit-search-<time>.json)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from devstack.county_gen import make_county
from devstack.postgres import Postgres
from devstack.stack import Stack
from townflow_shared import audit_trail
from townflow_shared.audit import Entry
from townflow_shared.audit_api import AuditQuery
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.town import Town

from . import auditing, history, reads, settle
from .__main__ import (
    AUDIT_RETENTION_DAYS,
    in_temp_folder,
    log,
    monthly_counts,
    previous_month,
    read_values,
    start_services,
    write_result,
)


def as_town(entry: Entry, base: str, town: str, n: int) -> Entry:
    """The first town's record as another town's: its own code, ticket numbers and ids."""
    target = entry.target_id
    if target.startswith(base):
        target = town + target[len(base):]
    elif len(target) == 36:  # a task, inspection, case or plan id
        target = str(uuid.UUID(int=uuid.UUID(target).int ^ n))
    return replace(entry, town=town if entry.town else None, target_id=target,
                   correlation_id=f"{int(entry.correlation_id, 16) ^ n:032x}")


def first_towns_history(args: argparse.Namespace, first_town: Town) -> list[history.TownMonth]:
    """The first town's months, whose records every town's copy is made of."""
    firsts = history.months(args.last_month, args.months)
    counts = monthly_counts(args.matters_per_town, args.months)
    log(f"the first town's history, {args.months} months of {args.matters_per_town:,} matters")
    return [history.town_month(first_town, m, counts[i], args.seed, ends_history=i == len(firsts) - 1)
            for i, m in enumerate(firsts)]


async def load(dsns: dict[str, str], first: Town, towns: list[str], months: list[history.TownMonth]) -> dict[str, Any]:
    loaded = dict.fromkeys(dsns, 0)
    started = time.monotonic()
    conns = {s: await asyncpg.connect(dsn) for s, dsn in dsns.items()}
    try:
        for month in months:
            by_service = auditing.entries(first, month)
            for service in dsns:
                rows = [e if n == 0 else as_town(e, towns[0], code, n)
                        for n, code in enumerate(towns) for e in by_service.get(service, [])]
                rows.sort(key=lambda e: e.at)  # written in the order they were made, across the county
                loaded[service] += await auditing.load_chained(conns[service], service, rows)
            log(f"  {month.month:%Y-%m}: {loaded} records chained, {time.monotonic() - started:.0f}s")
    finally:
        for c in conns.values():
            await c.close()
    return {"records": loaded, "seconds": round(time.monotonic() - started, 1)}


async def explain(stack: Stack, values: dict[str, str]) -> dict[str, Any]:
    """Each search's plan, as the product runs it for the county's auditor (every town)."""
    assert stack.postgres is not None
    plans: dict[str, Any] = {}
    for service in auditing.AUDITED:
        conn = await asyncpg.connect(stack.postgres.dsn(service))
        try:
            for name, wanted in {"newest": {}, **auditing.searches(service)}.items():
                query = AuditQuery.model_validate({k: values[v] for k, v in wanted.items()})
                statement, arguments = audit_trail.search_statement(None, query)
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statement}", *arguments)
                plan = [r[0] for r in rows]
                plans[f"{service} [{name}]"] = plan
                log(f"  {service} [{name}]: {plan[-1].strip()}; "
                    f"{' / '.join(p.strip() for p in plan if 'Scan' in p)[:300]}")
        finally:
            await conn.close()
    return plans


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack.in_temp_dir(kafka_heap="512m")
    folder = stack.workdir / "county"
    towns = make_county(folder, args.towns)
    stack.extra_env["TOWNFLOW_TOWN_DIR"] = str(folder)
    stack.extra_env["TOWNFLOW_AUDIT_RETENTION_DAYS"] = str(AUDIT_RETENTION_DAYS)
    county = load_county(folder)
    first_town = county.towns[towns[0]]
    months = first_towns_history(args, first_town)
    values = read_values(months[0])
    try:
        stack.start_infra()
        start_services(stack, list(auditing.AUDITED))
        log(f"a county-year's audit records: {args.towns} towns")
        assert stack.postgres is not None
        loaded = await load({s: stack.postgres.dsn(s) for s in auditing.AUDITED}, first_town, towns, months)
        settled = await settle.settle([stack.postgres.dsn(s) for s in auditing.AUDITED], args.quiet_wait, report=log)
        log("the searches' plans")
        plans = await explain(stack, values)
        token = stack.token(None, "c004", ["auditor"])  # the county's auditor: every town
        clients = {s: httpx.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {token}"})
                   for s in auditing.AUDITED}
        try:
            every = []
            for service in auditing.AUDITED:
                every += [r for r in await reads.read_routes(clients[service], service, stack.services[service].url,
                                                             values) if r.path == "/v1/audit"]
            log(f"every search, {args.repetitions} times each, as the county's auditor")
            timed = await reads.time_reads(clients, every, args.repetitions, report=log)
        finally:
            for client in clients.values():
                await client.aclose()
        return {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                "size": {"towns": args.towns, "matters_per_town": args.matters_per_town, "months": args.months},
                "loaded": loaded, "settled_before": settled, "searches": timed, "plans": plans,
                "slowest_p95_ms": max(t["p95"] for t in timed.values())}
    finally:
        stack.stop()


async def database_only(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """`--database-only`: one service's county-year in a PostgreSQL of its own (no Kafka, no
    service, no HTTP), each search timed as `audit_trail.search` runs it, and its plan (EXPLAIN
    ANALYZE): the database's share of a search, apart from a busy machine's HTTP and scheduling."""
    service = args.database_only
    towns = make_county(folder / "county", args.towns)
    first_town = load_county(folder / "county").towns[towns[0]]
    months = first_towns_history(args, first_town)
    values = read_values(months[0])
    postgres = Postgres(folder / "postgres").start()
    try:
        postgres.create_database(service)
        pool = await create_pool(postgres.dsn(service), 1, 2)
        try:
            await migrate(pool, [SHARED_MIGRATIONS])
            log(f"{service}'s audit records of a county: {args.towns} towns")
            loaded = await load({service: postgres.dsn(service)}, first_town, towns, months)
            async with pool.acquire() as conn:
                await conn.execute("VACUUM (ANALYZE) audit_log")
            timed: dict[str, Any] = {}
            searches = {"newest": {}, **auditing.searches(service)}
            queries = {n: AuditQuery.model_validate({k: values[v] for k, v in w.items()}) for n, w in searches.items()}
            samples: dict[str, list[float]] = {n: [] for n in queries}
            for _ in range(args.repetitions):  # round by round, as reads.time_reads
                for name, query in queries.items():
                    started = time.perf_counter()
                    await audit_trail.search(pool, None, query)
                    samples[name].append(1000 * (time.perf_counter() - started))
            async with pool.acquire() as conn:
                for name, query in queries.items():
                    statement, arguments = audit_trail.search_statement(None, query)
                    plan = [r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {statement}", *arguments)]
                    timed[name] = reads.summary_ms(samples[name]) | {"plan": plan}
                    log(f"  {service} [{name}]: p50 {timed[name]['p50']} ms, p95 {timed[name]['p95']} ms")
        finally:
            await pool.close()
    finally:
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return {"at": datetime.now(UTC).isoformat(timespec="seconds"), "database_only": service,
            "size": {"towns": args.towns, "matters_per_town": args.matters_per_town, "months": args.months},
            "loaded": loaded, "searches": timed, "slowest_p95_ms": max(t["p95"] for t in timed.values())}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale.audit_search")
    parser.add_argument("--towns", type=int, default=60)
    parser.add_argument("--matters-per-town", type=int, default=13_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--last-month", type=lambda t: datetime.strptime(t, "%Y-%m").date(), default=previous_month())
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--quiet-wait", type=float, default=120.0)
    parser.add_argument("--database-only", choices=auditing.AUDITED, metavar="SERVICE",
                        help="one service's records in a PostgreSQL of its own, searched without HTTP")
    args = parser.parse_args()
    if args.database_only:
        result = in_temp_folder("townflow-audit-search-", lambda folder: database_only(args, folder))
    else:
        result = asyncio.run(run(args))
    write_result("audit-search", result)
    log(f"slowest search p95 {result['slowest_p95_ms']} ms")


if __name__ == "__main__":
    main()
