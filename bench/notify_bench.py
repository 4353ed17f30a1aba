"""Notify in `make bench` (issue #31's measured targets): the time from a task's dispatch to its
assignee's message accepted by the receiver, and a burst of tasks to one town's robots.

- **Channels.** The bench town's `notify.yaml` (written into the stack's own copy of the town's
  folder) gives every member of staff an e-mail address of their own, sent to the local receivers'
  SMTP server (aiosmtpd, devstack/receivers.py). E-mail, because it has no per-minute limit and
  speaks the protocol a county's relay does (the vendors' robots are held to 20 messages a minute,
  so at 50 matters/s their messages become digests and the time measured would be the limit's).
  Whom dispatch gives one post's tasks, a post the bench's mix never files to (BURST_ITEM's), are
  on a DingTalk and a WeCom robot instead, for the burst. No daily digest (`digest_at: null`): a
  person whose first task comes after the town's digest time gets one at once (docs/notify.md),
  which the burst's robots would count as owed beyond the burst's tasks (503 of 500, seen at
  16:38 town time).
- **Joining.** Notify starts after the ramp, its consumer group committed at the topics' ends: the
  ramp runs the four services alone, as before, and measures what it measured; the main run has
  notify consuming and sending (its CPU reported apart, not in `cpu_ms_per_matter`).
- **Latency.** Per task of the main run, its `dispatch.task.dispatched` event's time → the arrival
  of the assignee's mail at the SMTP server (`at`, the same machine's clock); and the filing
  request's send time → that arrival. p50/p95/p99; the target is p99 ≤ 5 s at 50/s.
- **Burst.** `count` matters of BURST_ITEM filed at once in one town while notify runs: each of the
  two robots is owed `count` messages; the receiver's own arrival times say how many it took in
  any 60 s (never more than 20), the digests fold the rest, nothing is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from devstack.receivers import PER_MINUTE, Receivers
from devstack.stack import Stack
from townflow_shared.kafka import topic_partitions
from townflow_shared.settings import DEMO_TOWN_DIR

from .load import Run

BURST_ITEM = "S014"  # 党组织关系转接 (party-services: s019, s034, then org's leader s003): never in bench.load's MIX
TARGET_P99_MS = 5000.0
TASK_NO = re.compile(r"任务号：(\S+)")
DIGEST = re.compile(r"汇总提醒：(\d+) 条通知")
DISPATCHED = "dispatch.task.dispatched.v1"


def percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def pct(p: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1) if ordered else None

    return {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": round(ordered[-1], 1) if ordered else None,
            "mean": round(statistics.fmean(ordered), 1) if ordered else None}


def town_folders(town_dir: Path) -> list[Path]:
    """A town's folder, or a county's town folders (townflow_shared.county's rule)."""
    if not (town_dir / "county.yaml").exists():
        return [town_dir]
    return sorted(p for p in town_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def notify_yaml(folder: Path, code: str, secret: str) -> tuple[dict[str, Any], list[str]]:
    """The bench's notify.yaml for one town, and the staff on the burst's robots."""
    staff = yaml.safe_load((folder / "staff.yaml").read_text(encoding="utf-8"))["staff"]
    posts = {p["code"]: p for p in yaml.safe_load((folder / "posts.yaml").read_text(encoding="utf-8"))["posts"]}
    catalog = {i["code"]: i for i in yaml.safe_load((folder / "catalog.yaml").read_text(encoding="utf-8"))["items"]}
    modules = {m["code"]: m for m in yaml.safe_load((folder / "modules.yaml").read_text(encoding="utf-8"))["modules"]}
    post = posts[catalog[BURST_ITEM]["post"]]
    # Whom dispatch gives the post's tasks (dispatch.rules.eligible_holders): A, B at their load
    # cap, then the module's leader.
    burst = sorted({post["a_holder"], post["b_holder"], modules[post["module"]]["leader"]})
    robots = [{"name": "burst-dingtalk", "kind": "dingtalk", "secret": secret,
               "url": f"${{TOWNFLOW_RECEIVERS_URL}}/robot/send?access_token=burst-{code}"},
              {"name": "burst-wecom", "kind": "wecom", "url": f"${{TOWNFLOW_RECEIVERS_URL}}/cgi-bin/webhook/send?key=burst-{code}"}]
    people = [{"staff": s["id"], "channels": [{"robot": "burst-dingtalk"}, {"robot": "burst-wecom"}] if s["id"] in burst
               else [{"email": f"{s['id']}.{code}@bench.example.cn"}]} for s in staff]
    return {"robots": robots, "people": people, "digest_at": None}, burst


@dataclass
class NotifyBench:
    receivers: Receivers
    towns: list[str]      # the codes of the towns with a notify.yaml
    burst_staff: list[str]

    @classmethod
    def prepare(cls, stack: Stack) -> NotifyBench:
        """Before the services start: the stack's town folder (a copy of the demo town unless it has
        a county of its own) with a notify.yaml per town, and the receivers started."""
        town_dir = Path(stack.extra_env.get("TOWNFLOW_TOWN_DIR", ""))
        if not stack.extra_env.get("TOWNFLOW_TOWN_DIR"):
            town_dir = stack.workdir / "town"
            shutil.copytree(DEMO_TOWN_DIR, town_dir)
            stack.extra_env["TOWNFLOW_TOWN_DIR"] = str(town_dir)
        secret = "SEC" + secrets.token_hex(16)
        codes: list[str] = []
        burst: list[str] = []
        for folder in town_folders(town_dir):
            code = str(yaml.safe_load((folder / "town.yaml").read_text(encoding="utf-8"))["code"])
            contacts, burst = notify_yaml(folder, code, secret)
            (folder / "notify.yaml").write_text(yaml.safe_dump(contacts, allow_unicode=True), encoding="utf-8")
            codes.append(code)
        receivers = Receivers(stack.workdir, dingtalk={f"burst-{c}": secret for c in codes},
                              wecom=[f"burst-{c}" for c in codes]).start()
        stack.use_receivers(receivers)
        return cls(receivers, codes, burst)

    async def join(self, stack: Stack, replicas: int) -> None:
        """Notify's replicas started, its group first committed at the topics' ends (the ramp's
        tasks are not its to send)."""
        assert stack.kafka is not None
        from notify.app import create_runtime

        topics = [h.topic for h in create_runtime().handlers]
        partitions = await topic_partitions(stack.kafka.bootstrap, topics)
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka.bootstrap, group_id="notify",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()
        stack.replica_count["notify"] = replicas
        await asyncio.to_thread(stack.start_services, ["notify"])
        await self.warm_up(stack)

    async def warm_up(self, stack: Stack, timeout: float = 120.0) -> None:
        """One matter filed and its mail awaited: a replica that answers /readyz may still be
        joining its consumer group (seconds), which is not the main run's to wait for."""
        token = stack.token("intake", "c001", ["county_admin"]) if len(self.towns) > 1 else \
            stack.token("intake", "s010", ["clerk"])
        before = len((await asyncio.to_thread(self.receivers.received))["email"])
        body = {"channel": "window", "item_code": "S001", "description": "bench warm-up", "village": "V01",
                "location": "bench", "citizen": {"name": "压测", "phone": "13800000000"},
                **({"town_code": self.towns[0]} if len(self.towns) > 1 else {})}
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            (await client.post(f"{stack.services['intake'].url}/v1/requests", json=body)).raise_for_status()
        deadline = time.monotonic() + timeout
        while len((await asyncio.to_thread(self.receivers.received))["email"]) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError("notify sent no mail for the warm-up matter")
            await asyncio.sleep(0.5)

    def pids(self, stack: Stack) -> dict[str, int]:
        """The processes notify adds: its replicas and the receivers (for their CPU)."""
        found = {p.label: p.pid for p in stack.replicas.get("notify", []) if p.pid is not None}
        child = self.receivers.child
        if child is not None and child.proc is not None:
            found["receivers"] = child.proc.pid
        return found

    async def latencies(self, stack: Stack, run: Run, wait_seconds: float = 120.0) -> dict[str, Any]:
        """Dispatch → the assignee's mail accepted, and filing → it, for the tasks of `run`."""
        assert stack.kafka is not None
        wall_of_monotonic = time.time() - time.monotonic()
        tasks: dict[str, tuple[float, str]] = {}  # task id -> (dispatched event's time, request id)
        event_times: dict[str, float] = {}  # the tasks' dispatched events by id
        for event in await read_topic(stack.kafka.bootstrap, DISPATCHED):
            request_id = event["data"].get("request_id")
            if request_id in run.sent and event["data"]["task_id"] not in tasks:
                tasks[event["data"]["task_id"]] = (datetime_s(event["time"]), request_id)
                event_times[event["id"]] = datetime_s(event["time"])
        arrived: dict[str, float] = {}
        deadline = time.monotonic() + wait_seconds
        while True:
            mails = (await asyncio.to_thread(self.receivers.received))["email"]
            arrived = {}
            for mail in mails:
                if (found := TASK_NO.search(mail["text"])) and found.group(1) in tasks:
                    arrived.setdefault(found.group(1), mail["at"])
            if len(arrived) >= len(tasks) or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
        from_dispatch = [1000 * (at - tasks[t][0]) for t, at in arrived.items()]
        from_filing = [1000 * (at - run.sent[tasks[t][1]] - wall_of_monotonic) for t, at in arrived.items()]
        doubled = len(mails) - len({(tuple(m["to"]), m["subject"], m["text"]) for m in mails})
        # Where the time goes: the consumer recording the delivery (with the event's inbox row),
        # then the sender loop sending it (notify's own clock, the same machine's).
        assert stack.postgres is not None
        conn = await asyncpg.connect(stack.postgres.dsn("notify"))
        try:
            recorded = await conn.fetch(
                "SELECT event_id::text AS event_id, extract(epoch FROM created_at)::float8 AS created,"
                " extract(epoch FROM sent_at)::float8 AS sent FROM deliveries"
                " WHERE event_type = 'dispatch.task.dispatched' AND channel LIKE 'email:%'")
        finally:
            await conn.close()
        mine = [r for r in recorded if r["event_id"] in event_times]
        to_recorded = [1000 * (r["created"] - event_times[r["event_id"]]) for r in mine]
        to_sent = [1000 * (r["sent"] - r["created"]) for r in mine if r["sent"] is not None]
        result: dict[str, Any] = {"channel": "e-mail: aiosmtpd, one SMTP session per channel and wake-up (no per-minute limit)",
                  "tasks": len(tasks), "arrived": len(arrived), "missing": len(tasks) - len(arrived),
                  "mails_doubled": doubled,
                  "dispatched_to_accepted_ms": percentiles(from_dispatch),
                  "filed_to_accepted_ms": percentiles(from_filing), "target_p99_ms": TARGET_P99_MS,
                  "dispatched_to_recorded_ms": percentiles(to_recorded),
                  "recorded_to_sent_ms": percentiles(to_sent)}
        p99 = result["dispatched_to_accepted_ms"]["p99"]
        result["met"] = bool(tasks) and not result["missing"] and p99 is not None and p99 <= TARGET_P99_MS
        return result

    async def burst(self, stack: Stack, count: int = 500, rate: float = 100.0, wait_seconds: float = 300.0,
                    county: bool = False) -> dict[str, Any]:
        """`count` matters of BURST_ITEM filed in the first town at `rate`: what its two robots took."""
        assert stack.postgres is not None
        town = self.towns[0]
        channels = [f"robot:{town}/burst-dingtalk", f"robot:{town}/burst-wecom"]
        filer = (stack.token("intake", "c001", ["county_admin"]) if county
                 else stack.token("intake", "s010", ["clerk"]))
        url = f"{stack.services['intake'].url}/v1/requests"
        began = time.time()
        filed: list[str] = []
        gate = asyncio.Semaphore(32)
        async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {filer}"}) as client:

            async def one(n: int) -> None:
                body = {"channel": "window", "item_code": BURST_ITEM, "description": "bench burst",
                        "village": "V01", "location": "bench", "citizen": {"name": "压测", "phone": f"138{n:08d}"}}
                if county:
                    body["town_code"] = town
                async with gate:
                    response = await client.post(url, json=body)
                if response.status_code == 201:
                    filed.append(response.json()["request_id"])

            jobs = []
            for n in range(count):
                if (delay := began + n / rate - time.time()) > 0:
                    await asyncio.sleep(delay)
                jobs.append(asyncio.create_task(one(n)))
            await asyncio.gather(*jobs)
        filed_s = round(time.time() - began, 1)
        conn = await asyncpg.connect(stack.postgres.dsn("notify"))
        try:
            deadline = time.monotonic() + wait_seconds
            while True:
                rows = {r["channel"]: r for r in await conn.fetch(
                    "SELECT channel, count(*) AS owed, count(*) FILTER (WHERE status = 'sent') AS sent,"
                    " count(*) FILTER (WHERE in_digest) AS folded, max(sent_at) AS last FROM deliveries"
                    " WHERE channel = ANY($1) AND created_at >= to_timestamp($2) GROUP BY channel", channels, began)}
                done = all(c in rows and rows[c]["owed"] >= len(filed) and rows[c]["sent"] == rows[c]["owed"]
                           for c in channels)
                if done or time.monotonic() > deadline:
                    break
                await asyncio.sleep(2)
        finally:
            await conn.close()
        received = await asyncio.to_thread(self.receivers.received)
        robots = {
            "dingtalk": ([m for m in received["dingtalk"] if m["access_token"] == f"burst-{town}"],
                         f"dingtalk:burst-{town}", lambda m: m["title"]),
            "wecom": ([m for m in received["wecom"] if m["key"] == f"burst-{town}"],
                      f"wecom:burst-{town}", lambda m: m["content"]),
        }
        report: dict[str, Any] = {"town": town, "item": BURST_ITEM, "staff": self.burst_staff, "filed": len(filed),
                                  "filing_s": filed_s, "per_minute_limit": PER_MINUTE}
        passed = len(filed) == count
        for (kind, (messages, where, head)), channel in zip(robots.items(), channels, strict=True):
            row = rows.get(channel)
            digests = [m for m in messages if DIGEST.search(head(m))]
            folded: int = sum(int(found.group(1)) for m in digests if (found := DIGEST.search(head(m))) is not None)
            refused = [r for r in received["refused"] if r["where"] == where]
            most = max_in_window([m["at"] for m in messages], 60.0)
            entry: dict[str, Any] = {"owed": row["owed"] if row else 0, "sent": row["sent"] if row else 0,
                     "messages": len(messages), "singles": len(messages) - len(digests), "digests": len(digests),
                     "folded_in_digests": folded, "most_in_any_60s": most, "refused": len(refused),
                     "all_sent_after_s": round(row["last"].timestamp() - began, 1) if row and row["last"] else None}
            entry["passed"] = (entry["owed"] == len(filed) and entry["sent"] == entry["owed"] and most <= PER_MINUTE
                               and not refused and entry["singles"] + folded == entry["owed"])
            passed = passed and entry["passed"]
            report[kind] = entry
        report["passed"] = passed
        return report

    def stop(self) -> None:
        self.receivers.stop()


def max_in_window(moments: list[float], seconds: float) -> int:
    """The most of `moments` inside any window of `seconds` (what a sliding per-minute limit counts)."""
    ordered, most, start = sorted(moments), 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


def datetime_s(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every event on `topic` up to its end offsets as they stand now (read_committed); what is
    not JSON with a `data` object is left out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    events: list[dict[str, Any]] = []
    try:
        partitions: list[TopicPartition] = await topic_partitions(bootstrap, [topic])
        if not partitions:
            return events
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]] and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    try:
                        event = json.loads(record.value or b"")
                    except ValueError:  # poison (make chaos puts some on every topic)
                        continue
                    if isinstance(event, dict) and isinstance(event.get("data"), dict):
                        events.append(event)
    finally:
        await consumer.stop()
    return events
