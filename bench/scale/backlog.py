"""The map with an open backlog (issue #30): the history closes nearly every matter, so the 地图 page
would be timed with a handful of points. Before the last stage's timings, the town whose pages are
timed files a backlog of open located matters through intake's own API, as its clerk at the window
would (each with a point in its village, picked as the history picks a located matter's:
history.matter_place, inside the town's grid cells from its GeoJSON), and the harness waits until
dispatch holds every one of them as an open task with its point: what the map reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

from dispatch import rules as dispatch_rules
from townflow_shared.town import Town

from .history import matter_place

FILINGS_AT_ONCE = 8  # a few windows filing at once, not a flood: the machine is shared with the services


def filings(town: Town, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` filings of the town's located service items (a person's matter its post holder
    handles, which stays open until then), each with a point in one of its villages, in turn."""
    items = [i for i in town.catalog.values() if i.located and i.task_kind == "service"]
    if not items:
        raise LookupError(f"town {town.code} has no located service item to file a backlog of")
    bodies: list[dict[str, Any]] = []
    villages = list(town.villages)
    for n in range(10 * count + 100):  # a point is missed only where a cell is not a box
        if len(bodies) == count:
            break
        item, village = items[n % len(items)], villages[n % len(villages)]
        place = matter_place(town, item, village, f"backlog-{seed}-{n}")
        if place is not None:
            bodies.append({"channel": "window", "item_code": item.code, "description": "压测积压事项",
                           "point": {"longitude": place[0].longitude, "latitude": place[0].latitude},
                           "village": village, "location": f"{village}-{n % 90}号",
                           "citizen": {"name": "压测", "phone": f"139{n:08d}"}, "sms_opt_out": True})
    if len(bodies) < count:
        raise LookupError(f"town {town.code}: too few points in its grid cells for its located items")
    return bodies


async def file_backlog(intake_url: str, token: str, town: Town, count: int, seed: int, dispatch_dsn: str,
                       timeout: float, report: Callable[[str], None] = print) -> dict[str, Any]:
    """File `count` open located matters in `town` through intake (POST /v1/requests), then wait
    until dispatch holds each as an open located task. What it took, and how many open located
    tasks the town then has (the map draws up to 1,000 of them)."""
    bodies = filings(town, count, seed)
    gate = asyncio.Semaphore(FILINGS_AT_ONCE)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=intake_url, timeout=120,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        async def one(body: dict[str, Any]) -> str:
            async with gate:
                answer = (await client.post("/v1/requests", json=body)).raise_for_status().json()
                return str(answer["request_id"])
        request_ids = await asyncio.gather(*(one(b) for b in bodies))
    filed = time.monotonic()
    report(f"  {len(request_ids):,} located matters filed in {town.code} through intake in {filed - started:.1f}s")
    conn = await asyncpg.connect(dispatch_dsn)  # open: dispatch's phase, as the map asks for it
    try:
        while True:
            held = await conn.fetchval(
                "SELECT count(*) FROM tasks t JOIN matter_places USING (request_id)"
                " WHERE t.request_id = ANY($1::uuid[]) AND t.status = ANY($2::text[])",
                request_ids, list(dispatch_rules.PHASES["open"]))
            if held >= len(request_ids):
                break
            if time.monotonic() - filed > timeout:
                raise TimeoutError(f"dispatch holds {held} of the {len(request_ids)} backlog's tasks after {timeout:.0f}s")
            await asyncio.sleep(0.5)  # polling dispatch's database: there is nothing to be woken by
        open_located = await conn.fetchval(
            "SELECT count(*) FROM tasks t WHERE t.town_code = $1 AND t.status = ANY($2::text[])"
            " AND EXISTS (SELECT FROM matter_places p WHERE p.request_id = t.request_id)",
            town.code, list(dispatch_rules.PHASES["open"]))
    finally:
        await conn.close()
    dispatched = time.monotonic()
    report(f"  dispatch holds them as open tasks {dispatched - filed:.1f}s later; "
           f"{open_located:,} open located tasks in the town")
    return {"town": town.code, "filed": len(request_ids), "seconds_filing": round(filed - started, 1),
            "filings_per_s": round(len(request_ids) / (filed - started), 1) if filed > started else None,
            "seconds_until_dispatch_holds_them": round(dispatched - filed, 1),
            "open_located_tasks_in_town": open_located}
