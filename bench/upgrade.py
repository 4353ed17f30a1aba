"""`make upgrade-test`: a rolling upgrade from the previous release to the current tree, and the
rollback, under load, each run seeded (the seed is printed for replay).

The previous release is CHANGELOG.md's newest entry (or `--from vX.Y.Z`); its source tree is taken
from git by the commit the entry names (devstack/releases.py) and its services run from there. Two
replicas of every service start AT THAT RELEASE on a stack of their own, and matters are filed as
the chaos suite files them (an Idempotency-Key each, retried on either intake replica) while each
town's staff work them (bench/town_staff.py). Then every service's replicas are replaced by the
current tree's ONE AT A TIME — the services at once, as a `kubectl apply` of every deployment rolls
them — with the old and the new replica of a service side by side for a while: the first new
replica migrates the shared database while the old one keeps working. Then the same back, new to
old (the rollback). Each step is what deploy/k8s's rolling update does (maxSurge 1, maxUnavailable
0): the new replica starts, joins the load balancer's rotation once ready, and only then does the
old one leave it and get stopped (SIGTERM: requests in flight are answered).

After the load, once every consumer group has caught up and every outbox is empty, the run passes
when: every filing was acknowledged; every acknowledged matter has exactly one first task in
dispatch and is counted dispatched exactly once by appraisal; no `.dlq` topic holds a message; on
every partition, read back, each outbox row first arrived after every earlier row of its key,
whichever version's relay sent it (the relay's order held while the two took turns); no
client (the filing clerks, the towns' staff) saw an answer but a 2xx or a retryable 503 (with
Retry-After) — every other status or error is recorded with the replica and versions it came from;
every step's replica was ready again.

    python -m bench.upgrade [--from vX.Y.Z] [--seed N] [--matters 400] [--rate 4] [--replicas 2]
                            [--side-by-side-seconds 15] [--county]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from devstack.releases import Release, ReleaseError, migrations_at, release, source_tree
from devstack.stack import REPO, SERVICES, ServiceProcess, Stack
from townflow_shared.events import TOPICS
from townflow_shared.kafka import topic_partitions
from townflow_shared.outbox import OUTBOX_SERVICE_HEADER
from townflow_shared.settings import DEMO_COUNTY_DIR

from .chaos import check, consumed_topics, file_steadily, settle, towns_of, write_report
from .faults import keep_logs
from .town_staff import StaffReport, staff_at_work

READY_WITHIN = 60.0
# How long a replica out of the rotation keeps answering before SIGTERM (deploy/k8s: preStop sleep 5).
LEAVE_ROTATION_SECONDS = 1.0
T = TypeVar("T")
STAFF_WORK = ("accept", "complete", "verify", "rate", "start", "result")


@dataclass(frozen=True)
class Size:
    """How big a run is; `make test` runs a reduced one (tests/test_upgrade.py)."""

    matters: int = 400                 # at least this many; filing goes on until the rollback is done
    rate: float = 4.0
    replicas: int = 2
    side_by_side_seconds: float = 15.0  # a service's old and new replicas together; also before and between the rolls
    town_dir: str | None = None        # a town's or a county's folder; None: the demo town
    settle_seconds: float = 300.0
    staff_drain_seconds: float = 180.0  # how long the towns' staff go on after the load to finish their work


def current_version() -> str:
    """The current tree as the report names it: its HEAD, and whether it has changes not committed."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,  # noqa: S607
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"current {head[:12] or 'tree'}{' + changes' if dirty else ''}"


@dataclass
class Versions:
    """Which source tree each replica runs, and the steps that changed it."""

    old: Release
    old_tree: Path
    new: str
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)  # the same moment, as Kafka's timestamps count
    steps: list[dict[str, Any]] = field(default_factory=list)
    every: list[ServiceProcess] = field(default_factory=list)  # every replica started, retired ones too
    # label → [started, stopped or None] (seconds from `started`) of each replica of the release
    release_alive: dict[str, list[float | None]] = field(default_factory=dict)

    def beside_release(self, name: str, t: float) -> bool:
        """Whether a replica of service `name` of the release ran at `t` (seconds from `started`)."""
        return any(label.startswith(f"{name}-") and begun <= t and (ended is None or t <= ended)
                   for label, (begun, ended) in self.release_alive.items() if begun is not None)

    def next_index(self, name: str) -> int:
        return 1 + max(p.index for p in self.every if p.name == name)

    def of(self, process: ServiceProcess) -> str:
        return self.old.version if process.tree == self.old_tree else self.new

    def running(self, stack: Stack, name: str) -> list[str]:
        return [f"{p.label} {self.of(p)}" for p in sorted(stack.replicas.get(name, []), key=lambda p: p.index)]

    def at(self) -> float:
        return round(time.monotonic() - self.started, 1)


