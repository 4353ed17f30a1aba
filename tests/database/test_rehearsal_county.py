"""A county's rehearsal (issue #32, `python -m dispatch rehearse --town all`): on a database of the
test's own, a few days of matters in two of the demo county's three towns made through dispatch's
own flows (routed, some accepted and completed), the third town left without any; then the command
over the whole county. Every town of the county has its line — the empty one too — each as the
town's own rehearsal gives it, and the county's sums are the towns' sums: counts added, a rate the
rate of the summed counts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml

from dispatch import flows, rehearsal, scheduled
from dispatch.app import MIGRATIONS
from dispatch.settings import DispatchSettings
from dispatch.store import units_of_work
from townflow_shared.auth import Principal
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import SHARED_MIGRATIONS, Database, create_pool, migrate
from townflow_shared.settings import DEMO_COUNTY_DIR
from townflow_shared.town import Town

from ..conftest import BAILU, QINGHE, SHIQIAO

COUNTY = load_county(DEMO_COUNTY_DIR)
FIRST, LAST = date(2026, 11, 2), date(2026, 11, 6)  # a working week
AS_OF = datetime.fromisoformat("2026-11-20T18:00:00+08:00")
MATTERS = {QINGHE: 9, SHIQIAO: 5}  # BAILU files none that week


async def a_week(deps: flows.Deps, town: Town, count: int) -> None:
    """`count` matters filed an hour apart from Monday 09:00, each routed by dispatch's rules; two
    in three accepted within the hour, one in three completed the same day."""
    items = [i for i in town.catalog.values() if i.task_kind == "service" and not i.completion_photo_required]
    village = next(iter(town.villages))
    monday = datetime(2026, 11, 2, 9, tzinfo=town.calendar.tz)
    for n in range(count):
        filed = monday + timedelta(hours=n % 7, days=n // 7)
        deps.clock.set(filed)
        async with deps.unit_of_work() as uow:
            task_id = await flows.dispatch_matter(uow, town, flows.Matter(
                uuid.uuid4(), f"{town.code}-{n:05d}", items[n % len(items)].code, "yellow", village, "村口", None),
                now=filed)
        task = await deps.database.pool.fetchrow("SELECT assignee FROM tasks WHERE task_id = $1", task_id)
        who = Principal(sub=task["assignee"], roles=frozenset({"staff"}), town=town.code)
        if n % 3 < 2:
            deps.clock.set(filed + timedelta(minutes=40))
            await flows.accept_task(deps, who, flows.AcceptTask(task_id))
        if n % 3 == 0:
            deps.clock.set(filed + timedelta(hours=3))
            await flows.complete_task(deps, who, flows.CompleteTask(task_id, "已处理", "已按要求处理完毕"))


async def test_every_town_of_the_county_is_rehearsed_and_the_county_is_their_sum(fresh_database: str,
                                                                                 tmp_path: Path) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=3)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, MIGRATIONS])
        database = Database()
        database.use(pool)
        deps = flows.Deps(settings=DispatchSettings(), county=COUNTY, clock=Clock(), database=database,
                          unit_of_work=units_of_work(database))
        for code, count in MATTERS.items():
            await a_week(deps, COUNTY.towns[code], count)
        deps.clock.set(AS_OF)  # supervision catches up on the levels due by then, as the service's loop would
        await scheduled.supervise_all_due(pool, COUNTY.towns, deps.clock, 500)

        # 青禾镇 rehearses a merger (经济发展办公室's posts to 组织建设办公室) from its own folder; the others
        # their own layouts.
        qinghe = COUNTY.towns[QINGHE]
        (tmp_path / QINGHE).mkdir()
        posts = [p.model_dump(mode="json") | ({"module": "org"} if p.module == "econ" else {})
                 for p in qinghe.posts.values()]
        (tmp_path / QINGHE / "posts.yaml").write_text(yaml.safe_dump({"posts": posts}, allow_unicode=True),
                                                      encoding="utf-8")
        command = [sys.executable, "-m", "dispatch", "rehearse", "--town", "all", "--from", str(FIRST), "--to",
                   str(LAST), "--layout", str(tmp_path), "--times", "replayed", "--as-of", AS_OF.isoformat()]
        env = {**os.environ, "TOWNFLOW_DATABASE_URL": fresh_database, "TOWNFLOW_TOWN_DIR": str(DEMO_COUNTY_DIR)}
        printed = await asyncio.to_thread(subprocess.run, [*command, "--json"], env=env, capture_output=True,
                                          text=True, timeout=120, check=True)
        county = json.loads(printed.stdout)

        # Every town, in code order, each as its own rehearsal gives it.
        towns = {t["town_code"]: t for t in county["towns"]}
        assert list(towns) == sorted(COUNTY.towns) == sorted([BAILU, QINGHE, SHIQIAO])
        layouts = rehearsal.county_layouts(COUNTY.towns, tmp_path)
        assert layouts[BAILU][1] is COUNTY.towns[BAILU] and layouts[QINGHE][1].posts["infrastructure"].module == "org"
        for code, (town, layout) in layouts.items():
            start, end = rehearsal.period_of_days(FIRST, LAST, town)
            own = await flows.rehearsal_of(pool, town, layout, start, end, AS_OF, times="replayed", seed=0)
            assert towns[code] == json.loads(json.dumps(rehearsal.as_plain(own))), code
        assert {code: t["matters"] for code, t in towns.items()} == {BAILU: 0, QINGHE: 9, SHIQIAO: 5}

        # The county is the sum of its towns.
        total = county["total"]
        assert (total["towns"], total["matters"]) == (3, 14)
        for side in ("real", "alternative"):
            lines = [s[side] for t in towns.values() for s in t["subjects"] if s["kind"] == "town" and s[side]]
            assert len(lines) == 2  # the town without matters has no line of its own
            handled = sum(line["handled"] for line in lines)
            assert total[side]["handled"] == handled == 14
            for key in ("overdue", "escalated"):
                assert total[side][key] == sum(line[key] for line in lines)
            assert abs(total[side]["points"] - sum(line["points"] for line in lines)) < 1e-6
            for rate in ("response", "resolution"):  # the summed counts' rate: the towns' weighted by tasks
                assert abs(total[side][rate] - sum(line[rate] * line["handled"] for line in lines) / handled) < 1e-9
        assert total["real"]["response"] == 10 / 14 and total["real"]["resolution"] == 5 / 14
        assert total["recorded"] == total["real"]  # replayed on their own layouts: the week as it happened

        table = (await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True,
                                         timeout=120, check=True)).stdout
        assert all(code in table for code in COUNTY.towns) and "\ncounty  14  " in table
    finally:
        await pool.close()
