"""`make chaos`: faults under a steady load on replicated services, each run seeded (the seed is
printed for replay).

While matters are filed (each with an Idempotency-Key, retried on either intake replica until one
acknowledges it), with two replicas of every service: kill -9 single replicas at random moments and
start them again; make one service's database read-only the way a managed failover does, then stop
PostgreSQL; stop the Kafka broker; inject malformed and schema-invalid messages into every consumed
topic; rewind one consumer group to offset zero so whole topics are delivered again. Then it checks,
from what each service holds and what every `.dlq` topic holds:

- no matter lost and none counted twice (dispatch's tasks, appraisal's `task_facts.c_dispatched`);
- every poison message in its `.dlq` exactly once per consuming service (duplicates counted);
- no valid event dead-lettered (a `.dlq` message that validates as its topic's event model);
- every replica of every service ready within 30 s of each fault's end;
- appraisal's figures identical after a full replay.

    python -m bench.chaos [--seed N] [--matters 2000] [--rate 10] [--replicas 2]
                          [--incident-seconds 20] [--broker-stop-seconds 30] [--kills 8]
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, UnknownMemberIdError
from pydantic import ValidationError

from devstack.stack import REPO, SERVICES, Stack
from townflow_shared.county import load_county
from townflow_shared.events import TOPICS
from townflow_shared.kafka import topic_partitions
from townflow_shared.lag import group_lag
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import Town

from .town_staff import StaffReport, staff_at_work

RESULTS = Path(__file__).with_name("results")
READY_WITHIN = 30.0
Faults = list[dict[str, Any]]


@dataclass(frozen=True)
class Size:
    """How big a run is; `make test` runs a reduced one."""

    matters: int = 2000
    rate: float = 10.0
    replicas: int = 2
    incident_seconds: float = 20.0     # a database read-only, then PostgreSQL stopped, each this long
    broker_stop_seconds: float = 30.0
    kills: int = 8                     # kill -9 of single replicas, spread over the services
    read_only_database: str | None = None  # whose database fails over; None: chosen by the seed
    town_dir: str | None = None        # a town's or a county's folder (TOWNFLOW_TOWN_DIR); None: the demo town
    settle_seconds: float = 300.0      # how long consumers and outbox relays get to catch up after the load

    @property
    def duration(self) -> float:
        return self.matters / self.rate


def consumed_topics() -> dict[str, list[str]]:
    return {s: [t.topic for t in importlib.import_module(f"{s}.app").create_runtime().handlers] for s in SERVICES}


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


async def file_steadily(stack: Stack, prefix: str, count: int, rate: float, acknowledged: dict[str, str],
                        receipts: dict[str, tuple[str, str]] | None = None, give_up_after: float = 300.0,
                        answered: Callable[[str, httpx.Response | httpx.HTTPError], None] | None = None) -> None:
    """File `count` matters at `rate`, the towns in turn; each retried with its Idempotency-Key, on
    the intake replicas in turn, until one answers 201 (a client behind a load balancer does the same).
    `receipts` keeps each matter's ticket number and access code, for the citizen's rating;
    `answered(url, answer)` sees every attempt's answer (or error), e.g. to judge the statuses."""
    towns = filers(stack)
    intakes = stack.replicas["intake"]
    receipts = {} if receipts is None else receipts

    async def one(client: httpx.AsyncClient, n: int) -> None:
        filer = towns[n % len(towns)]
        clerk = filer.headers
        body = {"channel": "window", "item_code": filer.items[n % len(filer.items)], "description": "chaos",
                "village": filer.villages[n % len(filer.villages)], "location": "chaos",
                "target": f"SITE-{n % 20}", "citizen": {"name": "混沌", "phone": f"137{n:08d}"}}
        key = f"{prefix}-{n}"
        deadline = time.monotonic() + give_up_after
        attempt = 0
        while time.monotonic() < deadline:
            url = intakes[(n + attempt) % len(intakes)].url
            attempt += 1
            try:
                response = await client.post(f"{url}/v1/requests", json=body,
                                             headers={**clerk, "Idempotency-Key": key})
                if answered is not None:
                    answered(url, response)
                if response.status_code == 201:
                    filed = response.json()
                    acknowledged[key] = filed["request_id"]
                    receipts[filed["request_id"]] = (filed["ticket_no"], filed["access_code"])
                    return
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
        async def ready(url: str) -> bool:
            try:
                return (await client.get(f"{url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        while time.monotonic() - since < timeout:
            answers = await asyncio.gather(*(ready(p.url) for p in stack.all_replicas()))
            if all(answers):
                return round(time.monotonic() - since, 2)
            await asyncio.sleep(0.2)
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


async def stopped(stack: Stack, fault: str, stop: Callable[[], None], start: Callable[[], None],
                  seconds: float) -> dict[str, Any]:
    """A part of the stack stopped for `seconds`, then started again (`start` returns once it
    answers); the fault with how long the services took to be ready after it."""
    await asyncio.to_thread(stop)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(start)
    ended = time.monotonic()
    return {"fault": fault, "seconds": seconds, "ready_after_s": await ready_after(stack, ended)}


async def postgres_stopped(stack: Stack, seconds: float) -> dict[str, Any]:
    return await stopped(stack, "postgresql stopped", stack.stop_postgres, stack.start_postgres, seconds)


async def broker_stopped(stack: Stack, seconds: float) -> dict[str, Any]:
    return await stopped(stack, "broker stopped", stack.stop_kafka, stack.start_kafka, seconds)


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


def fault_plan(rng: random.Random, stack: Stack, size: Size) -> list[tuple[str, ...]]:
    """The faults in the order they happen: kills spread over the services and their replicas, the
    database incident and the poison in the first half, the broker stop anywhere, the rewind last
    (after the poison, so the poison is delivered again too)."""
    names = list(SERVICES)
    steps: list[tuple[str, ...]] = [
        ("kill", name, str(rng.randrange(len(stack.replicas[name]))))
        for name in (names[i % len(names)] for i in range(size.kills))]
    rng.shuffle(steps)
    database = size.read_only_database or rng.choice(names)
    first_half = max(1, len(steps) // 2)
    steps.insert(rng.randint(0, first_half), ("database", database))
    steps.insert(rng.randint(0, first_half), ("poison",))
    steps.insert(rng.randint(0, len(steps)), ("broker",))
    steps.append(("rewind", "dispatch"))
    return steps


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


def replay_identical(stack: Stack) -> tuple[bool, str]:
    assert stack.postgres is not None
    database = f"appraisal_replay_{uuid.uuid4().hex[:6]}"
    stack.postgres.create_database(database)
    result = subprocess.run([sys.executable, "-m", "appraisal", "rebuild", "--into", stack.postgres.dsn(database),
                             "--compare"], env={**os.environ, **stack.services["appraisal"].env}, cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    return result.returncode == 0, (result.stdout + result.stderr)[-2000:]


async def run_faults(stack: Stack, plan: list[tuple[str, ...]], size: Size, rng: random.Random, seed: int,
                     consumed: dict[str, list[str]], faults: Faults) -> list[bytes]:
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
            entries = [kill_replica(stack, step[1], int(step[2]), rng)]
        elif kind == "database":
            entries = [database_read_only(stack, step[1], size.incident_seconds),
                       postgres_stopped(stack, size.incident_seconds)]
        elif kind == "broker":
            entries = [broker_stopped(stack, size.broker_stop_seconds)]
        elif kind == "rewind":
            entries = [rewind_group(stack, step[1], consumed[step[1]])]
        elif kind == "poison":
            poison = await inject_poison(stack.kafka.bootstrap, sorted({t for ts in consumed.values() for t in ts}), seed)
            faults.append({"fault": "poison", "messages": len(poison)})
        for entry in entries:  # in order: the database is read-only, THEN PostgreSQL stops
            faults.append(await entry)
            print(f"           {faults[-1]}", flush=True)
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
    faults: Faults = []
    try:
        if own:
            stack.start_infra()
            stack.start_services()
        assert stack.kafka is not None
        consumed = consumed_topics()
        acknowledged: dict[str, str] = {}
        receipts: dict[str, tuple[str, str]] = {}
        load = asyncio.create_task(file_steadily(stack, f"chaos-{seed}", size.matters, size.rate, acknowledged,
                                                 receipts=receipts))
        # Meanwhile each town's own staff work its matters: the events after filing go through the faults too.
        load_done, staff = asyncio.Event(), StaffReport()
        work = asyncio.create_task(staff_at_work(stack, towns_of(stack), receipts, load_done, staff))
        plan = fault_plan(rng, stack, size)
        poison = await run_faults(stack, plan, size, rng, seed, consumed, faults)
        await load
        load_done.set()
        print(f"  load done: {len(acknowledged)} of {size.matters} acknowledged", flush=True)
        await work
        print(f"  staff done: {dict(staff.done)}; refused {len(staff.refused)}", flush=True)
        settled = await settle(stack, consumed, size.settle_seconds)
        report = await check(stack, acknowledged, poison, consumed)
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
        report["passed"] = (report["matters_acknowledged"] == size.matters and report["lost_in_dispatch"] == 0
                            and report["counted_twice_in_dispatch"] == 0 and report["lost_in_appraisal"] == 0
                            and report["counted_twice_in_appraisal"] == 0
                            and report["dead_letters_missing_count"] == 0
                            and report["dead_letters_duplicated_count"] == 0
                            and report["valid_events_dead_lettered"] == 0
                            and slowest <= READY_WITHIN and identical and settled
                            and staff_worked and not staff.refused)
        if not identical:
            report["replay_log"] = replay_log
        return report
    finally:
        if own:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    default = Size()
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--matters", type=int, default=default.matters)
    parser.add_argument("--rate", type=float, default=default.rate, help="matters filed per second")
    parser.add_argument("--replicas", type=int, default=default.replicas, help="replicas of every service")
    parser.add_argument("--incident-seconds", type=float, default=default.incident_seconds,
                        help="how long a database is read-only, then how long PostgreSQL is stopped")
    parser.add_argument("--broker-stop-seconds", type=float, default=default.broker_stop_seconds)
    parser.add_argument("--kills", type=int, default=default.kills, help="kill -9 of single replicas")
    parser.add_argument("--read-only-database", choices=list(SERVICES), default=None,
                        help="whose database fails over (default: chosen by the seed)")
    parser.add_argument("--county", action="store_true", help="run the demo county (three towns) instead of one town")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    size = Size(matters=args.matters, rate=args.rate, replicas=args.replicas, incident_seconds=args.incident_seconds,
                broker_stop_seconds=args.broker_stop_seconds, kills=args.kills,
                read_only_database=args.read_only_database,
                town_dir=str(DEMO_COUNTY_DIR) if args.county else None)
    print(f"chaos seed {seed} (replay with --seed {seed})", flush=True)
    report = asyncio.run(run_chaos(seed, size=size))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"chaos-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("faults", "replay_log")}, ensure_ascii=False, indent=2))
    print(f"wrote {path}")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