@dataclass
class Answers:
    """Every answer the filing clerks got, by status (or error), and each one that is not a 2xx or a
    retryable 503, with the replica that gave it and every replica's version at that moment."""

    stack: Stack
    versions: Versions
    seen: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def __call__(self, url: str, answer: httpx.Response | httpx.HTTPError) -> None:
        if isinstance(answer, httpx.Response):
            status = answer.status_code
            retryable = status == 503 and "retry-after" in answer.headers
            kind = str(status) if status != 503 or retryable else "503 without Retry-After"
            ok = 200 <= status < 300 or retryable
            detail = answer.text[:300]
        else:
            kind, ok, detail = type(answer).__name__, False, str(answer)[:300]
        self.seen[kind] += 1
        if not ok:
            by = next((f"{p.label} ({self.versions.of(p)})" for p in reversed(self.versions.every) if p.url == url),
                      url)
            self.failures.append(f"t={self.versions.at()}s {by}: {kind} {detail}"
                                 f" [intake: {', '.join(self.versions.running(self.stack, 'intake'))}]")


# What the towns' staff may be answered besides a 2xx or a 503, on any day, and try again next round:
# the state they act on moved on since they read it (the simulation reads, then acts).
STAFF_RACES = {
    # rated before intake learned of the closure: the closure's event is on its way
    "rate 409 rating.not_completed",
    # a finding per covered task, every unit present: another matter's need (its unit) joined the
    # inspection after they read it
    "result 422 inspection.finding_missing", "result 422 inspection.unit_absent",
    "result 422 request.invalid[inspection.finding_missing,inspection.unit_absent]",
}


def staff_failed(staff: StaffReport) -> dict[str, int]:
    """What the towns' staff were answered that is neither a 2xx, a 503 nor one of STAFF_RACES: every
    other status (with its refusal's code) and every error (a timeout, a connection reset)."""
    failed = {k: n for k, n in staff.problems.items() if k.split()[-2] != "503" and k not in STAFF_RACES}
    return failed | {k: n for k, n in staff.tried_again.items() if not k.split()[-1].isdigit()}


def rollout_plan(rng: random.Random, stack: Stack, size: Size) -> dict[str, dict[str, Any]]:
    """Per direction and service: how long after the roll starts the service's first replica is
    replaced, and the order of its replicas."""
    plan: dict[str, dict[str, Any]] = {}
    for direction in ("forward", "back"):
        plan[direction] = {}
        for name in SERVICES:
            order = list(range(len(stack.replicas[name])))
            rng.shuffle(order)
            plan[direction][name] = {"delay_s": round(rng.uniform(0, size.side_by_side_seconds / 2), 2),
                                     "order": order}
    return plan


async def replace(stack: Stack, versions: Versions, position: int, name: str, tree: Path | None,
                  direction: str) -> dict[str, Any]:
    """One step of a rolling update as deploy/k8s's Deployments make it (maxSurge 1, maxUnavailable
    0): a new replica from `tree` is started and, once ready, takes the rotation's `position`; the old
    one leaves the rotation and is stopped (SIGTERM: requests in flight are answered)."""
    rotation = stack.replicas[name]
    old = rotation[position]
    new = stack.add_replica(name)
    rotation.remove(new)  # not in the rotation until it is ready
    new.index = versions.next_index(name)
    new.log = new.log.with_name(f"{new.label}.log")
    new.tree = tree
    versions.every.append(new)
    step: dict[str, Any] = {"t_s": versions.at(), "direction": direction, "replaced": old.label,
                            "from": versions.of(old), "by": new.label, "to": versions.of(new)}
    began = time.monotonic()
    try:
        new.start(wait=False)  # from the event loop's thread: the child lives as long as the stack
        await asyncio.to_thread(new.wait_ready, READY_WITHIN)
    except (RuntimeError, TimeoutError) as exc:
        new.stop()
        step["error"] = str(exc)[-3000:]
        versions.steps.append(step)
        return step
    ready = time.monotonic()
    rotation[position] = new
    # Out of the rotation first, then stopped, as deploy/k8s's preStop pause does: a request that
    # picked the old replica just before still reaches it (stopped at once, its connection was
    # closed under such a rating once: a ReadError).
    await asyncio.sleep(LEAVE_ROTATION_SECONDS)
    await asyncio.to_thread(old.stop)
    if versions.of(old) != versions.new:
        versions.release_alive.setdefault(old.label, [0.0, None])[1] = versions.at()
    if versions.of(new) != versions.new:
        versions.release_alive[new.label] = [step["t_s"], None]
    step |= {"ready_in_s": round(ready - began, 2), "old_stopped_in_s": round(time.monotonic() - ready, 2),
             "now": versions.running(stack, name)}
    versions.steps.append(step)
    print(f"  t={step['t_s']:6.1f}s {old.label} {step['from']} → {new.label} {step['to']}: ready in"
          f" {step['ready_in_s']} s; {', '.join(step['now'])}", flush=True)
    return step


