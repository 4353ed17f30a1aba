"""Writing the history town-month by town-month: intake's, dispatch's and enforcement's rows
(loaders.py), then the events on the topics, with progress and an ETA."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date
from typing import Any

import asyncpg

from townflow_shared.objects import ObjectStore
from townflow_shared.town import Town

from . import auditing, history, loaders
from .history import Matter, TownMonth
from .topics import HistoryProducer

CONNECTIONS = 4  # per database written row by row
PUTS = 8  # objects put at once


class Photos:
    """The objects of the history's photos (intake's of the filings, dispatch's of the completions,
    enforcement's evidence),
    put for the towns whose pages and reads the run times
    (the first town): a county-year's photos of every town would be tens of gigabytes of the same
    picture, while their records, which the reads search, are in intake's database for every town."""

    def __init__(self, objects: ObjectStore, towns: set[str]) -> None:
        self.objects, self.towns, self.put = objects, towns, 0

    async def write(self, month: TownMonth) -> None:
        if month.town_code not in self.towns:
            return
        photo, gate = history.bench_photo(), asyncio.Semaphore(PUTS)

        async def put(key: str, data: bytes) -> None:
            async with gate:
                await self.objects.put(key, data, photo.content_type)
        rows = [loaders.photo_row(month.town_code, m, a, seq) for m in month.matters for seq, a in enumerate(m.photos, 1)]
        rows += [row for m in month.matters for row in loaders.after_photo_rows(month.town_code, m)]
        rows += [row for m in month.matters for row in loaders.evidence_rows(month.town_code, m)]
        await asyncio.gather(*(put(r["stored_key"], photo.stored) for r in rows),
                             *(put(r["thumbnail_key"], photo.thumbnail) for r in rows))
        self.put += len(rows)


async def in_slices(pool: asyncpg.Pool, town: Town, matters: Sequence[Matter],
                    load: Callable[[asyncpg.Connection, Town, Sequence[Matter]], Awaitable[None]]) -> float:
    """`matters` through `load` in slices on CONNECTIONS connections at once: the loaders write row
    by row (the services' store functions), so it is round trips that take the time. The seconds
    the connections were busy, summed."""
    busy = 0.0

    async def one_slice(part: Sequence[Matter]) -> None:
        nonlocal busy
        started = time.monotonic()
        async with pool.acquire() as conn, conn.transaction():
            await load(conn, town, part)
        busy += time.monotonic() - started

    slices: list[list[Matter]] = [[] for _ in range(CONNECTIONS)]
    for matter in matters:
        slices[zlib.crc32(loaders.slice_key(matter).encode()) % CONNECTIONS].append(matter)
    await asyncio.gather(*(one_slice(part) for part in slices))
    return busy


class Loader:
    def __init__(self, bootstrap: str, pools: Mapping[str, asyncpg.Pool], total_matters: int,
                 photos: Photos | None = None, report: Callable[[str], None] = print) -> None:
        self.producer = HistoryProducer(bootstrap)
        self.pools = pools
        self.photos = photos
        self.total_matters = total_matters
        self.report = report
        self.matters = 0
        self.audit_records = 0
        self.started = time.monotonic()
        self.seconds = {"generating": 0.0, "loading_and_producing": 0.0}
        self.busy = {"intake": 0.0, "topics": 0.0, "dispatch": 0.0, "enforcement": 0.0}  # summed over connections

    async def __aenter__(self) -> Loader:
        await self.producer.__aenter__()
        self.started = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.__aexit__(*exc)

    async def _intake_then_topics(self, month: TownMonth) -> None:
        # Intake's requests first: its consumer steps a request's timeline only once the
        # request is there (an event for a request it does not know is not its town's matter).
        started = time.monotonic()
        if self.photos is not None:  # put before recorded, as intake does
            await self.photos.write(month)
        async with self.pools["intake"].acquire() as conn, conn.transaction():
            await loaders.load_intake(conn, month)
        loaded = time.monotonic()
        await self.producer.produce(month.events())
        self.busy["intake"] += loaded - started
        self.busy["topics"] += time.monotonic() - loaded

    async def _in(self, service: str, town: Town, matters: Sequence[Matter],
                  load: Callable[[asyncpg.Connection, Town, Sequence[Matter]], Awaitable[None]]) -> None:
        self.busy[service] += await in_slices(self.pools[service], town, matters, load)

    async def write(self, town: Town, first_day: date, count: int, seed: int, ends_history: bool) -> None:
        """Generate one town-month and write it into every database it belongs in and onto the topics."""
        started = time.monotonic()
        month = history.town_month(town, first_day, count, seed, ends_history)
        generated = time.monotonic()
        await asyncio.gather(self._intake_then_topics(month),
                             self._in("dispatch", town, month.matters, loaders.load_dispatch),
                             self._in("enforcement", town, month.matters, loaders.load_enforcement))
        # The staff's and citizens' requests' audit records, by the product's writer; each service's
        # sealing pass chains them (dispatch's and enforcement's once they run again).
        self.audit_records += await auditing.write(self.pools, auditing.entries(town, month))
        async with self.pools["enforcement"].acquire() as conn:
            await loaders.load_plan(conn, town, month.plan)
        self.seconds["generating"] += generated - started
        self.seconds["loading_and_producing"] += time.monotonic() - generated
        self.matters += len(month.matters)
        busy = sum(self.seconds.values())
        eta = busy * (self.total_matters - self.matters) / self.matters
        self.report(f"  {town.code} {first_day:%Y-%m}: {self.matters:,}/{self.total_matters:,} matters, "
                    f"{self.producer.produced:,} events, {self.matters / busy:.0f} matters/s, "
                    f"about {eta:.0f}s of writing to go (consumers catch up meanwhile)")

    def summary(self) -> dict[str, Any]:
        busy = sum(self.seconds.values())
        return {"matters": self.matters, "events": self.producer.produced,
                "events_by_topic": dict(sorted(self.producer.by_topic.items())), "audit_records": self.audit_records,
                "photo_objects_put": 2 * self.photos.put if self.photos else 0,
                "seconds_generating": round(self.seconds["generating"], 1),
                "seconds_loading_and_producing": round(self.seconds["loading_and_producing"], 1),
                "busy_seconds_by_destination": {k: round(v, 1) for k, v in self.busy.items()},
                "matters_per_s": round(self.matters / busy, 1) if busy else 0.0,
                "events_per_s": round(self.producer.produced / busy, 1) if busy else 0.0}
