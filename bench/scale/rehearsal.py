"""The reform rehearsal over a full-size county-month (issue #32's target: 60 towns, 65,000
matters rehearsed in ≤ 60 s on this machine; one town-month ≤ 3 s), database only, without the
hours a full `make bench-scale` takes: one PostgreSQL, dispatch's database migrated, a county-month
of bench-scale's history (history.town_month: the same generator, the same seed rules) written
into it by bench-scale's own loader (loaders.load_dispatch through dispatch's store functions:
tasks with their real acceptances, completions, returns and redispatches, extensions,
supervision levels, reworks), then `python -m dispatch rehearse --town all`'s own function
(flows.county_rehearsal: each town's read-only snapshot read from PostgreSQL, then the town
rehearsed on its real layout and on an alternative) timed end to end, `--repetitions` times, and
the command itself once in a process of its own (its start-up and the county's files included).

The alternative: in every town 经济发展办公室 (econ) merged into 组织建设办公室 (org) — its posts,
people and items moved (大部制) — written as each town's own layout folder, as a county's
appraisal office would. What bench-scale's history does not hold the rehearsal lacks here too:
no off-post registrations, suspensions or callbacks (its ratings are the citizens', intake's).

    python -m bench.scale.rehearsal [--towns 60] [--matters 65000] [--month 2026-11] [--repetitions 3]
                                    [--twin-seeds 5] (bench/results/rehearsal-<time>.json)

`--twin-seeds N` also rehearses the first town on its own layout with seeds 1..N and logs its twin
check: the recorded and the drawn 响应率, 办结率 and overdue, and the 响应率 of each colour
(docs/rehearsal.md's figures for bench-scale's town-month of 1,083 matters come from `--towns 2
--matters 2166 --repetitions 1 --quiet-wait 0 --twin-seeds 5`, seconds; the full county's first town
has 1,084).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from devstack.county_gen import make_county
from devstack.postgres import Postgres
from dispatch import flows, rehearsal, store
from dispatch.app import MIGRATIONS as DISPATCH_MIGRATIONS
from townflow_shared import scoring
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate
from townflow_shared.town import Town, town_files

from ..procstats import tree_cpu_seconds
from . import history, loaders, settle
from .__main__ import in_temp_folder, log, monthly_counts, write_result
from .loading import CONNECTIONS, in_slices

MERGED, INTO = "econ", "org"  # 经济发展办公室 into 组织建设办公室
AS_OF_DAYS = 14  # the month read two weeks after its end, as the twin check reads November


def merged_modules(town: Town, gone: str, into: str) -> dict[str, str]:
    """The town's layout files with module `gone` merged into `into`: the module gone, its posts,
    people and items (lead, cooperating, joint) given to `into`."""
    files = {name: yaml.safe_load(text) for name, text in town_files(town).items()}

    def moved(rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
        return [row | {f: into for f in fields if row.get(f) == gone} for row in rows]

    files["modules.yaml"]["modules"] = [m for m in files["modules.yaml"]["modules"] if m["code"] != gone]
    files["posts.yaml"]["posts"] = moved(files["posts.yaml"]["posts"], "module")
    files["staff.yaml"]["staff"] = moved(files["staff.yaml"]["staff"], "module")
    files["catalog.yaml"]["items"] = [
        i | {"cooperating_modules": [into if m == gone else m for m in i["cooperating_modules"]],
             "joint_units": [into if m == gone else m for m in i["joint_units"]]}
        for i in moved(files["catalog.yaml"]["items"], "lead_module")]
    return {name: yaml.safe_dump(files[name], allow_unicode=True, sort_keys=False)
            for name in ("modules.yaml", "posts.yaml", "staff.yaml", "catalog.yaml")}


def write_layouts(towns: list[Town], folder: Path) -> None:
    """Each town's merged layout in `folder`/<town code>/ (`--town all`'s layout folder)."""
    for town in towns:
        own = folder / town.code
        own.mkdir(parents=True, exist_ok=True)
        for name, text in merged_modules(town, MERGED, INTO).items():
            (own / name).write_text(text, encoding="utf-8")


async def load(pool: asyncpg.Pool, towns: list[Town], month: date, matters: int, seed: int) -> dict[str, Any]:
    """The county-month generated and written town by town, as bench-scale writes dispatch's rows."""
    started = time.monotonic()
    generating = 0.0
    for town, count in zip(towns, monthly_counts(matters, len(towns)), strict=True):
        began = time.monotonic()
        town_month = history.town_month(town, month, count, seed, ends_history=True)
        generating += time.monotonic() - began
        await in_slices(pool, town, town_month.matters, loaders.load_dispatch)
    async with pool.acquire() as conn:
        await conn.execute("VACUUM (ANALYZE)")
        rows = {table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - our own table names
                for table in ("matters", "tasks", "supervisions", "extensions", "matter_places")}
    took = time.monotonic() - started
    log(f"  loaded in {took:.0f}s ({generating:.0f}s generating): {rows}")
    return {"rows": rows, "seconds": round(took, 1), "seconds_generating": round(generating, 1)}