async def roll(stack: Stack, versions: Versions, plan: dict[str, dict[str, Any]], tree: Path | None,
               direction: str, hold: float) -> bool:
    """Every service's replicas one at a time, the services at once; False if a step failed."""
    async def one_service(name: str) -> bool:
        await asyncio.sleep(plan[name]["delay_s"])
        for n, position in enumerate(plan[name]["order"]):
            if n:
                await asyncio.sleep(hold)  # the old and the new replica side by side
            step = await replace(stack, versions, position, name, tree, direction)
            if "error" in step:
                print(f"  {step['by']} did not come up: {step['error'][-500:]}", flush=True)
                return False
        return True

    return all(await asyncio.gather(*(one_service(name) for name in SERVICES)))


async def file_until(stack: Stack, prefix: str, size: Size, rolled: asyncio.Event, acknowledged: dict[str, str],
                     receipts: dict[str, tuple[str, str]], answers: Answers) -> int:
    """`size.matters` at `size.rate`, then more at the same rate until the rollout is over (so every
    step happens under load); how many were filed."""
    await file_steadily(stack, prefix, size.matters, size.rate, acknowledged, receipts=receipts, answered=answers)
    filed, more = size.matters, 0
    while not rolled.is_set():
        more += 1
        count = max(1, round(size.rate * 5))
        await file_steadily(stack, f"{prefix}-more{more}", count, size.rate, acknowledged, receipts=receipts,
                            answered=answers)
        filed += count
    return filed


