"""`make chaos`: faults under a steady load on replicated services, each run seeded (the seed is
printed for replay).

While matters are filed (each with an Idempotency-Key, retried on either intake replica until one
acknowledges it), with two replicas of every service: kill -9 single replicas at random moments and
start them again; make one service's database read-only the way a managed failover does, then stop
PostgreSQL; stop the Kafka broker; inject malformed and schema-invalid messages into every consumed
topic; stop the S3 server while one filing in five carries a photo; rewind one consumer group to offset zero so whole topics are delivered again; pause (SIGSTOP)
each service's replica holding its outbox relay (appraisal: consumer partitions), cut one off from
PostgreSQL and one from Kafka while it runs, and run one dispatch replica's own clock 5 minutes
ahead (bench.faults; docs/benchmarks.md). Then it checks, from what each service holds and what
every `.dlq` topic holds:

- no matter lost and none counted twice (dispatch's tasks, appraisal's `task_facts.c_dispatched`);
- every poison message in its `.dlq` exactly once per consuming service (duplicates counted);
- no valid event dead-lettered (a `.dlq` message that validates as its topic's event model);
- every replica of every service ready within 30 s of each fault's end;
- appraisal's figures identical after a full replay;
- work filed through the live replicas while a replica is paused or cut off on its topic within
  10 s of its 201, none lost or doubled; each supervision level published once, never early;
- no photo lost once its filing was acknowledged, no object without a record left (photo_faults);
- notify (two replicas, sending to the local receivers; its own faults: kill -9 of its replicas,
  its group rewound, the receivers down then back): every message arrived once, none lost
  (bench/notify_chaos.py).

    python -m bench.chaos [--seed N] [--matters 2000] [--rate 10] [--replicas 2]
                          [--incident-seconds 20] [--broker-stop-seconds 30] [--kills 8]
                          [--faults kill,database,poison,broker,s3,rewind,pause,partition,skew,receivers]
                          [--pause-seconds 45] [--partition-seconds 45] [--clock-ahead-seconds 300]
                          [--s3-stop-seconds 30] [--notify-kills 2] [--receivers-down-seconds 20] [--no-notify]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, UnknownMemberIdError
from pydantic import ValidationError

from devstack.s3 import SeaweedFS
from devstack.stack import REPO, SERVICES, ServiceProcess, Stack, without_intake_keys_use_throwaway_ones
from townflow_shared.county import load_county
from townflow_shared.events import TOPICS
from townflow_shared.kafka import topic_partitions
from townflow_shared.lag import group_lag
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import Town

from .faults import (
    CountedWatch,
    NetCut,
    Probe,
    TopicWatch,
    ahead_env,
    arrived_all,
    judge,
    keep_logs,
    partition_owners,
    partition_unavailable,
    pause,
    relay_holder,
    resume,
    skew_unavailable,
    waits_now,
)
from .notify_chaos import NotifyChaos, notify_steps
from .photo_faults import SWEEP_ENV, PhotoFilings, judge_photos
from .town_staff import StaffReport, staff_at_work

RESULTS = Path(__file__).with_name("results")
READY_WITHIN = 30.0
# Every kind of fault, in the order `--faults` names them.
FAULTS = ("kill", "database", "poison", "broker", "s3", "rewind", "pause", "partition", "skew", "receivers")
ON_TOPIC_WITHIN = 10.0  # work acknowledged during a pause or partition is on its topic within this
LINGER = 8.0            # after a paused replica resumes: what it sends late is watched this long too
Faults = list[dict[str, Any]]


@dataclass(frozen=True)
class Size:
    """How big a run is; `make test` runs a reduced one."""

    matters: int = 2000
    rate: float = 10.0
    replicas: int = 2
    incident_seconds: float = 20.0     # a database read-only, then PostgreSQL stopped, each this long
    broker_stop_seconds: float = 30.0
    s3_stop_seconds: float = 30.0      # the S3 server (SeaweedFS) stopped this long, photos being filed
    kills: int = 8                     # kill -9 of single replicas, spread over the services
    read_only_database: str | None = None  # whose database fails over; None: chosen by the seed
    town_dir: str | None = None        # a town's or a county's folder (TOWNFLOW_TOWN_DIR); None: the demo town
    settle_seconds: float = 300.0      # how long consumers and outbox relays get to catch up after the load
    faults: tuple[str, ...] = FAULTS   # which kinds of fault the run has (`--faults pause,partition,skew`)
    pause_seconds: float = 45.0        # SIGSTOP of a replica holding a lock or partitions, this long
    pause_services: tuple[str, ...] = tuple(SERVICES)  # one pause of each
    partition_seconds: float = 45.0    # a replica cut off from PostgreSQL, then one from Kafka, this long
    partition_services: tuple[str, ...] = ()  # whose holder is cut off (from both); () one each, by the seed
    probe_rate: float = 2.0            # work filed per second through the live replicas during a fault
    clock_ahead_seconds: float = 300.0  # one dispatch replica's own clock runs this far ahead, all run long
    skew_tasks: int = 6                # tasks whose supervision ladder the clock-skew check watches
    skew_window_seconds: float = 30.0  # their (compressed) resolution window
    notify: bool = True                # notify's replicas and the local receivers in the run (bench/notify_chaos.py)
    notify_kills: int = 2              # kill -9 of notify's replicas (besides `kills`, which are the four services')
    receivers_down_seconds: float = 20.0  # the receivers stopped this long (fault "receivers"), then back

    @property
    def duration(self) -> float:
        return self.matters / self.rate


def consumed_topics(names: tuple[str, ...] = tuple(SERVICES)) -> dict[str, list[str]]:
    without_intake_keys_use_throwaway_ones()
    return {s: [t.topic for t in importlib.import_module(f"{s}.app").create_runtime().handlers] for s in names}


@dataclass(frozen=True)
class Filer:
    """What a town's clerk files in chaos: items that reach every service, the town's villages."""

    headers: dict[str, str]
    items: list[str]
    villages: list[str]


def towns_of(stack: Stack) -> list[Town]:
    """The towns the stack serves: its town, or every town of its county folder."""
    return list(load_county(stack.extra_env.get("TOWNFLOW_TOWN_DIR", DEMO_TOWN_DIR)).towns.values())


def filers(stack: Stack) -> list[Filer]:
    """One clerk per town of the stack's town or county folder, each filing the town's own items."""
    result = []
    for town in towns_of(stack):
        clerk = next(s.id for s in town.staff.values() if "clerk" in s.roles)
        by_kind: dict[str, list[str]] = {}
        for item in sorted(town.catalog.values(), key=lambda i: i.code):
            by_kind.setdefault(item.task_kind if item.kind != "territorial" else "territorial", []).append(item.code)
        # Service items mostly, and one each that opens an inspection and a joint visit.
        items = by_kind.get("service", [])[:3] + by_kind.get("territorial", [])[:1] \
            + by_kind.get("enforcement", [])[:1] + by_kind.get("joint_visit", [])[:1]
        token = stack.token("intake", clerk, ["clerk"], town=town.code)
        result.append(Filer({"Authorization": f"Bearer {token}"}, items, sorted(town.villages)))
    return result


def filing_body(filer: Filer, n: int, target: str | None = None) -> dict[str, Any]:
    """The n-th matter a town files; with a `target` of its own, one of the town's service items
    (a task its staff would complete by hand, never an inspection)."""
    item = filer.items[0] if target else filer.items[n % len(filer.items)]
    return {"channel": "window", "item_code": item, "description": "chaos",
            "village": filer.villages[n % len(filer.villages)], "location": "chaos",
            "target": target or f"SITE-{n % 20}", "citizen": {"name": "混沌", "phone": f"137{n:08d}"}}


async def file_steadily(stack: Stack, prefix: str, count: int, rate: float, acknowledged: dict[str, str],
                        receipts: dict[str, tuple[str, str]] | None = None, give_up_after: float = 300.0,
                        answered: Callable[[str, httpx.Response | httpx.HTTPError], None] | None = None,
                        photos: PhotoFilings | None = None) -> None:
    """File `count` matters at `rate`, the towns in turn; each retried with its Idempotency-Key, on
    the intake replicas in turn, until one answers 201 (a client behind a load balancer does the same).
    `receipts` keeps each matter's ticket number and access code, for the citizen's rating;
    `answered(url, answer)` sees every attempt's answer (or error), e.g. to judge the statuses;
    with `photos`, the filings it takes carry a photo (`POST /v1/filings`)."""
    towns = filers(stack)
    intakes = stack.replicas["intake"]
    receipts = {} if receipts is None else receipts

    async def one(client: httpx.AsyncClient, n: int) -> None:
        filer = towns[n % len(towns)]
        clerk = filer.headers
        body = filing_body(filer, n)
        key = f"{prefix}-{n}"
        with_photo = photos is not None and photos.takes(n)
        deadline = time.monotonic() + give_up_after
        attempt = 0
        while time.monotonic() < deadline:
            url = intakes[(n + attempt) % len(intakes)].url
            attempt += 1
            try:
                headers = {**clerk, "Idempotency-Key": key}
                if with_photo:
                    assert photos is not None
                    response = await client.post(f"{url}/v1/filings", data={"filing": json.dumps(body)},
                                                 files=photos.files(), headers=headers)
                else:
                    response = await client.post(f"{url}/v1/requests", json=body, headers=headers)
                if answered is not None:
                    answered(url, response)
                if response.status_code == 201:
                    filed = response.json()
                    acknowledged[key] = filed["request_id"]
                    receipts[filed["request_id"]] = (filed["ticket_no"], filed["access_code"])
                    if with_photo:
                        assert photos is not None
                        photos.filed[filed["request_id"]] = len(photos.files())
                    return
                if with_photo and response.status_code == 503:
                    assert photos is not None
                    photos.refused_unavailable += 1
            except httpx.HTTPError as exc:
                if answered is not None:
                    answered(url, exc)
            await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=10) as client:
        started = time.monotonic()
        tasks = []
        for n in range(count):
            if (delay := started + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, n)))
        await asyncio.gather(*tasks)


async def ready_after(stack: Stack, since: float, timeout: float = 180.0) -> float:
    """Seconds from `since` (a fault's end) until every replica of every service answers /readyz."""
    async with httpx.AsyncClient(timeout=2) as client:
        async def not_ready(process: ServiceProcess) -> dict[str, str] | None:
            """None when ready, else what its checks say."""
            try:
                answer = await client.get(f"{process.url}/readyz")
            except httpx.HTTPError as exc:
                return {"readyz": type(exc).__name__}
            return None if answer.status_code == 200 else answer.json().get("checks", {})

        waiting: dict[str, dict[str, str]] = {}
        while time.monotonic() - since < timeout:
            answers = await asyncio.gather(*(not_ready(p) for p in stack.all_replicas()))
            waiting = {p.label: a for p, a in zip(stack.all_replicas(), answers, strict=True) if a is not None}
            if not waiting:
                return round(time.monotonic() - since, 2)
            await asyncio.sleep(0.2)
    print(f"  not ready {timeout:g} s after the fault: {waiting}", flush=True)  # what the report's inf stands for
    return float("inf")


async def kill_replica(stack: Stack, name: str, index: int, rng: random.Random) -> dict[str, Any]:
    stack.kill_replica(name, index)
    await asyncio.sleep(rng.uniform(0.2, 2.0))
    stack.start_replica(name, index, wait=False)
    ended = time.monotonic()
    return {"fault": "kill -9", "replica": f"{name}-{index}", "ready_after_s": await ready_after(stack, ended)}


async def database_read_only(stack: Stack, name: str, seconds: float) -> dict[str, Any]:
    """A failover: `name`'s sessions cut, new ones read-only for `seconds`, then writable (and cut) again."""
    await asyncio.to_thread(stack.make_database_read_only, name)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(stack.make_database_writable, name)
    ended = time.monotonic()
    return {"fault": "database read-only", "database": name, "seconds": seconds,
            "ready_after_s": await ready_after(stack, ended)}


async def stopped(stack: Stack, fault: str, stop: Callable[[], None], start: Callable[[], object],
                  seconds: float) -> dict[str, Any]:
    """A part of the stack stopped for `seconds`, then started again (`start` returns once it
    answers); the fault with how long stopping it took (PostgreSQL's fast shutdown writes a
    checkpoint once its clients are cut: the span of notify's database edge) and how long the
    services took to be ready after it."""
    began = time.monotonic()
    await asyncio.to_thread(stop)
    stopping = time.monotonic() - began
    await asyncio.sleep(seconds)
    await asyncio.to_thread(start)
    ended = time.monotonic()
    return {"fault": fault, "seconds": seconds, "stopping_s": round(stopping, 2),
            "ready_after_s": await ready_after(stack, ended)}


async def postgres_stopped(stack: Stack, seconds: float,
                           on_stop: Callable[[float, float], None] | None = None) -> dict[str, Any]:
    """`on_stop` is told when PostgreSQL's stop began and when it was down (notify's judge: a
    message a receiver took just before, or while the database was shutting down, could not be
    recorded and is sent again once the database is back)."""
    def stop() -> None:
        began = time.time()
        stack.stop_postgres()
        if on_stop is not None:
            on_stop(began, time.time())

    return await stopped(stack, "postgresql stopped", stop, stack.start_postgres, seconds)


async def broker_stopped(stack: Stack, seconds: float) -> dict[str, Any]:
    return await stopped(stack, "broker stopped", stack.stop_kafka, stack.start_kafka, seconds)


async def object_store_stopped(work: Work, size: Size) -> dict[str, Any]:
    """The S3 server stopped for `s3_stop_seconds` while, besides the load's, photos are filed at
    `probe_rate` (each retried until acknowledged): some are refused while it is down (503), none
    is lost. What the photos became is judged after the run (photo_faults.judge_photos)."""
    stack, photos, server = work.stack, work.photos, work.stack.s3
    assert server is not None and photos is not None
    probe, count = PhotoFilings(every=1), max(1, round(size.s3_stop_seconds * size.probe_rate))
    filing = asyncio.create_task(file_steadily(stack, f"s3-{work.seed}", count, size.probe_rate, work.acknowledged,
                                               receipts=work.receipts, photos=probe))
    entry = await stopped(stack, "object store stopped", server.stop, server.start, size.s3_stop_seconds)
    await filing
    photos.filed |= probe.filed
    photos.refused_unavailable += probe.refused_unavailable
    return entry | {"photo_filings_during": count, "acknowledged": len(probe.filed),
                    "refused_while_down": probe.refused_unavailable,
                    "passed": len(probe.filed) == count and probe.refused_unavailable > 0}


async def receivers_down(work: Work, size: Size) -> dict[str, Any]:
    """Notify's receivers stopped (every webhook refuses connections) for `receivers_down_seconds`
    while matters are filed at `probe_rate`, and longer if need be until notify has failed to send
    at least once (the fault bites; at most 60 s more); then back. Whether what waited arrived, once,
    is judged after the run (NotifyChaos.judge)."""
    stack, notify = work.stack, work.notify
    assert notify is not None
    probes: list[Probe] = []
    await asyncio.to_thread(notify.receivers.stop)
    started = time.monotonic()
    await file_during(work, "filing", stack.replicas["intake"], time.time() + size.receivers_down_seconds,
                      size.probe_rate, probes)
    deadline = time.monotonic() + 60
    while not (failing := await notify.failing(stack)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    down = time.monotonic() - started
    await asyncio.to_thread(notify.receivers.start)
    return {"fault": "receivers down", "seconds": size.receivers_down_seconds, "down_s": round(down, 1),
            "filed_during": len(probes), "failing_when_back": failing, "passed": failing > 0}


# --- faults that stop a replica without killing it (bench.faults) ---------------------------------
@dataclass
class Work:
    """What the faults' own filings add to: the run's acknowledged matters, their receipts, the
    towns' staff (who leave the clock check's tasks alone), and the partitions' cgroups."""

    stack: Stack
    seed: int
    acknowledged: dict[str, str]
    receipts: dict[str, tuple[str, str]]
    staff: StaffReport
    netcut: NetCut | None = None
    filed: int = 0  # numbers the faults' filings across the run
    photos: PhotoFilings | None = None  # the run's filings with photos, when the S3 server is a fault
    notify: NotifyChaos | None = None  # notify's receivers and its kills, when the run has notify


# Where the work acknowledged during a fault of each service shows it got through: a filing's
# first message on intake's and on dispatch's topic, a random plan's on enforcement's (enforcement
# publishes what its own staff do); appraisal's counting is read from its database.
PROBE_TOPICS = {"intake": ("intake.request.filed.v1", "request_id"),
                "dispatch": ("dispatch.task.dispatched.v1", "request_id"),
                "enforcement": ("enforcement.plan.published.v1", "plan_id")}


def planners(stack: Stack) -> list[dict[str, str]]:
    """Each town's enforcement leader's headers, for the random plans (双随机) filed during a fault."""
    result = []
    for town in towns_of(stack):
        leader = next(m.leader for m in town.modules.values() if m.kind == "enforcement")
        token = stack.token("enforcement", leader, town.staff[leader].roles, town=town.code)
        result.append({"Authorization": f"Bearer {token}"})
    return result


async def file_during(work: Work, kind: str, through: list[ServiceProcess], until: float, rate: float,
                      probes: list[Probe], target: str | None = None, count: int | None = None,
                      stop: asyncio.Event | None = None, misses: Counter[str] | None = None) -> None:
    """File work (`kind` "filing": a matter; "plan": a random plan) at `rate` until `until` (epoch
    seconds), `count` are filed or `stop` is set (what is under way is finished), each retried on the `through` replicas in turn until one acknowledges it; each
    acknowledged one goes into `probes` at once, with the moment its 2xx came; every try that was not
    acknowledged is counted in `misses` by replica and answer (a status and its code, or the error)."""
    towns, plans = filers(work.stack), planners(work.stack) if kind == "plan" else []

    async def one(client: httpx.AsyncClient, n: int, k: int) -> None:
        key = f"{kind}-{work.seed}-{n}"
        deadline, attempt, sent = time.monotonic() + 60, 0, time.time()
        while time.monotonic() < deadline:
            replica = through[(k + attempt) % len(through)]
            attempt += 1
            try:
                if kind == "plan":
                    response = await client.post(f"{replica.url}/v1/random-plans", headers=plans[k % len(plans)],
                                                 json={"targets": [f"SITE-{i}" for i in range(6)], "sample_size": 2,
                                                       "seed": n})
                    if response.status_code == 201:
                        probes.append(Probe(key, response.json()["plan_id"], time.time(), replica.label, sent))
                        return
                else:
                    filer = towns[k % len(towns)]
                    response = await client.post(f"{replica.url}/v1/requests", json=filing_body(filer, n, target),
                                                 headers={**filer.headers, "Idempotency-Key": key})
                    if response.status_code == 201:
                        acked, filed = time.time(), response.json()
                        work.acknowledged[key] = filed["request_id"]
                        work.receipts[filed["request_id"]] = (filed["ticket_no"], filed["access_code"])
                        probes.append(Probe(key, filed["request_id"], acked, replica.label, sent))
                        return
                if misses is not None:
                    code = response.json().get("code", "") if response.headers.get("content-type", "").endswith(
                        "json") else ""
                    misses[f"{replica.label} {response.status_code} {code}".rstrip()] += 1
            except httpx.HTTPError as exc:
                if misses is not None:
                    misses[f"{replica.label} {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=10) as client:
        tasks, started, k = [], time.monotonic(), 0
        try:
            while time.time() < until and (count is None or k < count) and not (stop and stop.is_set()):
                tasks.append(asyncio.create_task(one(client, work.filed, k)))
                work.filed, k = work.filed + 1, k + 1
                await asyncio.sleep(max(0.0, started + k / rate - time.monotonic()))
            await asyncio.gather(*tasks)
        finally:  # cancelled: its filings in flight end with it, before the client
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def find_holder(stack: Stack, name: str, rng: random.Random, conn: asyncpg.Connection,
                      timeout: float = 60.0) -> tuple[ServiceProcess, str] | None:
    """The replica of `name` holding its outbox relay (appraisal: one with consumer partitions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name == "appraisal":
            if owners := await partition_owners(stack, name):
                label = rng.choice(sorted(owners))
                return next(p for p in stack.replicas[name] if p.label == label), f"{owners[label]} consumer partitions"
            await asyncio.sleep(0.2)
        elif found := await relay_holder(stack, name, conn):
            return found
    return None


async def pause_holder(stack: Stack, name: str, rng: random.Random,
                       conn: asyncpg.Connection) -> tuple[ServiceProcess, str] | None:
    """SIGSTOP the holder, and make sure it still held when it stopped (a relay between two
    cycles may have let go a moment before): else let it go on and try again."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await find_holder(stack, name, rng, conn, deadline - time.monotonic())
        if found is None:
            return None
        process = found[0]
        pause(process)
        if name == "appraisal":
            return found
        if (still := await relay_holder(stack, name, conn)) is not None and still[0] is process:
            return process, still[1]
        resume(process)
    return None


async def _waits_at(when: float, dsn: str) -> list[dict[str, Any]] | str:
    await asyncio.sleep(max(0.0, when - time.time()))
    try:
        return await waits_now(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"not read: {type(exc).__name__}"


async def held_fault(work: Work, fault: str, name: str, seconds: float, rng: random.Random,
                     size: Size) -> dict[str, Any]:
    """`fault` ("pause", "partition from postgresql", "partition from kafka") of the replica of
    `name` holding its relay (appraisal: consumer partitions) for `seconds`, while work is filed
    through the live replicas; how long that work took to reach its topic, lost and doubled."""
    stack = work.stack
    assert stack.kafka is not None and stack.postgres is not None
    probes: list[Probe] = []
    watch: TopicWatch | CountedWatch
    if name == "appraisal":
        watch = await CountedWatch(stack.postgres.dsn("appraisal"), lambda: [p.ident for p in probes]).start()
    else:
        topic, key = PROBE_TOPICS[name]
        watch = await TopicWatch(stack.kafka.bootstrap, topic, lambda data: data.get(key)).start()
    entry: dict[str, Any] = {"fault": fault, "service": name, "seconds": seconds}
    kind = "plan" if name == "enforcement" else "filing"
    # Work goes on while the holder is looked for: a relay with nothing to send holds its lock for
    # a millisecond a cycle (this filing is not timed; what is filed during the fault is).
    warmed = asyncio.Event()
    warm_up = asyncio.create_task(file_during(work, kind, stack.replicas["enforcement" if kind == "plan" else "intake"],
                                              time.time() + 120, size.probe_rate, [], stop=warmed))
    conn = await asyncpg.connect(stack.postgres.dsn(name))
    try:
        if fault == "pause":
            found = await pause_holder(stack, name, rng, conn)
        else:
            assert work.netcut is not None
            found = await find_holder(stack, name, rng, conn)
            if found is not None:
                port = stack.postgres.port if fault.endswith("postgresql") else stack.kafka.port
                work.netcut.cut(found[0], fault.rsplit(" ", 1)[1], port)
        warmed.set()
        await conn.close()
        if found is None:
            return entry | {"skipped": "no replica held the relay (or partitions) within 60 s", "passed": False}
        victim, held = found
        started = time.time()
        entry |= {"replica": victim.label, "held": held,
                  "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")}
        through = [p for p in stack.replicas["enforcement" if name == "enforcement" else "intake"] if p is not victim]
        misses: Counter[str] = Counter()
        # Halfway through: who waits on whom in the service's database (when work did not go
        # through the live replicas, what held it).
        midway = asyncio.create_task(_waits_at(started + seconds / 2, stack.postgres.dsn(name)))
        try:
            await file_during(work, kind, through, started + seconds, size.probe_rate, probes, misses=misses)
            await asyncio.sleep(max(0.0, started + seconds - time.time()))
            entry["waits_midway"] = await midway
        finally:
            midway.cancel()
            if fault == "pause":
                resume(victim)
            else:
                assert work.netcut is not None
                work.netcut.heal()
        ended = time.monotonic()
        await arrived_all(watch, probes, 120)
        await asyncio.sleep(LINGER)
    finally:
        warmed.set()
        await warm_up
        await watch.stop()
        if not conn.is_closed():
            await conn.close()
    verdict = judge(probes, watch.seen, ON_TOPIC_WITHIN)
    # What the live replicas answered instead of a 2xx: when nothing went through, the reason.
    entry |= verdict | {"ready_after_s": await ready_after(stack, ended), "_idents": [p.ident for p in probes],
                        "not_acknowledged_tries": dict(misses.most_common(5))}
    entry["passed"] = (verdict["acknowledged_during_fault"] > 0 and verdict["lost"] == 0
                       and verdict[f"waited_over_{ON_TOPIC_WITHIN:g}s"] == 0 and verdict["doubled_matters"] == 0
                       and verdict["doubled_on_topic"] == 0)
    return entry


async def clock_of(process: ServiceProcess) -> float:
    """How far ahead of this machine's clock a replica's own clock runs (its HTTP Date header)."""
    async with httpx.AsyncClient(timeout=5) as client:
        before = time.time()
        response = await client.get(f"{process.url}/healthz")
    return round(parsedate_to_datetime(response.headers["date"]).timestamp() - before, 1)


async def clock_ahead(work: Work, index: int, size: Size) -> dict[str, Any]:
    """With one dispatch replica's own clock `clock_ahead_seconds` ahead (since the start): file a
    few matters its towns' staff leave alone, compress their tasks' resolution windows so the
    whole supervision ladder (reminder, overdue, escalated) falls due within seconds, and watch
    dispatch's topic: each level published once, never before its moment, within a supervision
    period after it."""
    stack = work.stack
    assert stack.kafka is not None and stack.postgres is not None
    from dispatch import rules as dispatch_rules  # the moments as dispatch's rules give them

    skewed = stack.replica("dispatch", index)
    entry: dict[str, Any] = {"fault": "clock ahead", "replica": skewed.label,
                             "replica_clock_ahead_s": await clock_of(skewed)}
    target = f"SUPERVISION-PROBE-{work.seed}"
    work.staff.leave_alone.add(target)
    probes: list[Probe] = []
    await file_during(work, "filing", stack.replicas["intake"], time.time() + 60, 5.0, probes, target=target,
                      count=size.skew_tasks)
    towns = {t.code: t for t in towns_of(stack)}
    conn = await asyncpg.connect(stack.postgres.dsn("dispatch"))
    moments: dict[str, datetime] = {}
    tasks: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 60
        while len(tasks) < len(probes) and time.monotonic() < deadline:
            tasks = {str(r["task_id"]): r["town_code"] for r in await conn.fetch(
                "SELECT task_id, town_code FROM tasks WHERE request_id::text = ANY($1) AND redispatch_of IS NULL",
                [p.ident for p in probes])}
            await asyncio.sleep(0.3)
        watch = await TopicWatch(stack.kafka.bootstrap, "dispatch.task.supervised.v1",
                                 lambda d: f"{d['task_id']}/{d['level']}" if d.get("task_id") in tasks else None).start()
        try:
            database_now: datetime = await conn.fetchval("SELECT now()")
            window = timedelta(seconds=size.skew_window_seconds)
            for i, (task_id, town_code) in enumerate(sorted(tasks.items())):
                ladder = towns[town_code].rules.dispatch
                first = database_now + timedelta(seconds=3 + 0.5 * i)
                window_start = first - window * ladder.reminder_at
                resolve_by = window_start + window
                async with conn.transaction():
                    await conn.execute("DELETE FROM supervisions WHERE task_id = $1::uuid", task_id)
                    await conn.execute("UPDATE tasks SET window_start = $2, resolve_by = $3, next_supervision_at = $4"
                                       " WHERE task_id = $1::uuid", task_id, window_start, resolve_by, first)
                for level, moment in dispatch_rules.supervision_moments(window_start, resolve_by, ladder).items():
                    moments[f"{task_id}/{level}"] = moment
            period = float(stack.extra_env.get("TOWNFLOW_SUPERVISION_SECONDS", 10.0))
            last = max(moments.values()).timestamp() + period + ON_TOPIC_WITHIN
            while time.time() < last and any(m not in watch.seen.first_seen for m in moments):
                await asyncio.sleep(0.25)
            await asyncio.sleep(2)  # a second publication of the last levels would show by now
        finally:
            await watch.stop()
    finally:
        await conn.close()
    seen = watch.seen
    early = [m for m, moment in moments.items() if m in seen.first_seen and (
        seen.first_seen[m] < moment.timestamp() - 0.2
        or datetime.fromisoformat(seen.first_data[m]["at"]) < moment - timedelta(seconds=0.2))]
    late = [seen.first_seen[m] - moment.timestamp() for m, moment in moments.items() if m in seen.first_seen]
    twice = sum(1 for m in moments if len(seen.rows_of.get(m, ())) > 1)
    missing = [m for m in moments if m not in seen.first_seen]
    entry |= {"tasks_watched": len(tasks), "levels_due": len(moments), "levels_published": len(moments) - len(missing),
              "published_early": len(early), "early_by_s": sorted(round(moments[m].timestamp() - seen.first_seen[m], 1)
                                                                  for m in early)[-5:],
              "published_twice": twice, "doubled_on_topic": sum(n - 1 for n in seen.outbox_ids.values() if n > 1),
              "missing": len(missing), "worst_late_s": round(max(late), 2) if late else None,
              "supervision_period_s": period}
    entry["_idents"] = list(tasks)
    entry["passed"] = (len(tasks) == size.skew_tasks and not early and not twice and not missing
                       and entry["doubled_on_topic"] == 0 and max(late, default=0) <= period + 5)
    return entry


async def inject_poison(bootstrap: str, topics: list[str], seed: int) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent = []
    try:
        for topic in topics:
            for value in (f"{{broken json {seed} {topic}".encode(),
                          json.dumps({"id": str(uuid.uuid4()), "type": "nonsense", "version": 1,
                                      "chaos": f"{seed}-{topic}"}).encode()):
                await producer.send_and_wait(topic, value=value, key=b"chaos",
                                             headers=[("content-type", b"application/json")])
                sent.append(value)
    finally:
        await producer.stop()
    return sent


async def rewind_group(stack: Stack, group: str, topics: list[str]) -> dict[str, Any]:
    """Deliver whole topics again: stop every replica (a group with members refuses an outside
    commit), commit offset 0 for the group, start them all again."""
    assert stack.kafka is not None
    for process in stack.replicas[group]:
        await asyncio.to_thread(process.stop)
    partitions = await topic_partitions(stack.kafka.bootstrap, topics)
    deadline = time.monotonic() + 90
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka.bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.commit(dict.fromkeys(partitions, 0))
            break
        except (CommitFailedError, UnknownMemberIdError):
            # A member that left without saying so (killed earlier, or cut off by the broker stop)
            # stays in the group until its session times out; the group must be empty first.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
        finally:
            await consumer.stop()
    for process in stack.replicas[group]:
        process.start(wait=False)
    ended = time.monotonic()
    return {"fault": "redeliver from offset 0", "service": group, "topics": topics,
            "ready_after_s": await ready_after(stack, ended)}


def fault_plan(rng: random.Random, stack: Stack, size: Size, seed: int = 0) -> list[tuple[str, ...]]:
    """The faults in the order they happen: kills spread over the services and their replicas, the
    database incident and the poison in the first half, the broker stop anywhere, the rewind last
    (after the poison, so the poison is delivered again too). The pauses, partitions and the clock
    check anywhere before the rewind, placed by a generator of their own (so a seed replays the
    other faults alike whichever of these a run has). Only the kinds in `size.faults`."""
    names = list(SERVICES)
    wanted = set(size.faults)
    steps: list[tuple[str, ...]] = [
        ("kill", name, str(rng.randrange(len(stack.replicas[name]))))
        for name in (names[i % len(names)] for i in range(size.kills if "kill" in wanted else 0))]
    rng.shuffle(steps)
    first_half = max(1, len(steps) // 2)
    if "database" in wanted:
        database = size.read_only_database or rng.choice(names)
        steps.insert(rng.randint(0, first_half), ("database", database))
    if "poison" in wanted:
        steps.insert(rng.randint(0, first_half), ("poison",))
    if "broker" in wanted:
        steps.insert(rng.randint(0, len(steps)), ("broker",))
    if "s3" in wanted:
        steps.insert(random.Random(f"{seed}-s3").randint(0, len(steps)), ("s3",))  # noqa: S311 - replayable
    held = random.Random(f"{seed}-held")  # noqa: S311 - replayable from the printed seed
    extra: list[tuple[str, ...]] = []
    if "pause" in wanted:
        extra += [("pause", name) for name in size.pause_services]
    if "partition" in wanted:
        extra += ([("partition", "postgresql", held.choice(names)), ("partition", "kafka", held.choice(names))]
                  if not size.partition_services else
                  [("partition", way, name) for name in size.partition_services for way in ("postgresql", "kafka")])
    if "skew" in wanted:
        extra.append(("skew",))
    for step in extra:
        steps.insert(held.randint(0, len(steps)), step)
    with_notify = "notify" in stack.replicas
    if with_notify:  # its own generators: the other faults stay where the seed puts them without notify
        placed = random.Random(f"{seed}-notify-at")  # noqa: S311 - replayable from the printed seed
        for step in notify_steps(seed, size.notify_kills if "kill" in wanted else 0, len(stack.replicas["notify"]),
                                 "receivers" in wanted):
            steps.insert(placed.randint(0, len(steps)), step)
    if "rewind" in wanted:
        steps.append(("rewind", "dispatch"))
        if with_notify:  # every event delivered to notify again: no message sent twice
            steps.append(("rewind", "notify"))
    return steps


def skewed_replica(seed: int, stack: Stack) -> int:
    """Which dispatch replica's clock runs ahead (from the seed)."""
    return random.Random(f"{seed}-skew").randrange(len(stack.replicas["dispatch"]))  # noqa: S311


async def caught_up(bootstrap: str, consumed: dict[str, list[str]]) -> bool:
    behind = {}
    for group, topics in consumed.items():
        lag = sum((await group_lag(bootstrap, group, await topic_partitions(bootstrap, topics))).values())
        if lag > 0:
            behind[group] = lag
    if behind:
        print(f"  waiting for consumers: {behind}", flush=True)
    return not behind


async def outboxes_empty(stack: Stack) -> bool:
    assert stack.postgres is not None
    backlog = {}
    for name in SERVICES:
        conn = await asyncpg.connect(stack.postgres.dsn(name))
        try:
            if rows := await conn.fetchval("SELECT count(*) FROM outbox"):
                backlog[name] = rows
        finally:
            await conn.close()
    if backlog:
        print(f"  waiting for outbox relays: {backlog}", flush=True)
    return not backlog


async def settle(stack: Stack, consumed: dict[str, list[str]], timeout: float = 300.0) -> bool:
    """Wait until every group has consumed everything and every outbox is empty."""
    assert stack.kafka is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await caught_up(stack.kafka.bootstrap, consumed) and await outboxes_empty(stack):
                return True
        except (OSError, asyncpg.PostgresError) as exc:  # the infrastructure is still coming back
            print(f"  not settled yet: {exc}", flush=True)
        await asyncio.sleep(2)
    return False


@dataclass(frozen=True)
class DeadLetter:
    topic: str          # the topic it came from (the .dlq topic without its suffix)
    value: bytes
    service: str        # x-dlq-service
    error_type: str     # x-dlq-error-type
    error: str          # x-dlq-error
    outbox_id: str = ""  # x-outbox-id: the row it was sent from (the same row twice: the relay's redelivery)

    def is_valid_event(self) -> bool:
        """A message that validates as its topic's event model was never poison."""
        model = TOPICS.get(self.topic)
        if model is None:
            return False
        try:
            model.model_validate_json(self.value)
        except (ValidationError, ValueError):
            return False
        return True


async def dead_letters(bootstrap: str) -> list[DeadLetter]:
    """Every message of every `.dlq` topic on the broker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        topics = sorted(t for t in await consumer.topics() if t.endswith(".dlq"))
        if not topics:
            return found
        partitions = await topic_partitions(bootstrap, topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    h = {k: v.decode(errors="replace") for k, v in r.headers or ()}
                    found.append(DeadLetter(r.topic.removesuffix(".dlq"), r.value or b"", h.get("x-dlq-service", ""),
                                            h.get("x-dlq-error-type", ""), h.get("x-dlq-error", ""),
                                            h.get("x-outbox-id", "")))
    finally:
        await consumer.stop()
    return found


def judge_dead_letters(letters: list[DeadLetter], poison: list[bytes],
                       consumed: dict[str, list[str]]) -> dict[str, Any]:
    """Poison exactly once per consuming service; no valid event at all."""
    # Dead-lettered twice = written twice (two outbox rows). The same row sent twice is the relay's
    # at-least-once edge (a kill -9 between the broker's ack and the row's delete): reported apart.
    counts = Counter((d.value, d.service) for d in {(d.value, d.service, d.outbox_id): d for d in letters}.values())
    redelivered = len(letters) - len({(d.value, d.service, d.outbox_id) for d in letters})
    expected = [(value, service) for service, topics in consumed.items() for value in poison
                if any(f" {t}".encode() in value or f"-{t}\"".encode() in value for t in topics)]
    missing = [(v[:40].decode(errors="replace"), s) for v, s in expected if counts[(v, s)] == 0]
    duplicated = {f"{s}: {v[:40].decode(errors='replace')}": counts[(v, s)] for v, s in expected if counts[(v, s)] > 1}
    valid = [d for d in letters if d.is_valid_event()]
    reasons = Counter(f"{d.service} {d.topic} {d.error_type}: {d.error[:160]}" for d in valid)
    return {
        "poison_messages": len(poison), "dead_letters_expected": len(expected),
        "dead_letters_missing": missing[:10], "dead_letters_missing_count": len(missing),
        "dead_letters_duplicated": dict(list(duplicated.items())[:10]),
        "dead_letters_duplicated_count": sum(n - 1 for n in duplicated.values()),
        "valid_events_dead_lettered": len(valid),
        "valid_events_dead_lettered_reasons": dict(reasons.most_common(10)),
        "dead_letters_total": len(letters),
        "dead_letters_redelivered_by_the_relay": redelivered,
    }


async def matter_counts(stack: Stack, request_ids: list[str]) -> dict[str, int]:
    """Per acknowledged matter: its first tasks in dispatch, and how often appraisal counted it dispatched."""
    assert stack.postgres is not None
    dispatch = await asyncpg.connect(stack.postgres.dsn("dispatch"))
    appraisal = await asyncpg.connect(stack.postgres.dsn("appraisal"))
    try:
        tasks = {r["request_id"]: r["n"] for r in await dispatch.fetch(
            "SELECT request_id::text, count(*) AS n FROM tasks WHERE redispatch_of IS NULL AND request_id::text = ANY($1)"
            " GROUP BY 1", request_ids)}
        counted = {r["request_id"]: r["n"] for r in await appraisal.fetch(
            "SELECT request_id, sum(c_dispatched) AS n FROM task_facts WHERE request_id = ANY($1) GROUP BY 1",
            request_ids)}
    finally:
        await dispatch.close()
        await appraisal.close()
    return {
        "matters_acknowledged": len(request_ids),
        "lost_in_dispatch": sum(1 for r in request_ids if tasks.get(r, 0) == 0),
        "counted_twice_in_dispatch": sum(1 for r in request_ids if tasks.get(r, 0) > 1),
        "lost_in_appraisal": sum(1 for r in request_ids if counted.get(r, 0) == 0),
        "counted_twice_in_appraisal": sum(1 for r in request_ids if counted.get(r, 0) > 1),
    }


async def check(stack: Stack, acknowledged: dict[str, str], poison: list[bytes],
                consumed: dict[str, list[str]]) -> dict[str, Any]:
    assert stack.kafka is not None
    return (await matter_counts(stack, list(acknowledged.values()))
            | judge_dead_letters(await dead_letters(stack.kafka.bootstrap), poison, consumed))


async def dead_lettered_during(stack: Stack, faults: Faults) -> None:
    """Each pause's or partition's `dead_lettered`: dead letters naming work filed during it."""
    assert stack.kafka is not None
    letters = await dead_letters(stack.kafka.bootstrap)
    for fault in faults:
        if (idents := fault.pop("_idents", None)) is not None:
            fault["dead_lettered"] = sum(1 for d in letters if any(i.encode() in d.value for i in idents))


def replay_identical(stack: Stack) -> tuple[bool, str]:
    assert stack.postgres is not None
    database = f"appraisal_replay_{uuid.uuid4().hex[:6]}"
    stack.postgres.create_database(database)
    result = subprocess.run([sys.executable, "-m", "appraisal", "rebuild", "--into", stack.postgres.dsn(database),
                             "--compare"], env={**os.environ, **stack.services["appraisal"].env}, cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    return result.returncode == 0, (result.stdout + result.stderr)[-2000:]


async def run_faults(stack: Stack, plan: list[tuple[str, ...]], size: Size, rng: random.Random, seed: int,
                     consumed: dict[str, list[str]], faults: Faults, work: Work | None = None) -> list[bytes]:
    """Each fault in turn (the next starts after the last one's recovery), spread over the load."""
    assert stack.kafka is not None
    poison: list[bytes] = []
    started = time.monotonic()
    for n, step in enumerate(plan):
        if (delay := started + size.duration * (n + 1) / (len(plan) + 1) - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        print(f"  t={time.monotonic() - started:6.1f}s {' '.join(step)}", flush=True)
        kind = step[0]
        entries: list[Awaitable[dict[str, Any]]] = []
        if kind == "kill":
            if step[1] == "notify" and work is not None and work.notify is not None:
                work.notify.killed()  # a message sent twice right after this is the edge docs/notify.md names
            entries = [kill_replica(stack, step[1], int(step[2]), rng)]
        elif kind == "database":
            entries = [database_read_only(stack, step[1], size.incident_seconds),
                       postgres_stopped(stack, size.incident_seconds,
                                        work.notify.database_away if work is not None and work.notify else None)]
        elif kind == "broker":
            entries = [broker_stopped(stack, size.broker_stop_seconds)]
        elif kind == "s3":
            assert work is not None
            entries = [object_store_stopped(work, size)]
        elif kind == "rewind":
            entries = [rewind_group(stack, step[1], consumed[step[1]])]
        elif kind == "receivers":
            assert work is not None
            entries = [receivers_down(work, size)]
        elif kind == "poison":
            poison = await inject_poison(stack.kafka.bootstrap, sorted({t for ts in consumed.values() for t in ts}), seed)
            faults.append({"fault": "poison", "messages": len(poison)})
        elif kind in ("pause", "partition", "skew"):
            assert work is not None
            held = random.Random(f"{seed}-{n}-{kind}")  # noqa: S311 - which owner of partitions is paused
            if kind == "pause":
                entries = [held_fault(work, "pause", step[1], size.pause_seconds, held, size)]
            elif kind == "partition" and work.netcut is None:
                faults.append({"fault": f"partition from {step[1]}", "service": step[2],
                               "skipped": partition_unavailable() or "the stack was not started in cgroups",
                               "passed": False})
            elif kind == "partition":
                entries = [held_fault(work, f"partition from {step[1]}", step[2], size.partition_seconds, held, size)]
            else:
                entries = [clock_ahead(work, skewed_replica(seed, stack), size)]
        for entry in entries:  # in order: the database is read-only, THEN PostgreSQL stops
            faults.append(await entry)
            print(f"           { {k: v for k, v in faults[-1].items() if k != '_idents'} }", flush=True)
    return poison


async def run_chaos(seed: int, matters: int | None = None, rate: float | None = None, stack: Stack | None = None,
                    size: Size | None = None) -> dict[str, Any]:
    size = size or Size()
    if matters is not None or rate is not None:
        size = dataclasses.replace(size, matters=matters or size.matters, rate=rate or size.rate)
    rng = random.Random(seed)  # noqa: S311 - the fault schedule must replay from its printed seed
    own = stack is None
    stack = stack or Stack.in_temp_dir(kafka_heap="384m", replicas=size.replicas, extra_env=(
        {"TOWNFLOW_TOWN_DIR": size.town_dir} if size.town_dir else {}))
    photos = PhotoFilings() if "s3" in size.faults else None
    if own and photos is not None:
        stack.use_s3(SeaweedFS(stack.workdir / "s3"))
        stack.extra_env |= SWEEP_ENV
    faults: Faults = []
    netcut: NetCut | None = None
    notify: NotifyChaos | None = None
    report: dict[str, Any] | None = None
    try:
        if own:
            if stack.s3 is not None:
                stack.s3.start()
            if size.notify:  # the town files with a notify.yaml each, and the receivers, before any service
                notify = NotifyChaos.prepare(stack)
            stack.start_infra()
            for name in (*SERVICES, "notify") if notify is not None else SERVICES:
                stack.add_service(name)
            if "partition" in size.faults and partition_unavailable() is None:
                # Every replica in a cgroup of its own from its first start: any may come to hold the relay.
                netcut = NetCut(stack.workdir.name)
                for process in stack.all_replicas():
                    netcut.enclose(process)
            if "skew" in size.faults:
                if reason := skew_unavailable():
                    raise RuntimeError(f"the clock-skew fault cannot run: {reason}")
                # One dispatch replica's own clock runs ahead for the whole run (restarts after a kill too).
                stack.replica("dispatch", skewed_replica(seed, stack)).env.update(ahead_env(size.clock_ahead_seconds))
            stack.start_services()
            if notify is not None:  # once the four are ready: ten processes waiting at once on a
                # busy machine for the broker's group coordinator took over the 60 s allowed
                stack.start_services(["notify"])
        assert stack.kafka is not None
        consumed = consumed_topics((*SERVICES, "notify") if notify is not None else tuple(SERVICES))
        acknowledged: dict[str, str] = {}
        receipts: dict[str, tuple[str, str]] = {}
        load = asyncio.create_task(file_steadily(stack, f"chaos-{seed}", size.matters, size.rate, acknowledged,
                                                 receipts=receipts, photos=photos))
        # Meanwhile each town's own staff work its matters: the events after filing go through the faults too.
        load_done, staff = asyncio.Event(), StaffReport()
        work = asyncio.create_task(staff_at_work(stack, towns_of(stack), receipts, load_done, staff))
        plan = fault_plan(rng, stack, size, seed)
        poison = await run_faults(stack, plan, size, rng, seed, consumed, faults,
                                  Work(stack, seed, acknowledged, receipts, staff, netcut, photos=photos,
                                       notify=notify))
        await load
        load_done.set()
        load_acknowledged = sum(1 for key in acknowledged if key.startswith(f"chaos-{seed}-"))
        print(f"  load done: {load_acknowledged} of {size.matters} acknowledged", flush=True)
        await work
        print(f"  staff done: {dict(staff.done)}; refused {len(staff.refused)}", flush=True)
        settled = await settle(stack, consumed, size.settle_seconds)
        report = await check(stack, acknowledged, poison, consumed)
        report["load_acknowledged"] = load_acknowledged
        if photos is not None:
            report |= await judge_photos(stack, photos)
        if notify is not None:
            report["notify"] = await notify.judge(stack)
            print(f"  notify: {report['notify']}", flush=True)
        await dead_lettered_during(stack, faults)
        identical, replay_log = await asyncio.to_thread(replay_identical, stack)
        slowest = max((f.get("ready_after_s", 0) for f in faults), default=0)
        report |= {"seed": seed, "size": dataclasses.asdict(size), "replicas": {n: len(p) for n, p in stack.replicas.items()},
                   "faults": faults, "settled": settled, "slowest_recovery_s": slowest,
                   "replay_identical": identical, "staff_actions": dict(staff.done),
                   "staff_refused": staff.refused[:20], "staff_refused_count": len(staff.refused),
                   "staff_tried_again": dict(staff.tried_again),
                   "left_unrated": len(staff.to_rate)}
        # The towns' own staff did each kind of their work, and were never refused in their own town.
        staff_worked = all(staff.done[a] > 0 for a in ("accept", "complete", "verify", "rate", "start", "result"))
        report["passed"] = (load_acknowledged == size.matters and report["lost_in_dispatch"] == 0
                            and report["counted_twice_in_dispatch"] == 0 and report["lost_in_appraisal"] == 0
                            and report["counted_twice_in_appraisal"] == 0
                            and report["dead_letters_missing_count"] == 0
                            and report["dead_letters_duplicated_count"] == 0
                            and report["valid_events_dead_lettered"] == 0
                            and slowest <= READY_WITHIN and identical and settled
                            and staff_worked and not staff.refused
                            and report.get("photos_lost", 0) == 0 and report.get("photo_orphans_left", 0) == 0
                            and report.get("notify", {}).get("passed", True)
                            and all(f.get("passed", True) for f in faults))
        if not identical:
            report["replay_log"] = replay_log
        return report
    finally:
        if own:
            if not (report or {}).get("passed"):
                keep_logs(stack, "chaos")
            stack.stop()
            if stack.s3 is not None:
                stack.s3.stop()
            if notify is not None:
                notify.stop()
        if netcut is not None:
            netcut.close()


def fault_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if unknown := set(kinds) - set(FAULTS):
        raise argparse.ArgumentTypeError(f"unknown faults {sorted(unknown)}: choose from {','.join(FAULTS)}")
    return kinds


def service_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if unknown := set(names) - set(SERVICES):
        raise argparse.ArgumentTypeError(f"unknown services {sorted(unknown)}")
    return names


# The flags that set a field of Size, with their help; each takes the field's default and type.
SIZE_FLAGS: dict[str, str] = {
    "matters": "matters filed under load",
    "rate": "matters filed per second",
    "replicas": "replicas of every service",
    "incident_seconds": "how long a database is read-only, then how long PostgreSQL is stopped",
    "broker_stop_seconds": "how long the broker is stopped",
    "s3_stop_seconds": "how long the S3 server is stopped while photos are filed",
    "kills": "kill -9 of single replicas",
    "pause_seconds": "how long the holder of a relay (appraisal: of partitions) is paused (SIGSTOP)",
    "partition_seconds": "how long a replica is cut off from PostgreSQL, then one from Kafka",
    "clock_ahead_seconds": "how far one dispatch replica's own clock runs ahead",
    "skew_tasks": "tasks whose (compressed) supervision ladder the clock check watches",
    "skew_window_seconds": "their resolution window: the three levels fall due within it",
    "notify_kills": "kill -9 of notify's replicas",
    "receivers_down_seconds": "how long notify's receivers are stopped (fault receivers)",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    default = Size()
    parser.add_argument("--seed", type=int, default=None)
    for name, why in SIZE_FLAGS.items():
        value = getattr(default, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=why)
    parser.add_argument("--read-only-database", choices=list(SERVICES), default=None,
                        help="whose database fails over (default: chosen by the seed)")
    parser.add_argument("--county", action="store_true", help="run the demo county (three towns) instead of one town")
    parser.add_argument("--no-notify", action="store_true", help="run without notify and its receivers")
    parser.add_argument("--faults", type=fault_kinds, default=default.faults,
                        help=f"the kinds of fault, comma-separated (default: all of {','.join(FAULTS)})")
    parser.add_argument("--pause-services", type=service_names, default=default.pause_services,
                        help="whose holder is paused, one pause each, comma-separated (default: every service)")
    parser.add_argument("--partition-services", type=service_names, default=default.partition_services,
                        help="whose holder is cut off, from each in turn (default: one service each, by the seed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    size = Size(**{name: getattr(args, name) for name in SIZE_FLAGS}, read_only_database=args.read_only_database,
                town_dir=str(DEMO_COUNTY_DIR) if args.county else None, faults=args.faults,
                pause_services=args.pause_services, partition_services=args.partition_services,
                notify=not args.no_notify)
    print(f"chaos seed {seed} (replay with --seed {seed})", flush=True)
    report = asyncio.run(run_chaos(seed, size=size))
    sys.exit(write_report("chaos", report, ("faults", "replay_log")))


def write_report(kind: str, report: dict[str, Any], long_parts: tuple[str, ...]) -> int:
    """`bench/results/<kind>-<time>.json`, the report printed without its long parts; the exit code."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in long_parts}, ensure_ascii=False, indent=2))
    print(f"wrote {path}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    main()
