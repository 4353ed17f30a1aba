"""Load generation and measurement against a running stack: matters filed over HTTP at a fixed
offered rate, latency measured to the first appraisal.score.updated of each matter."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer

from devstack.stack import Stack
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

# A realistic morning: mostly service items, some territorial, one in ten needs an inspection.
MIX = [("S001", None), ("S002", None), ("S010", None), ("S007", None), ("T001", None), ("T002", None),
       ("S003", None), ("T005", None), ("S011", None), ("E001", "SITE")]
LOCATED = {"T001", "T002", "T005", "E001"}  # `located: true` in the demo catalog
VILLAGES = ["V01", "V02", "V03", "V04", "V05", "V06"]


def village_points(count: int = 64) -> dict[str, list[tuple[float, float]]]:
    """Points spread over each village of the demo town (issue #30: what filing with a point costs),
    decided by their index, so every run files the same places. A county's towns are copies of the
    demo town's map, so the same points lie in each of them."""
    places = load_town(DEMO_TOWN_DIR).places
    assert places is not None, "the demo town has a map"
    points: dict[str, list[tuple[float, float]]] = {}
    for village, shape in places.villages.items():
        west, south, east, north = shape.bounds
        found: list[tuple[float, float]] = []
        for n in itertools.count():  # a regular scatter over the box, kept where it lies in the village
            if len(found) == count or n > 50 * count:
                break
            u, v = (n * 0.618034) % 1, (n * 0.754878) % 1
            point = (round(west + (east - west) * u, 6), round(south + (north - south) * v, 6))
            located = places.locate(*point)
            if located is not None and located.village == village:
                found.append(point)
        points[village] = found
    return points


@dataclass
class Run:
    offered_rate: float
    sent: dict[str, float] = field(default_factory=dict)      # request_id -> send time
    scored: dict[str, float] = field(default_factory=dict)    # request_id -> first score time
    errors: int = 0
    started: float = 0.0
    finished_filing: float = 0.0

    def latencies_ms(self) -> list[float]:
        return sorted(1000 * (self.scored[r] - t) for r, t in self.sent.items() if r in self.scored)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms()
        done = [self.scored[r] for r in self.sent if r in self.scored]
        span = (max(done) - self.started) if done else 0.0
        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None
        return {
            "offered_rate": self.offered_rate, "filed": len(self.sent), "scored": len(done), "errors": self.errors,
            "sustained_throughput": round(len(done) / span, 1) if span else 0.0,
            "filing_rate": round(len(self.sent) / max(self.finished_filing - self.started, 1e-9), 1),
            "latency_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
                           "mean": round(statistics.fmean(lat), 1) if lat else None},
        }


async def watch_scores(bootstrap: str, run: Run, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer("appraisal.score.updated.v1", bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", enable_auto_commit=False, isolation_level="read_committed",
                                group_id=f"bench-{uuid.uuid4()}")
    await consumer.start()
    try:
        while consumer.assignment() == set():
            await asyncio.sleep(0.05)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    for request_id in [event["correlation_id"], *event["data"].get("correlation_ids", ())]:
                        run.scored.setdefault(request_id, now)
    finally:
        await consumer.stop()


def _officer(stack: Stack, towns: list[str] | None) -> str:
    """One town's officer; across a county, the county's admin (it acts in every town)."""
    if towns:
        return stack.token("enforcement", "c001", ["county_admin"])
    return stack.token("enforcement", "s026", ["officer"])


async def complete_inspections(stack: Stack, stop: asyncio.Event, towns: list[str] | None = None) -> None:
    """The enforcement team at work: start and finish every planned inspection."""
    officer = {"Authorization": f"Bearer {_officer(stack, towns)}"}
    base = stack.services["enforcement"].url
    async with httpx.AsyncClient(timeout=30, headers=officer) as client:
        while not stop.is_set():
            planned = (await client.get(f"{base}/v1/inspections", params={"status": "planned", "limit": 200})).json()
            for inspection in planned:
                path = f"{base}/v1/inspections/{inspection['inspection_id']}"
                if (await client.post(f"{path}/start", json={"officers": ["s026", "s027"]})).status_code != 200:
                    continue
                await client.post(f"{path}/result", json={
                    "officers": ["s026", "s027"], "present_units": inspection["units"],
                    "findings": [{"task_id": n["task_id"], "outcome": "compliant"}
                                 for n in inspection["needs"] if n["task_id"]]})
            await asyncio.sleep(1.0)


async def file_at_rate(stack: Stack, run: Run, count: int, rate: float, concurrency: int = 64,
                       towns: list[str] | None = None, points: dict[str, list[tuple[float, float]]] | None = None,
                       ) -> None:
    """aiohttp, not httpx, here: the load generator shares the machine's two cores with the
    system it measures, and aiohttp's client costs about half the CPU per request. Across a county
    (`towns`), the county's admin files into each town in turn. With `points` (village_points), the
    located items of the mix (T001, T002, T005, E001: four matters in ten) are filed with a point in
    their village."""
    filer = stack.token("intake", "c001", ["county_admin"]) if towns else stack.token("intake", "s010", ["clerk"])
    clerk = {"Authorization": f"Bearer {filer}"}
    url = f"{stack.services['intake'].url}/v1/requests"
    gate = asyncio.Semaphore(concurrency)
    mix = itertools.cycle(MIX)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=clerk, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def one(n: int, item: str, target: str | None) -> None:
            body = {"channel": "window", "item_code": item, "description": "bench", "village": VILLAGES[n % 6],
                    "location": "bench", "citizen": {"name": "压测", "phone": f"139{n % 10**8:08d}"}}
            if target:
                body["target"] = f"{target}-{n % 50}"
            if points and item in LOCATED:
                spots = points[VILLAGES[n % 6]]
                longitude, latitude = spots[(n // 6) % len(spots)]
                body["point"] = {"longitude": longitude, "latitude": latitude}
            if towns:
                body["town_code"] = towns[n % len(towns)]
            async with gate:
                sent = time.monotonic()
                try:
                    async with client.post(url, json=body) as response:
                        response.raise_for_status()
                        run.sent[(await response.json())["request_id"]] = sent
                except (aiohttp.ClientError, TimeoutError):
                    run.errors += 1

        run.started = time.monotonic()
        tasks = []
        for n in range(count):
            due = run.started + n / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            item, target = next(mix)
            tasks.append(asyncio.create_task(one(n, item, target)))
        await asyncio.gather(*tasks)
        run.finished_filing = time.monotonic()


async def measure(stack: Stack, count: int, rate: float, settle_seconds: float = 120.0,
                  towns: list[str] | None = None, points: dict[str, list[tuple[float, float]]] | None = None) -> Run:
    assert stack.kafka is not None
    run = Run(offered_rate=rate)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_scores(stack.kafka.bootstrap, run, stop))
    inspector = asyncio.create_task(complete_inspections(stack, stop, towns))
    await asyncio.sleep(2)  # the score watcher joins its group
    await file_at_rate(stack, run, count, rate, towns=towns, points=points)
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline and len([r for r in run.sent if r in run.scored]) < len(run.sent):
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(watcher, inspector, return_exceptions=True)
    return run
