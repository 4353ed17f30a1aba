"""Every read endpoint of every service, from its OpenAPI document, timed; and `/healthz` timed
while a service's heaviest read runs in a loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import auditing

# Not reads of the data: health is timed on its own, the documents describe the API.
SKIPPED = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/asyncapi.json"}
# Reads not walked, each with its reason: (service, route) -> why. None now: the evidence reads
# (issue #29) are walked since the history's inspections and cases carry evidence photos.
NOT_WALKED: dict[tuple[str, str], str] = {}


# Reads timed more than once, each time with another representative search (issue #27's task
# lists): the search's name -> parameter -> the name of its value in the harness's values. Each is
# a read of its own (`dispatch GET /v1/task-search [village open]`), besides the plain one.
SEARCHES: dict[tuple[str, str], dict[str, dict[str, str]]] = {
    ("dispatch", "/v1/task-search"): {
        "ticket": {"q": "search_ticket"},
        "place": {"q": "search_place"},
        "village open": {"village": "search_village", "phase": "search_open"},
        "item ended": {"item": "search_item", "phase": "search_ended"},
        "assignee open": {"assignee": "subject_id", "phase": "search_open"},
        "red overdue": {"colour": "search_colour", "overdue": "search_yes"},
        "returned": {"status": "search_status"},
        "reopened": {"reopened": "search_yes"},
        "second page": {"offset": "search_offset"},
    },
    # Place (issue #30): the 地图 page's read (a town's open located tasks, up to 1,000) and a cell's.
    ("dispatch", "/v1/tasks"): {
        "map": {"located": "search_yes", "phase": "search_open", "limit": "map_limit"},
        "cell open": {"cell": "search_cell", "phase": "search_open"},
    },
}


# The auditor's searches of each service's audit trail (issue #28), by person, matter, action and
# date range (auditing.py: the records of the history's requests).
SEARCHES |= {(service, "/v1/audit"): auditing.searches(service) for service in auditing.AUDITED}


@dataclass(frozen=True)
class Read:
    service: str
    path: str           # the route as the OpenAPI document names it
    url: str            # with its path parameters filled in
    params: dict[str, str]
    search: str = ""    # one of SEARCHES, or the plain read

    @property
    def name(self) -> str:
        return f"{self.service} GET {self.path}" + (f" [{self.search}]" if self.search else "")


class MissingParameter(LookupError):
    """A required parameter the harness has no value for: a new endpoint needs one in `values`."""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(samples, 0.50), 2), "p95": round(percentile(samples, 0.95), 2),
            "p99": round(percentile(samples, 0.99), 2), "n": len(samples)}


async def read_routes(client: httpx.AsyncClient, service: str, base: str,
                      values: Mapping[str, str]) -> list[Read]:
    """Every GET route of the service's OpenAPI document, each with realistic parameters from
    `values` (by route and parameter, by service and parameter, or by parameter name); optional
    parameters without a value are left out."""
    document = (await client.get(f"{base}/openapi.json")).raise_for_status().json()
    reads = []
    for path, operations in sorted(document["paths"].items()):
        if "get" not in operations or path in SKIPPED or (service, path) in NOT_WALKED:
            continue
        url, params = path, {}
        for parameter in operations["get"].get("parameters", []):
            name, where = parameter["name"], parameter["in"]
            if where not in ("path", "query"):
                continue
            # The route's own value first (`intake /v1/requests/{ticket_no}/photos/{attachment_id}:ticket_no`),
            # then the service's, then the name's.
            value = values.get(f"{service} {path}:{name}", values.get(f"{service}:{name}", values.get(name)))
            if value is None:
                if parameter.get("required") or where == "path":
                    raise MissingParameter(f"{service} GET {path}: no value for {where} parameter {name!r}")
                continue
            if where == "path":
                url = url.replace("{" + name + "}", value)
            else:
                params[name] = value
        reads.append(Read(service, path, base + url, params))
        for search, wanted in SEARCHES.get((service, path), {}).items():
            given = {**values, "search_offset": "50"}
            if missing := [v for v in wanted.values() if v not in given]:
                raise MissingParameter(f"{service} GET {path} [{search}]: no value for {missing}")
            reads.append(Read(service, path, base + url, params | {k: given[v] for k, v in wanted.items()}, search))
    return reads


async def time_reads(clients: Mapping[str, httpx.AsyncClient], reads: list[Read], repetitions: int,
                     report: Any = print) -> dict[str, dict[str, Any]]:
    """Every read called once to warm its connection and caches, then `repetitions` rounds of one
    call of each. Round by round, not read after read: a passing disturbance (a checkpoint, a
    collector's pass, another tenant of the machine) falls on a sample of every read, instead of
    on all the samples of the one read timed in that second."""
    for read in reads:
        await clients[read.service].get(read.url, params=read.params)
    samples: dict[str, list[float]] = {read.name: [] for read in reads}
    statuses: dict[str, set[int]] = {read.name: set() for read in reads}
    for _ in range(repetitions):
        for read in reads:
            started = time.perf_counter()
            response = await clients[read.service].get(read.url, params=read.params)
            samples[read.name].append(1000 * (time.perf_counter() - started))
            statuses[read.name].add(response.status_code)
    timed = {}
    for read in reads:
        timed[read.name] = {"service": read.service, "path": read.path, "params": read.params,
                            "statuses": sorted(statuses[read.name]), **summary_ms(samples[read.name])}
        report(f"  {read.name}: p50 {timed[read.name]['p50']} ms, p95 {timed[read.name]['p95']} ms "
               f"{timed[read.name]['statuses']}")
    return timed


async def health_under_load(client: httpx.AsyncClient, base: str, heavy: Read, samples: int,
                            readers: int = 2) -> dict[str, Any]:
    """`/healthz` called `samples` times, one after the other, while `readers` loops call the
    service's heaviest read without pause."""
    stop = asyncio.Event()
    loaded_calls = 0

    async def hammer() -> None:
        nonlocal loaded_calls
        while not stop.is_set():
            await client.get(heavy.url, params=heavy.params)
            loaded_calls += 1

    loops = [asyncio.create_task(hammer()) for _ in range(readers)]
    await asyncio.sleep(0)  # the readers' first calls are in flight before health is first asked
    timings = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            (await client.get(f"{base}/healthz")).raise_for_status()
            timings.append(1000 * (time.perf_counter() - started))
    finally:
        stop.set()
        for loop in loops:
            with contextlib.suppress(Exception):
                await loop
    return {"while": heavy.name, "readers": readers, "heavy_calls": loaded_calls, **summary_ms(timings)}
