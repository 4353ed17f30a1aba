"""Place's reads over a county-year, database only (issue #30's targets: the nearest open matter of
an item within 50 m p95 ≤ 20 ms; the map page and the hotspot view p95 ≤ 300 ms), without the hours
a full `make bench-scale` takes: one PostgreSQL (no Kafka, no service, no HTTP), intake's,
dispatch's and appraisal's databases migrated, a county-year written in SQL on the server, then
each read timed as the product's own store function runs it, round by round, and EXPLAINed.

The county-year: `--towns` towns of `--matters-per-town` matters over 365 days, 40 items of which
16 located (`--located-share` 0.4), 20 villages of 4 grid cells each; a located matter's point
uniform in its cell (a town 0.06° × 0.045°, about 5.6 × 5 km, as the demo towns); one in ten
open, as tests/database/test_task_lists.py's year. And one hotspot a town, where a real year
clusters (a road that keeps breaking): every matter of one located item (I000, a fortieth of the
town's) within 30 m of one point, half of them open — so a filing there finds a dozen open matters
of its item within 50 m, and the nearby read returns and measures the rows a cluster holds, which
the uniform points never do. The reads, each for a town and point drawn at random every round:
- intake `duplicate_candidates` of one just-filed located matter (its three kinds, the nearby
  one within 50 m on the GiST index): what a filing with a point pays for its 重复件 hints; and
  the same for a filing at the town's hotspot;
- dispatch `list_tasks` open and located, up to 1,000 (the 地图 page's one read), and by a cell;
- appraisal `cell_counts` of a month and the month before, folded by `rules.hotspots` (热点).

    python -m bench.scale.place_reads [--towns 60] [--matters-per-town 13000] [--repetitions 50]
                                      (bench/results/place-reads-<time>.json)
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from appraisal import rules as appraisal_rules
from appraisal import store as appraisal_store
from appraisal.app import MIGRATIONS as APPRAISAL_MIGRATIONS
from devstack.postgres import Postgres
from dispatch.app import MIGRATIONS as DISPATCH_MIGRATIONS
from dispatch.store import TaskSearch, list_tasks
from intake import rules as intake_rules
from intake.app import MIGRATIONS as INTAKE_MIGRATIONS
from intake.store import PgStore
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate

from .__main__ import in_temp_folder, log, write_result
from .reads import summary_ms

NOW = datetime(2027, 1, 5, 2, 0, tzinfo=UTC)  # the year ends here
TOWN_SPAN = (0.06, 0.045)  # degrees of longitude, latitude: a demo town's box
LOCATED_ITEMS = 16  # of 40: the territorial, enforcement and joint-visit items
DUPLICATE_WINDOW_DAYS = 30  # the demo towns' rules.yaml intake.duplicate_window_days
WITHIN_M = 50.0


def town_codes(towns: int) -> list[str]:
    return [f"321003{100 + i:03d}" for i in range(towns)]


# Every row of a matter made from its town's index `t` and its number `n` (1…per town), so each
# database is written from the same numbers: the matter's uuid from (t, n), its time back from
# NOW, its item, village, cell and point. md5 of (t, n) gives each its own uniform numbers.
MATTERS = """
SELECT t.code AS town_code, t.i, n,
       uuid_in(md5('m' || t.i || '-' || n)::cstring) AS request_id,
       $2::timestamptz - (n * interval '365 days' / $3::int) AS at,
       'I' || lpad((n % 40)::text, 3, '0') AS item_code,
       (n % 40) < $4::int AS located,
       CASE WHEN n % 40 = 0 THEN 0 ELSE (n / 7) % 20 END AS village,  -- the hotspot's in the first cell
       CASE WHEN n % 40 = 0 THEN 0 ELSE (n / 3) % 4 END AS cell,
       ('x' || substr(md5('x' || t.i || '-' || n), 1, 8))::bit(32)::bigint / 4294967296.0 AS u,
       ('x' || substr(md5('y' || t.i || '-' || n), 1, 8))::bit(32)::bigint / 4294967296.0 AS v,
       n % 40 = 0 AS hot,
       CASE WHEN n % 40 = 0 THEN (n / 40) % 2 = 0 ELSE n % 10 = 9 END AS open
  FROM unnest($1::text[]) WITH ORDINALITY AS t(code, i)
 CROSS JOIN generate_series(1, $3::int) AS n
