"""Faults that stop a replica without killing it, for `make chaos` (bench.chaos): what holds what,
a pause (SIGSTOP), a network partition from PostgreSQL or Kafka, a clock running ahead, and how
long the work filed meanwhile took to reach its topic.

- **Who holds what.** The outbox relay's holder: the session holding the relay's advisory lock
  (`pg_locks` joined to `pg_stat_activity`: its `application_name` names the process, or its client
  port is found among the replicas' sockets), or between cycles the relay's lease row. A consumer's
  partitions: the replicas whose /metrics report lag for partitions assigned to them.
- **Partition.** Each replica starts in a cgroup (v2) of its own; cutting it off is one nftables
  rule each way (`socket cgroupv2` and the port of PostgreSQL or of the broker) that DROPS its
  packets: its connections stay open and unanswered, as behind a dead switch, until TCP keepalives
  or the peer's timeouts end them. The process keeps running. Only loopback traffic of that one
  replica is touched; the table is removed at the end.
- **Clock ahead.** libfaketime (`FAKETIME=+300s`) preloaded into one replica's process: its own
  clock runs ahead, not the test clock.
- **Watching.** A topic read from its end in read_committed mode (what consumers see), noting when
  each matter's first message arrives and every message's `x-outbox-id`; appraisal's counting is
  read from its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from devstack.stack import ServiceProcess, Stack
from townflow_shared.db import RELAY_LOCK
from townflow_shared.kafka import topic_partitions

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


# --- who holds what -------------------------------------------------------------------------------
def _socket_inodes(local_port: int) -> set[str]:
    """Inodes of the established TCP sockets on this machine whose local port is `local_port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def owner_of_client_port(port: int, processes: list[ServiceProcess]) -> ServiceProcess | None:
    """The replica whose socket is the client end `port` of a connection (PostgreSQL's client_port)."""
    inodes = _socket_inodes(port)
    for process in processes:
        if process.pid is None:
            continue
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{process.pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return process
    return None


def _by_pid(processes: list[ServiceProcess], pid: int) -> ServiceProcess | None:
    return next((p for p in processes if p.pid == pid and p.running), None)


async def relay_holder(stack: Stack, name: str, conn: asyncpg.Connection | None = None
                       ) -> tuple[ServiceProcess, str] | None:
    """The replica of `name` whose outbox relay holds the relay now, and what it holds (`conn`: a
    connection to its database to ask on, else one of its own)."""
    assert stack.postgres is not None
    if conn is None:
        conn = await asyncpg.connect(stack.postgres.dsn(name))
        try:
            return await relay_holder(stack, name, conn)
        finally:
            await conn.close()
    processes = stack.replicas[name]
    for row in await conn.fetch(
            "SELECT a.application_name, a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.granted", RELAY_LOCK):
        named = re.search(r"\bpid (\d+)", row["application_name"] or "")
        process = _by_pid(processes, int(named[1])) if named else None
        process = process or (owner_of_client_port(row["client_port"], processes) if row["client_port"] else None)
        if process is not None:
            return process, "relay lock"
    if await conn.fetchval("SELECT to_regclass('outbox_relay_lease') IS NOT NULL"):
        for holder in [r[0] for r in await conn.fetch("SELECT holder FROM outbox_relay_lease")]:
            parts = str(holder).split(":")
            if len(parts) >= 2 and parts[1].isdigit() and (process := _by_pid(processes, int(parts[1]))):
                return process, "relay lease"
    return None


async def waits_now(dsn: str) -> list[dict[str, Any]]:
    """Who waits in a database now and on whom (a replica paused or cut off while holding a lock
    shows here as the blocker, in state `idle in transaction` or `active` with a client wait):
    what a fault's report says when work through the live replicas did not go through."""
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(
            "SELECT w.application_name AS waiting, w.wait_event_type || ':' || w.wait_event AS waits_on,"
            "  round(extract(epoch FROM now() - w.query_start)::numeric, 1)::float AS for_s, left(w.query, 160) AS query,"
            "  b.application_name AS blocker, b.state AS blocker_state,"
            "  coalesce(b.wait_event_type || ':' || b.wait_event, '') AS blocker_waits_on,"
            "  left(b.query, 160) AS blocker_query"
            " FROM pg_stat_activity w CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking(pid)"
            " JOIN pg_stat_activity b ON b.pid = blocking.pid"
            " WHERE w.datname = current_database() ORDER BY for_s DESC LIMIT 10")]
    finally:
        await conn.close()


async def partition_owners(stack: Stack, name: str) -> dict[str, int]:
    """The replicas of `name` (by label) with consumer partitions assigned, and how many each (from
    the lag each replica reports for its own partitions)."""
    owners: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=2) as client:
        for process in stack.replicas[name]:
            with contextlib.suppress(httpx.HTTPError):
                text = (await client.get(f"{process.url}/metrics")).text
                if n := sum(1 for line in text.splitlines()
                            if line.startswith("townflow_consumer_lag{") and f'service="{name}"' in line):
                    owners[process.label] = n
    return owners


# --- pause -----------------------------------------------------------------------------------------
def pause(process: ServiceProcess) -> None:
    assert process.pid is not None
    os.kill(process.pid, signal.SIGSTOP)


def resume(process: ServiceProcess) -> None:
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)


# --- partition -------------------------------------------------------------------------------------
def cgroup2_mount() -> Path | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def partition_unavailable() -> str | None:
    """Why replicas cannot be cut off here (None: they can)."""
    if os.geteuid() != 0:
        return "cutting a replica off needs root (cgroups and nftables)"
    if shutil.which("nft") is None:
        return "nft is not installed (apt-get install nftables; `make chaos` installs it as root)"
    if cgroup2_mount() is None:
        return "no cgroup2 file system is mounted"
    return None


# Joins its own cgroup, then becomes the service (the same process: the stack's pid is the service's).
_JOIN = "import os, sys; open(sys.argv[1], 'w').write(str(os.getpid())); os.execv(sys.argv[2], sys.argv[2:])"


class NetCut:
    """Each replica in a cgroup of its own, and nftables rules that drop one replica's packets to
    and from a port of this machine's loopback. `close` removes the rules and the cgroups."""

    def __init__(self, name: str) -> None:
        mount = cgroup2_mount()
        assert mount is not None
        self.mount = mount
        self.group = f"townflow-{name}"
        self.table = f"townflow_{name.replace('-', '_')}"
        self.cuts: dict[str, tuple[str, int]] = {}  # label → (what, port)
        self.nft = shutil.which("nft") or "nft"
        (mount / self.group).mkdir(exist_ok=True)
        self._nft("add", "table", "inet", self.table)
        self._nft("add", "chain", "inet", self.table, "out", "{ type filter hook output priority 0 ; }")
        self._nft("add", "chain", "inet", self.table, "in", "{ type filter hook input priority 0 ; }")

    def _nft(self, *args: str) -> None:
        subprocess.run([self.nft, *args], check=True, capture_output=True, text=True)

    def enclose(self, process: ServiceProcess) -> None:
        """Launch `process` (from its next start) in a cgroup of its own: sockets belong to the
        cgroup they were made in, so it must be there before it connects."""
        cgroup = self.mount / self.group / process.label
        cgroup.mkdir(exist_ok=True)
        launch = process.argv or [sys.executable, "-m", process.name]
        if launch[:2] != [sys.executable, "-c"]:
            process.argv = [sys.executable, "-c", _JOIN, str(cgroup / "cgroup.procs"), *launch]

    def _path(self, process: ServiceProcess) -> str:
        """The cgroup's path as nft takes it (relative to /sys/fs/cgroup)."""
        return os.path.relpath(self.mount / self.group / process.label, "/sys/fs/cgroup")

    def cut(self, process: ServiceProcess, what: str, port: int) -> None:
        """Drop every packet between `process` and the local `port`, both ways."""
        path = f'"{self._path(process)}"'
        for chain, direction in (("out", "dport"), ("in", "sport")):
            self._nft("add", "rule", "inet", self.table, chain, "socket", "cgroupv2", "level", "2", path,
                      "tcp", direction, str(port), "drop")
        self.cuts[process.label] = (what, port)

    def heal(self) -> None:
        for chain in ("out", "in"):
            self._nft("flush", "chain", "inet", self.table, chain)
        self.cuts.clear()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._nft("delete", "table", "inet", self.table)
        for cgroup in sorted((self.mount / self.group).glob("*"), reverse=True):
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        with contextlib.suppress(OSError):
            (self.mount / self.group).rmdir()


# --- clock ahead -----------------------------------------------------------------------------------
def skew_unavailable() -> str | None:
    if not LIBFAKETIME.exists():
        return f"libfaketime is not installed ({LIBFAKETIME}; apt-get install faketime)"
    return None


def ahead_env(seconds: float) -> dict[str, str]:
    """The environment that runs a process's own clock `seconds` ahead (libfaketime)."""
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": f"+{int(seconds)}s"}


# --- watching --------------------------------------------------------------------------------------
@dataclass
class Probe:
    """One piece of work acknowledged during a fault: its id, when its 2xx came, through which
    replica, and when it was first sent (a replica that waits on what the paused one holds
    answers late)."""

    key: str
    ident: str
    acked_at: float
    replica: str
    sent_at: float


@dataclass
class Arrivals:
    """When each matter first reached its topic (or was counted), and the messages seen twice."""

    first_seen: dict[str, float] = field(default_factory=dict)
    outbox_ids: Counter[str] = field(default_factory=Counter)    # x-outbox-service/x-outbox-id → messages
    rows_of: dict[str, set[str]] = field(default_factory=dict)   # ident → the outbox rows it came from
    first_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # ident → its first message's data


class TopicWatch:
    """A topic read from its end (read_committed), `ident` picking each message's matter."""

    def __init__(self, bootstrap: str, topic: str, ident: Callable[[dict[str, Any]], str | None]) -> None:
        self.bootstrap, self.topic, self.ident = bootstrap, topic, ident
        self.seen = Arrivals()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> TopicWatch:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    isolation_level="read_committed")
        await consumer.start()
        partitions = await topic_partitions(self.bootstrap, [self.topic])
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # the end as it is now, not at the first fetch
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._consumer is not None
        service = self.topic.split(".", 1)[0]
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            arrived = time.time()
            for records in batches.values():
                for record in records:
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    row = f"{headers.get('x-outbox-service', service)}/{headers.get('x-outbox-id', '')}"
                    self.seen.outbox_ids[row] += 1
                    try:
                        data = json.loads(record.value or b"{}").get("data") or {}
                        ident = self.ident(data)
                    except (ValueError, AttributeError):
                        continue
                    if ident:
                        self.seen.first_seen.setdefault(ident, arrived)
                        self.seen.first_data.setdefault(ident, data)
                        self.seen.rows_of.setdefault(ident, set()).add(row)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class CountedWatch:
    """Appraisal's counting of matters (its task facts), polled from its database."""

    def __init__(self, dsn: str, wanted: Callable[[], list[str]]) -> None:
        self.dsn, self.wanted = dsn, wanted
        self.seen = Arrivals()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> CountedWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def _poll(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                if missing := [i for i in self.wanted() if i not in self.seen.first_seen]:
                    rows = await conn.fetch("SELECT request_id, sum(c_dispatched) AS n FROM task_facts"
                                            " WHERE request_id = ANY($1) GROUP BY 1", missing)
                    arrived = time.time()
                    for r in rows:
                        if r["n"]:
                            self.seen.first_seen[r["request_id"]] = arrived
                await asyncio.sleep(0.25)
        finally:
            await conn.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


Watch = TopicWatch | CountedWatch


async def arrived_all(watch: Watch, probes: list[Probe], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.ident not in watch.seen.first_seen for p in probes):
        await asyncio.sleep(0.25)


def judge(probes: list[Probe], seen: Arrivals, within: float) -> dict[str, Any]:
    """Per fault: the longest wait from a probe's 2xx to its first message on the topic, how many
    waited longer than `within`, never arrived, or arrived from two outbox rows; messages of the
    topic sent twice from one outbox row while it was watched."""
    waits = [max(0.0, seen.first_seen[p.ident] - p.acked_at) for p in probes if p.ident in seen.first_seen]
    sent_to_topic = [seen.first_seen[p.ident] - p.sent_at for p in probes if p.ident in seen.first_seen]
    answers = [p.acked_at - p.sent_at for p in probes]
    lost = [p.key for p in probes if p.ident not in seen.first_seen]
    return {
        "acknowledged_during_fault": len(probes),
        "through": sorted(Counter(p.replica for p in probes).items()),
        "worst_wait_s": round(max(waits), 2) if waits else None,  # from the 2xx to the topic: the target
        "median_wait_s": round(sorted(waits)[len(waits) // 2], 2) if waits else None,
        "worst_answer_s": round(max(answers), 2) if answers else None,  # from the first try to the 2xx
        "worst_sent_to_topic_s": round(max(sent_to_topic), 2) if sent_to_topic else None,
        f"waited_over_{within:g}s": sum(1 for w in waits if w > within),
        "lost": len(lost),
        "lost_keys": lost[:10],
        "doubled_matters": sum(1 for p in probes if len(seen.rows_of.get(p.ident, ())) > 1),
        "doubled_on_topic": sum(n - 1 for n in seen.outbox_ids.values() if n > 1),
        "messages_watched": sum(seen.outbox_ids.values()),
    }


def keep_logs(stack: Stack, run: str) -> None:
    """A failed or interrupted run's replica logs, kept where the stack's folder (removed when it
    stops) cannot take them along: what an SRE reads to find out why. `run`: chaos, upgrade."""
    kept = Path(tempfile.gettempdir()) / f"townflow-{run}-logs-{stack.workdir.name}"
    shutil.copytree(stack.workdir / "logs", kept, dirs_exist_ok=True)
    print(f"  the replicas' logs are kept in {kept}", flush=True)