async def watched(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """`awaitable`'s result; past `seconds`, every task's stack is printed (once) to show where it hangs."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        print(f"  {what} still going after {seconds:.0f} s; the tasks:", flush=True)
        for other in asyncio.all_tasks():
            other.print_stack(limit=12, file=sys.stdout)
    return await task


# A key's rows out of order that the previous release may cause and the current tree cannot prevent:
# v1.1 appraisal writes a town-month's figures without FIGURES_LOCK (db.py), so beside a replica of
# it two transactions may write one subject's score at once and commit in the other order (seen
# once, 2 of ~1,000 rows). Counted apart while a release replica of appraisal runs, not failed.
UNSERIALIZED_BY_THE_RELEASE = ("appraisal",)


async def relay_order(bootstrap: str, since: float = 0.0,
                      beside_release: Callable[[str, float], bool] = lambda _s, _t: False,
                      ) -> dict[str, dict[str, Any]]:
    """Per service, read back from its topics (read committed): how many messages the relays of the
    release and of the current tree published (the current tree's carry `x-outbox-service`), how
    often a partition passed from one version's relay to the other's (the two taking turns), rows
    sent again (the relay's at-least-once edge), and rows of a key that reached their partition
    after a later row of the same key (the relay's order broken: what a consumer of that key relies
    on; a row sent again is not counted). Rows of different keys may pass each other: a row
    commits later than a row with a higher id of a concurrent transaction, and the relay publishes
    what has committed (`overtaken_by_another_key`, for information)."""
    partitions = await topic_partitions(bootstrap, sorted(TOPICS))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    found: dict[str, Counter[str]] = {}
    named: dict[str, dict[str, list[str]]] = {}
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        last: dict[TopicPartition, tuple[str, int]] = {}
        of_key: dict[tuple[TopicPartition, bytes], int] = {}
        sent: dict[TopicPartition, dict[int, str]] = {tp: {} for tp in partitions}
        waiting = {tp for tp in partitions if ends[tp] > 0}
        while waiting:
            for tp, records in (await consumer.getmany(*waiting, timeout_ms=1000)).items():
                service = tp.topic.split(".")[0]
                counts = found.setdefault(service, Counter())
                for record in records:
                    headers = dict(record.headers or ())
                    version = "current" if OUTBOX_SERVICE_HEADER in headers else "release"
                    row = int(headers.get("x-outbox-id", b"-1"))
                    at = f"offset {record.offset} by the {version}'s relay at t={record.timestamp / 1000 - since:.1f}s"
                    counts[f"published_by_{version}"] += 1
                    before, highest = last.get(tp, (version, -1))
                    counts["turns"] += before != version
                    key_highest = of_key.get((tp, record.key or b""), -1)
                    if row in sent[tp]:
                        counts["sent_again"] += 1
                        named.setdefault(service, {}).setdefault("sent_again_rows", []).append(
                            f"{tp.topic}[{tp.partition}] row {row}: {sent[tp][row]}, then {at}")
                    elif row < key_highest and service in UNSERIALIZED_BY_THE_RELEASE and beside_release(
                            service, record.timestamp / 1000 - since):
                        counts["out_of_order_beside_the_release"] += 1
                        named.setdefault(service, {}).setdefault("out_of_order_beside_the_release_rows", []).append(
                            f"{tp.topic}[{tp.partition}] key {(record.key or b'').decode(errors='replace')} row {row}"
                            f" at {at}, after row {key_highest} ({sent[tp][key_highest]})")
                    elif row < key_highest:
                        counts["out_of_order"] += 1
                        named.setdefault(service, {}).setdefault("out_of_order_rows", []).append(
                            f"{tp.topic}[{tp.partition}] key {(record.key or b'').decode(errors='replace')} row {row}"
                            f" at {at}, after row {key_highest} ({sent[tp][key_highest]})")
                    elif row < highest:
                        counts["overtaken_by_another_key"] += 1
                    sent[tp].setdefault(row, at)
                    last[tp] = (version, max(highest, row))
                    of_key[(tp, record.key or b"")] = max(key_highest, row)
            waiting = {tp for tp in waiting if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    keys = ("published_by_release", "published_by_current", "turns", "sent_again", "out_of_order",
            "out_of_order_beside_the_release", "overtaken_by_another_key")
    return {service: {k: counts[k] for k in keys} | {k: v[:20] for k, v in named.get(service, {}).items()}
            for service, counts in sorted(found.items())}


async def migrations_added(stack: Stack, old: Release) -> dict[str, list[str]]:
    """Per database, the migrations the current tree applied that the release does not have."""
    assert stack.postgres is not None
    theirs = {Path(path).parent.parent.name + "/" + Path(path).name for path in migrations_at(old.commit)}
    added = {}
    for name in SERVICES:
        conn = await asyncpg.connect(stack.postgres.dsn(name))
        try:
            applied = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY applied_at")]
        finally:
            await conn.close()
        added[name] = [m for m in applied if m not in theirs]
    return added


async def run_upgrade(seed: int, old: Release, size: Size | None = None) -> dict[str, Any]:
    size = size or Size()
    if size.replicas < 2:
        raise ValueError("a rolling upgrade needs at least two replicas of every service")
    rng = random.Random(seed)  # noqa: S311 - the rollout's plan must replay from its printed seed
    old_tree = source_tree(old)
    versions = Versions(old, old_tree, current_version())
    town_dir = size.town_dir
    if town_dir is not None and Path(town_dir) == DEMO_COUNTY_DIR:
        # The demo county as the previous release ships it: a county gives staff a role the new
        # release brings (the auditor) once no old replica is left, since an old one refuses the role.
        town_dir = str(old_tree / DEMO_COUNTY_DIR.relative_to(REPO))
    # As docs/operations.md tells a county rolling from a release before v1.2: new access codes stay 6
    # characters long while old replicas run (they refuse a 9-character one as malformed).
    stack = Stack.in_temp_dir(kafka_heap="384m", replicas=size.replicas, extra_env=(
        {"TOWNFLOW_INTAKE_ACCESS_CODE_LENGTH": "6"} | ({"TOWNFLOW_TOWN_DIR": town_dir} if town_dir else {})))
    began = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - began - sum(phases.values()), 1)

    report: dict[str, Any] | None = None
    try:
        stack.start_infra()
        for name in SERVICES:
            stack.add_service(name)
            for process in stack.replicas[name]:
                process.tree = old_tree
        stack.start_services()
        versions.every += list(stack.all_replicas())
        versions.release_alive |= {p.label: [0.0, None] for p in stack.all_replicas()}
        print(f"  every replica at {old}: {stack.workdir}", flush=True)
        phase("stack_started_s")
        plan = rollout_plan(rng, stack, size)
        consumed = consumed_topics()
        answers = Answers(stack, versions)
        acknowledged: dict[str, str] = {}
        receipts: dict[str, tuple[str, str]] = {}
        rolled, load_done, staff = asyncio.Event(), asyncio.Event(), StaffReport()
        versions.started, versions.started_wall = time.monotonic(), time.time()
        load = asyncio.create_task(file_until(stack, f"upgrade-{seed}", size, rolled, acknowledged, receipts,
                                              answers))
        work = asyncio.create_task(staff_at_work(stack, towns_of(stack), receipts, load_done, staff,
                                                 drain_seconds=size.staff_drain_seconds))
        hold = size.side_by_side_seconds
        await asyncio.sleep(hold)  # the release alone first, with matters in flight through every service
        forward = await roll(stack, versions, plan["forward"], None, "forward", hold)
        if forward:
            await asyncio.sleep(hold)  # every replica on the current tree
        back = forward and await roll(stack, versions, plan["back"], old_tree, "back", hold)
        rolled.set()
        filed = await load
        load_done.set()
        phase("under_load_s")
        print(f"  load done at t={versions.at()}s: {len(acknowledged)} of {filed} acknowledged", flush=True)
        await work
        print(f"  staff done: {dict(staff.done)}; refused {len(staff.refused)}", flush=True)
        phase("staff_finishing_s")
        settled = await watched(settle(stack, consumed, size.settle_seconds), size.settle_seconds + 30, "settling")
        phase("settling_s")
        print(f"  phases: {phases}", flush=True)
        report = await check(stack, acknowledged, [], consumed)
        assert stack.kafka is not None
        relays = await relay_order(stack.kafka.bootstrap, since=versions.started_wall,
                                   beside_release=versions.beside_release)
        print(f"  relays: {relays}", flush=True)
        staff_failures = staff_failed(staff)
        staff_worked = all(staff.done[a] > 0 for a in STAFF_WORK)
        report |= {
            "seed": seed, "from": str(old), "to": versions.new, "size": dataclasses.asdict(size),
            "replicas": {n: len(p) for n, p in stack.replicas.items()},
            "plan": plan, "steps": versions.steps, "rolled_forward": forward, "rolled_back": back,
            "final_versions": {name: versions.running(stack, name) for name in SERVICES},
            "migrations_run_by_the_current_tree": await migrations_added(stack, old),
            "matters_filed": filed, "settled": settled, "phases": phases, "relays": relays,
            "filing_answers": dict(answers.seen), "filing_failures": answers.failures[:50],
            "filing_failures_count": len(answers.failures),
            "staff_actions": dict(staff.done), "staff_refused": staff.refused[:20],
            "staff_refused_count": len(staff.refused), "staff_tried_again": dict(staff.tried_again),
            "staff_answers_tried_again": dict(staff.problems),
            "staff_failures": staff_failures, "staff_server_errors": staff.server_errors[:20],
            "left_unrated": len(staff.to_rate),
        }
        report["passed"] = (forward and back and settled and report["matters_acknowledged"] == filed
                            and report["lost_in_dispatch"] == 0 and report["counted_twice_in_dispatch"] == 0
                            and report["lost_in_appraisal"] == 0 and report["counted_twice_in_appraisal"] == 0
                            and report["dead_letters_total"] == 0
                            and not any(r["out_of_order"] for r in relays.values())
                            and not answers.failures and not staff.refused and not staff_failures
                            and staff_worked)
        return report
    finally:
        if not (report or {}).get("passed"):
            keep_logs(stack, "upgrade")
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upgrade")
    default = Size()
    parser.add_argument("--from", dest="version", default=None,
                        help="the release to upgrade from, vX.Y.Z (default: CHANGELOG.md's newest)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--matters", type=int, default=default.matters,
                        help="matters filed at least (filing goes on until the rollback is done)")
    parser.add_argument("--rate", type=float, default=default.rate, help="matters filed per second")
    parser.add_argument("--replicas", type=int, default=default.replicas, help="replicas of every service")
    parser.add_argument("--side-by-side-seconds", type=float, default=default.side_by_side_seconds,
                        help="how long a service runs an old and a new replica together")
    parser.add_argument("--county", action="store_true", help="run the demo county (three towns) instead of one town")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    size = Size(matters=args.matters, rate=args.rate, replicas=args.replicas,
                side_by_side_seconds=args.side_by_side_seconds,
                town_dir=str(DEMO_COUNTY_DIR) if args.county else None)
    try:
        old = release(args.version)
        print(f"upgrade seed {seed} from {old} to {current_version()} (replay with --seed {seed})", flush=True)
        report = asyncio.run(run_upgrade(seed, old, size))
    except ReleaseError as exc:
        print(f"upgrade test: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(write_report("upgrade", report, ("steps", "plan")))


if __name__ == "__main__":
    main()