"""
# A village is a strip 1/20 of the town wide, its 4 cells stacked north to south in it. A hotspot
# matter (in the town's first cell) stands within ±0.0002° (about 19 m of longitude and 22 of
# latitude: inside 30 m) of the cell's middle instead of anywhere in it.
HOT_SPREAD = 0.0004
SPREAD = f"CASE WHEN m.hot THEN 0.5 + ({{0}} - 0.5) * {HOT_SPREAD} / {{1}} ELSE {{0}} END"
POINT = (f"ST_SetSRID(ST_MakePoint(119.0 + (m.i % 10) * 0.1"
         f" + (m.village + {SPREAD.format('m.u', TOWN_SPAN[0] / 20)}) * {TOWN_SPAN[0]} / 20,"
         f" 32.0 + (m.i / 10) * 0.1 + (m.cell + {SPREAD.format('m.v', TOWN_SPAN[1] / 4)}) * {TOWN_SPAN[1]} / 4),"
         f" 4326)::geography")
CELL = "m.town_code || lpad((m.village + 1)::text, 3, '0') || lpad((m.cell + 1)::text, 3, '0')"
HOT_ITEM = "I000"

LOAD_INTAKE = f"""
WITH m AS ({MATTERS})
INSERT INTO requests (request_id, ticket_no, access_code, channel, item_code, colour, description, village, location,
                      citizen_name, citizen_ref, filed_by, filed_at, status)
SELECT m.request_id, m.town_code || '-' || to_char(m.at, 'YYYYMMDD') || '-' || lpad(m.n::text, 6, '0'), 'K7QX2M',
       'window', m.item_code, 'yellow', '路面破损', 'V' || lpad((m.village + 1)::text, 2, '0'), '村道',
       '群众', md5(m.n::text), 's010', m.at, CASE WHEN m.open THEN 'dispatched' ELSE 'closed' END
  FROM m
"""  # noqa: S608 - this module's own constants; every value bound
LOAD_INTAKE_PLACES = f"""
WITH m AS ({MATTERS})
INSERT INTO request_places (request_id, town_code, item_code, filed_at, point, grid_cell)
SELECT m.request_id, m.town_code, m.item_code, m.at, {POINT}, {CELL} FROM m WHERE m.located
"""  # noqa: S608 - this module's own constants; every value bound
LOAD_DISPATCH = f"""
WITH m AS ({MATTERS})
INSERT INTO tasks (task_id, town_code, request_id, ticket_no, item_code, kind, colour, village, location,
                   lead_module, post, assignee, assigned_via, status, dispatched_at, window_start, respond_by, resolve_by)
SELECT gen_random_uuid(), m.town_code, m.request_id,
       m.town_code || '-' || to_char(m.at, 'YYYYMMDD') || '-' || lpad(m.n::text, 6, '0'), m.item_code, 'territorial',
       (ARRAY['red', 'orange', 'yellow'])[1 + m.n % 3], 'V' || lpad((m.village + 1)::text, 2, '0'), '村道',
       'm' || (m.n % 8), 'p' || (m.n % 30), 's' || lpad((m.n % 60)::text, 3, '0'), 'A',
       CASE WHEN m.open THEN (ARRAY['dispatched', 'accepted', 'rework', 'completed', 'returned'])[1 + (m.n / 10) % 5]
            ELSE 'closed' END,
       m.at, m.at, m.at + interval '1 hour', m.at + interval '5 days'
  FROM m
"""  # noqa: S608 - this module's own constants; every value bound
LOAD_DISPATCH_PLACES = f"""
WITH m AS ({MATTERS})
INSERT INTO matter_places (request_id, point, grid_cell) SELECT m.request_id, {POINT}, {CELL} FROM m WHERE m.located
"""  # noqa: S608 - this module's own constants; every value bound
LOAD_APPRAISAL = f"""
WITH m AS ({MATTERS})
INSERT INTO located_matters (town_code, request_id, period, grid_cell, item_code)
SELECT m.town_code, m.request_id::text, to_char(m.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), {CELL}, m.item_code
  FROM m WHERE m.located