def postmaster_cpu(postgres: Postgres) -> Callable[[], float]:
    """CPU seconds of the cluster's postmaster and its backends so far (the postmaster's pid from its
    pid file: as root the cluster runs under runuser)."""
    pid = int((postgres.workdir / "data" / "postmaster.pid").read_text().split()[0])
    return lambda: tree_cpu_seconds(pid)


async def timed_county(pool: asyncpg.Pool, layouts: dict[str, tuple[Town, Town]], first: date, last: date,
                       as_of: datetime, seed: int, database_cpu: Callable[[], float]) -> dict[str, Any]:
    """One county rehearsal through flows.county_rehearsal: wall and CPU seconds (this process's and
    PostgreSQL's: on a shared machine the CPU it needed is the figure other tenants do not move),
    how busy the machine was meanwhile, each town's seconds, the county's sums."""
    before, cpu, db_cpu, began = settle.cpu_times(), time.process_time(), database_cpu(), time.perf_counter()
    done = await flows.county_rehearsal(pool, layouts, first, last, as_of, times="drawn", seed=seed)
    wall, cpu, db_cpu = time.perf_counter() - began, time.process_time() - cpu, database_cpu() - db_cpu
    busy = settle.busy_share(before, settle.cpu_times())
    towns = sorted(seconds for _, seconds in done)
    comparisons = [comparison for comparison, _ in done]
    total = rehearsal.county_total(comparisons)
    log(f"  {total['matters']:,} matters of {len(done)} towns in {wall:.1f}s (CPU: this process {cpu:.1f}s,"
        f" PostgreSQL {db_cpu:.1f}s; the machine {busy:.0%} busy, load {os.getloadavg()[0]:.1f});"
        f" a town p50 {towns[len(towns) // 2]:.2f}s, slowest {towns[-1]:.2f}s")
    return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "database_cpu_seconds": round(db_cpu, 2),
            "machine_busy_share": round(busy, 3),
            "load_average": os.getloadavg(), "town_seconds": {c.town_code: round(s, 3) for c, s in done},
            "town_p50_seconds": round(towns[len(towns) // 2], 3), "town_max_seconds": round(towns[-1], 3),
            "total": total}


async def read_only(pool: asyncpg.Pool, towns: list[Town], first: date, last: date, as_of: datetime) -> float:
    """The reads alone (each town's store.period_rows and history_of): the database's share."""
    began = time.perf_counter()
    for town in towns:
        start, end = rehearsal.period_of_days(first, last, town)
        async with pool.acquire() as conn:
            rows = await store.period_rows(conn, town.code, start, end, as_of)
        rehearsal.history_of(rows, town.code, start, end, as_of)
    return time.perf_counter() - began


def twin_check(history: rehearsal.History, town: Town, seeds: int) -> dict[str, Any]:
    """The town's month rehearsed on its own layout, drawn with seeds 1..`seeds`, beside the month as
    recorded: the town's 响应率, 办结率 and overdue, and the 响应率 of each colour (a window of clock
    hours and one of working days are placed differently; docs/rehearsal.md's twin check)."""
    period = history.start.astimezone(town.calendar.tz).strftime("%Y-%m")

    def figures(runs: list[rehearsal.TaskRun]) -> dict[str, Any]:
        facts = [(r.colour, rehearsal.task_fact(r, town, period)) for r in runs
                 if history.start <= r.dispatched_at < history.end]
        counts = scoring.counts(f for _, f in facts)
        rates = scoring.rates(counts)
        return {"response": rates["response"], "resolution": rates["resolution"], "overdue": counts.overdue,
                "handled": counts.dispatched,
                "response_by_colour": {colour: scoring.rates(scoring.counts(f for c, f in facts if c == colour))[
                    "response"] for colour in ("red", "orange", "yellow")}}

    def line(name: str, f: dict[str, Any]) -> str:
        colours = " ".join(f"{c} {v:.1%}" for c, v in f["response_by_colour"].items() if v is not None)
        return (f"    {name}: 响应率 {f['response']:.1%} 办结率 {f['resolution']:.1%} overdue {f['overdue']}"
                f" of {f['handled']} ({colours})")

    known = rehearsal.handlings(history, town)
    found = {"town": town.code, "matters": len(history.matters),
             "recorded": figures(rehearsal.recorded(history, town)),
             "drawn": {seed: figures(rehearsal.rehearse(history, town, town, times="drawn", seed=seed,
                                                        real_handlings=known)) for seed in range(1, seeds + 1)}}
    log(f"  the twin of town {town.code} ({len(history.matters):,} matters):")
    log(line("recorded", found["recorded"]))
    for seed, drawn in found["drawn"].items():
        log(line(f"drawn, seed {seed}", drawn))
    return found


def command(dsn: str, county_dir: Path, layouts: Path, first: date, last: date, as_of: datetime,
            seed: int) -> dict[str, Any]:
    """`python -m dispatch rehearse --town all` in a process of its own, as an operator runs it."""
    env = os.environ | {"TOWNFLOW_DATABASE_URL": dsn, "TOWNFLOW_TOWN_DIR": str(county_dir)}
    argv = [sys.executable, "-m", "dispatch", "rehearse", "--town", "all", "--from", first.isoformat(),
            "--to", last.isoformat(), "--layout", str(layouts), "--seed", str(seed), "--as-of", as_of.isoformat()]
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - began
    tail = done.stdout.strip().splitlines()[-1]
    log(f"  the command: {wall:.1f}s wall; it says {tail}")
    return {"argv": argv[1:], "seconds": round(wall, 2), "said": tail}


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    county_dir, layouts_dir = folder / "county", folder / "layouts"
    make_county(county_dir, args.towns)
    towns = list(load_county(county_dir).towns.values())
    write_layouts(towns, layouts_dir)
    first = args.month
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    as_of = datetime.combine(last + timedelta(days=1 + AS_OF_DAYS), datetime.min.time(), towns[0].calendar.tz)
    postgres = Postgres(folder / "postgres").start()
    try:
        postgres.create_database("dispatch")
        pool = await create_pool(postgres.dsn("dispatch"), 1, CONNECTIONS + 1)
        try:
            await migrate(pool, [SHARED_MIGRATIONS, DISPATCH_MIGRATIONS])
            log(f"a county-month: {args.towns} towns, {args.matters:,} matters in {first:%Y-%m}")
            loaded = await load(pool, towns, first, args.matters, args.seed)
            began = time.perf_counter()
            layouts = rehearsal.county_layouts({t.code: t for t in towns}, layouts_dir)
            layouts_seconds = time.perf_counter() - began
            log(f"  {len(layouts)} merged layouts checked and loaded in {layouts_seconds:.1f}s")
            quiet = await settle.quiet(args.quiet_wait, report=log)
            reads = await read_only(pool, towns, first, last, as_of)
            log(f"  the reads alone: {reads:.1f}s")
            twin = None
            if args.twin_seeds:
                start, end = rehearsal.period_of_days(first, last, towns[0])
                async with pool.acquire() as conn:
                    rows = await store.period_rows(conn, towns[0].code, start, end, as_of)
                twin = twin_check(rehearsal.history_of(rows, towns[0].code, start, end, as_of), towns[0],
                                  args.twin_seeds)
            runs = [await timed_county(pool, layouts, first, last, as_of, args.seed, postmaster_cpu(postgres))
                    for _ in range(args.repetitions)]
        finally:
            await pool.close()
        cli = command(postgres.dsn("dispatch"), county_dir, layouts_dir, first, last, as_of, args.seed)
    finally:
        postgres.stop()
    best = min(runs, key=lambda r: r["seconds"])
    return {"at": datetime.now(UTC).isoformat(timespec="seconds"), "database_only": True,
            "size": {"towns": args.towns, "matters": args.matters, "month": f"{first:%Y-%m}", "seed": args.seed,
                     "as_of": as_of.isoformat(), "alternative": f"{MERGED} merged into {INTO} in every town"},
            "cpus": os.cpu_count(), "loaded": loaded, "quiet_before": quiet,
            "layouts_seconds": round(layouts_seconds, 2), "reads_alone_seconds": round(reads, 2),
            "runs": runs, "best_seconds": best["seconds"], "median_seconds": sorted(r["seconds"] for r in runs)[len(runs) // 2],
            "command": cli, "twin": twin,
            "targets": {"county_month_le_60s": best["seconds"] <= 60,
                        "town_month_le_3s": max(r["town_max_seconds"] for r in runs) <= 3}}


def _month(text: str) -> date:
    return datetime.strptime(text, "%Y-%m").date()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--towns", type=int, default=60)
    parser.add_argument("--matters", type=int, default=65_000, help="matters of the county-month, over its towns")
    parser.add_argument("--month", type=_month, default=date(2026, 11, 1), help="YYYY-MM (default 2026-11)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repetitions", type=int, default=3, help="county rehearsals timed")
    parser.add_argument("--twin-seeds", type=int, default=0,
                        help="the first town's twin check, drawn with seeds 1..N (0: none)")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="longest wait for the machine to be under 30%% busy before timing (0: none)")
    args = parser.parse_args()
    result = in_temp_folder("townflow-rehearsal-", lambda folder: run(args, folder))
    write_result("rehearsal", result)
    for name, passed in result["targets"].items():
        log(f"target {name}: {'pass' if passed else 'FAIL'}")


if __name__ == "__main__":
    main()
