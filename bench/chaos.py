"""`make chaos`: faults under a steady load, each run seeded (the seed is printed for replay).

While matters are filed (each with an Idempotency-Key, retried until acknowledged):
kill -9 each service at random moments and restart it; restart the Kafka broker and PostgreSQL;
inject malformed and schema-invalid messages into every consumed topic; rewind one consumer group
to offset zero so a whole topic is delivered again. Then it checks, from what each service holds:
no matter lost, none counted twice, every bad message in its .dlq with a reason, every service
ready again within 30 s, and appraisal's figures identical after a full replay.

    python -m bench.chaos [--seed N] [--matters 600] [--rate 10]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.stack import REPO, SERVICES, Stack, http_ok
from townflow_shared.auth import issue_token
from townflow_shared.kafka import topic_partitions

RESULTS = Path(__file__).with_name("results")
READY_WITHIN = 30.0


def consumed_topics() -> dict[str, list[str]]:
    return {s: [t.topic for t in importlib.import_module(f"{s}.app").create_runtime().handlers] for s in SERVICES}


async def file_steadily(stack: Stack, seed: int, count: int, rate: float, acknowledged: dict[str, str]) -> None:
    """File `count` matters at `rate`; each retried with its Idempotency-Key until intake answers."""
    clerk = {"Authorization": f"Bearer {issue_token(stack.jwt_secret, 's010', ['clerk'])}"}
    items = ["S001", "S002", "S010", "T001", "S007", "E001"]

    async def one(client: httpx.AsyncClient, n: int) -> None:
        body = {"channel": "window", "item_code": items[n % len(items)], "description": "chaos",
                "village": "V0" + str(1 + n % 6), "location": "chaos", "target": f"SITE-{n % 20}",
                "citizen": {"name": "混沌", "phone": f"137{n:08d}"}}
        key = f"chaos-{seed}-{n}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                response = await client.post(f"{stack.services['intake'].url}/v1/requests", json=body,
                                             headers={**clerk, "Idempotency-Key": key})
                if response.status_code == 201:
                    acknowledged[key] = response.json()["request_id"]
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=10) as client:
        started = time.monotonic()
        tasks = []
        for n in range(count):
            if (delay := started + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, n)))
        await asyncio.gather(*tasks)


async def wait_ready(stack: Stack, names: list[str]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 120:
        if all(http_ok(f"{stack.services[n].url}/readyz") for n in names):
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.2)
    return float("inf")


async def kill_and_restart(stack: Stack, name: str, rng: random.Random, log: list[dict[str, Any]]) -> None:
    stack.services[name].kill()
    await asyncio.sleep(rng.uniform(0.2, 2.0))
    t = time.monotonic()
    stack.services[name].start(wait=False)
    ready = await wait_ready(stack, [name]) + 0 * t
    log.append({"fault": "kill -9", "service": name, "ready_after_s": ready})


async def restart_infra(stack: Stack, which: str, log: list[dict[str, Any]]) -> None:
    target = stack.kafka if which == "kafka" else stack.postgres
    assert target is not None
    await asyncio.to_thread(target.restart)
    ready = await wait_ready(stack, list(stack.services))
    log.append({"fault": f"restart {which}", "ready_after_s": ready})


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


async def rewind_group(stack: Stack, group: str, topics: list[str], log: list[dict[str, Any]]) -> None:
    """Deliver whole topics again: stop the service, commit offset 0 for its group, restart it."""
    assert stack.kafka is not None
    stack.services[group].stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(stack.kafka.bootstrap, topics)
        consumer.assign(partitions)
        await consumer.commit(dict.fromkeys(partitions, 0))
    finally:
        await consumer.stop()
    stack.services[group].start(wait=False)
    log.append({"fault": "redeliver from offset 0", "service": group, "topics": topics,
                "ready_after_s": await wait_ready(stack, [group])})


async def caught_up(bootstrap: str, consumed: dict[str, list[str]]) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        behind = {}
        for group, topics in consumed.items():
            committed = await admin.list_consumer_group_offsets(group)
            partitions = await topic_partitions(bootstrap, topics)
            ends = await consumer.end_offsets(partitions)
            lag = sum(ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
                      for tp in partitions)
            if lag > 0:
                behind[group] = lag
        if behind:
            print(f"  waiting for consumers: {behind}", flush=True)
        return not behind
    finally:
        await consumer.stop()
        await admin.close()


async def outboxes_empty(stack: Stack) -> bool:
    assert stack.postgres is not None
    for name in SERVICES:
        conn = await asyncpg.connect(stack.postgres.dsn(name))
        try:
            if await conn.fetchval("SELECT count(*) FROM outbox"):
                return False
        finally:
            await conn.close()
    return True


async def check(stack: Stack, acknowledged: dict[str, str], poison: list[bytes],
                consumed: dict[str, list[str]]) -> dict[str, Any]:
    assert stack.postgres is not None and stack.kafka is not None
    request_ids = list(acknowledged.values())
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
    dead: dict[tuple[bytes, str], bytes] = {}
    for topic in {t for ts in consumed.values() for t in ts}:
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = await topic_partitions(stack.kafka.bootstrap, [f"{topic}.dlq"])
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        h = dict(r.headers)
                        dead[(r.value, h.get("x-dlq-service", b"").decode())] = h.get("x-dlq-error", b"")
        finally:
            await consumer.stop()
    expected_dead = [(value, service) for service, topics in consumed.items() for value in poison
                     if any(f" {t}".encode() in value or f"-{t}\"".encode() in value for t in topics)]
    missing_dead = [(v[:40].decode(errors="replace"), s) for v, s in expected_dead if not dead.get((v, s))]
    return {
        "matters_acknowledged": len(request_ids),
        "lost_in_dispatch": sum(1 for r in request_ids if tasks.get(r, 0) == 0),
        "counted_twice_in_dispatch": sum(1 for r in request_ids if tasks.get(r, 0) > 1),
        "lost_in_appraisal": sum(1 for r in request_ids if counted.get(r, 0) == 0),
        "counted_twice_in_appraisal": sum(1 for r in request_ids if counted.get(r, 0) > 1),
        "poison_messages": len(poison), "dead_letters_expected": len(expected_dead),
        "dead_letters_missing": missing_dead[:10], "dead_letters_missing_count": len(missing_dead),
    }


def replay_identical(stack: Stack) -> tuple[bool, str]:
    assert stack.postgres is not None
    database = f"appraisal_replay_{uuid.uuid4().hex[:6]}"
    stack.postgres.create_database(database)
    result = subprocess.run([sys.executable, "-m", "appraisal", "rebuild", "--into", stack.postgres.dsn(database),
                             "--compare"], env={**os.environ, **stack.services["appraisal"].env}, cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    return result.returncode == 0, (result.stdout + result.stderr)[-2000:]


async def run_chaos(seed: int, matters: int, rate: float, stack: Stack | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    own = stack is None
    stack = stack or Stack.in_temp_dir(kafka_heap="384m")
    faults: list[dict[str, Any]] = []
    try:
        if own:
            stack.start_infra()
            stack.start_services()
        assert stack.kafka is not None
        consumed = consumed_topics()
        acknowledged: dict[str, str] = {}
        load = asyncio.create_task(file_steadily(stack, seed, matters, rate, acknowledged))
        duration = matters / rate
        plan: list[tuple[float, str]] = [(rng.uniform(0.05, 0.9) * duration, f"kill:{s}")
                                         for s in SERVICES for _ in range(2)]
        plan += [(rng.uniform(0.2, 0.8) * duration, "restart:kafka"), (rng.uniform(0.2, 0.8) * duration, "restart:postgres"),
                 (rng.uniform(0.1, 0.5) * duration, "poison"), (rng.uniform(0.5, 0.9) * duration, "rewind:dispatch")]
        plan.sort()
        poison: list[bytes] = []
        started = time.monotonic()
        for at, action in plan:
            if (delay := started + at - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            kind, _, what = action.partition(":")
            print(f"  t={time.monotonic() - started:5.1f}s {action}", flush=True)
            if kind == "kill":
                await kill_and_restart(stack, what, rng, faults)
            elif kind == "restart":
                await restart_infra(stack, what, faults)
            elif kind == "poison":
                poison = await inject_poison(stack.kafka.bootstrap, sorted({t for ts in consumed.values() for t in ts}), seed)
                faults.append({"fault": "poison", "messages": len(poison)})
            elif kind == "rewind":
                await rewind_group(stack, what, consumed[what], faults)
        await load
        print(f"  load done: {len(acknowledged)} of {matters} acknowledged", flush=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (await caught_up(stack.kafka.bootstrap, consumed)
                                                   and await outboxes_empty(stack)):
            await asyncio.sleep(3)
        report = await check(stack, acknowledged, poison, consumed)
        identical, replay_log = await asyncio.to_thread(replay_identical, stack)
        slowest = max((f.get("ready_after_s", 0) for f in faults), default=0)
        report |= {"seed": seed, "matters": matters, "rate": rate, "faults": faults,
                   "slowest_recovery_s": slowest, "replay_identical": identical}
        report["passed"] = (report["matters_acknowledged"] == matters and report["lost_in_dispatch"] == 0
                            and report["counted_twice_in_dispatch"] == 0 and report["lost_in_appraisal"] == 0
                            and report["counted_twice_in_appraisal"] == 0
                            and report["dead_letters_missing_count"] == 0 and slowest <= READY_WITHIN and identical)
        if not identical:
            report["replay_log"] = replay_log
        return report
    finally:
        if own:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--matters", type=int, default=600)
    parser.add_argument("--rate", type=float, default=10.0)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"chaos seed {seed} (replay with --seed {seed})", flush=True)
    report = asyncio.run(run_chaos(seed, args.matters, args.rate))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"chaos-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "faults"}, ensure_ascii=False, indent=2))
    print(f"wrote {path}")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