"""  # noqa: S608 - this module's own constants; every value bound


async def load(pools: dict[str, asyncpg.Pool], towns: list[str], per_town: int, located_items: int) -> dict[str, Any]:
    started = time.monotonic()
    args = (towns, NOW, per_town)
    for service, statements in (("intake", (LOAD_INTAKE, LOAD_INTAKE_PLACES)),
                                ("dispatch", (LOAD_DISPATCH, LOAD_DISPATCH_PLACES)),
                                ("appraisal", (LOAD_APPRAISAL,))):
        async with pools[service].acquire() as conn:
            for statement in statements:
                await conn.execute(statement, *args, located_items)
            await conn.execute("VACUUM (ANALYZE)")
        log(f"  {service} loaded, {time.monotonic() - started:.0f}s")
    counts = {}
    for service, table in (("intake", "request_places"), ("dispatch", "tasks"), ("dispatch", "matter_places"),
                           ("appraisal", "located_matters")):
        counts[f"{service}.{table}"] = await pools[service].fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - our own table names
    return {"rows": counts, "seconds": round(time.monotonic() - started, 1)}


async def timed(name: str, read: Callable[[], Awaitable[Any]], samples: dict[str, list[float]]) -> Any:
    started = time.perf_counter()
    answer = await read()
    samples.setdefault(name, []).append(1000 * (time.perf_counter() - started))
    return answer


PERIOD = "2026-12"  # the hotspots' month: the year's last whole one


async def one_round(pools: dict[str, asyncpg.Pool], town: str, rng: random.Random,
                    samples: dict[str, list[float]]) -> int:
    """Each read once for `town`; how many open matters of its item the filing at the town's hotspot
    found within 50 m (the filing anywhere else finds none: the points are uniform)."""
    found_at_hotspot = 0
    # A just-filed located matter of the town's last month (its open neighbours of its item), one
    # anywhere and one at the hotspot (its item's).
    for name, hot in (("intake: 重复件 of a filing with a point (within 50 m)", False),
                      ("intake: 重复件 of a filing at a hotspot (a dozen within 50 m)", True)):
        new = await pools["intake"].fetchval(
            "SELECT request_id FROM request_places WHERE town_code = $1 AND filed_at > $2"
            " AND (item_code = $4) = $5 ORDER BY md5(request_id::text || $3) LIMIT 1",
            town, NOW - timedelta(days=30), str(rng.random()), HOT_ITEM, hot)
        async with pools["intake"].acquire() as conn:
            found = await timed(name, functools.partial(
                PgStore(conn).duplicate_candidates, [new], [NOW - timedelta(days=DUPLICATE_WINDOW_DAYS)],
                intake_rules.OPEN_STATUSES, intake_rules.DUPLICATE_CANDIDATES_PER_KIND, [WITHIN_M]), samples)
        if hot:
            found_at_hotspot = sum(1 for r in found if r["distance_m"] is not None and r["distance_m"] <= WITHIN_M)
    await timed("dispatch: 地图, a town's open located tasks", lambda: list_tasks(
        pools["dispatch"], [town], TaskSearch(phase="open", located=True), now=NOW, limit=1000), samples)
    cell = f"{town}{rng.randint(1, 20):03d}{rng.randint(1, 4):03d}"
    await timed("dispatch: a cell's open tasks", lambda: list_tasks(
        pools["dispatch"], [town], TaskSearch(phase="open", cell=cell), now=NOW, limit=1000), samples)

    async def hotspots() -> list[appraisal_rules.CellMonth]:
        rows = await appraisal_store.cell_counts(pools["appraisal"], town,
                                                 [PERIOD, appraisal_rules.previous_period(PERIOD)])
        return appraisal_rules.hotspots(PERIOD, ((r["period"], r["grid_cell"], r["item_code"], r["n"]) for r in rows))

    await timed("appraisal: 热点, a town's month by cell and item", hotspots, samples)
    return found_at_hotspot


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    towns = town_codes(args.towns)
    postgres = Postgres(folder / "postgres").start()
    pools: dict[str, asyncpg.Pool] = {}
    try:
        for service, migrations in (("intake", INTAKE_MIGRATIONS), ("dispatch", DISPATCH_MIGRATIONS),
                                    ("appraisal", APPRAISAL_MIGRATIONS)):
            postgres.create_database(service)
            pools[service] = await create_pool(postgres.dsn(service), 1, 2)
            await migrate(pools[service], [SHARED_MIGRATIONS, migrations])
        log(f"a county-year of place: {args.towns} towns × {args.matters_per_town:,} matters")
        loaded = await load(pools, towns, args.matters_per_town, round(40 * args.located_share))
        rng = random.Random(args.seed)  # noqa: S311 - which town and point a round reads, repeatable
        samples: dict[str, list[float]] = {}
        nearby_found = 0
        for _ in range(args.repetitions):  # round by round: each read once a round, as reads.time_reads
            nearby_found += await one_round(pools, rng.choice(towns), rng, samples)
        result = {name: summary_ms(values) for name, values in samples.items()}
        for name, summary in result.items():
            log(f"  {name}: p50 {summary['p50']} ms, p95 {summary['p95']} ms")
        return {"at": datetime.now(UTC).isoformat(timespec="seconds"), "database_only": True,
                "size": {"towns": args.towns, "matters_per_town": args.matters_per_town,
                         "located_share": args.located_share},
                "loaded": loaded, "reads": result, "nearby_matters_found_at_hotspots": nearby_found,
                "slowest_p95_ms": max(s["p95"] for s in result.values())}
    finally:
        for pool in pools.values():
            await pool.close()
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--towns", type=int, default=60)
    parser.add_argument("--matters-per-town", type=int, default=13_000)
    parser.add_argument("--located-share", type=float, default=LOCATED_ITEMS / 40)
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--seed", type=int, default=30)
    args = parser.parse_args()
    write_result("place-reads", in_temp_folder("townflow-place-", lambda folder: run(args, folder)))


if __name__ == "__main__":
    main()
