"""Notify in `make chaos` (issue #31): two replicas of notify beside the other services, sending to
the local receivers (devstack/receivers.py) through the same faults, and three of its own — kill -9
of notify replicas, its consumer group rewound to offset 0 (every event delivered again), and the
receivers down for a while, then back.

Every member of staff of every town is on a signed webhook of their own (`/webhook/<town>-<staff>`):
the webhook's body carries the delivery's `id`, so the receiver can tell a message sent twice (a
webhook has no per-minute limit unless its `per_minute` sets one, so each delivery is a message of
its own; were one set, what exceeds it would go in a digest, whose body carries the id of the first
delivery it folds and whose title the number folded). The receivers journal what they accept (`--journal`), so what
arrived is known across their stop.

At the end, with the receivers back and notify's deliveries all sent (waited for):

- every `dispatch.task.dispatched` event of the run (by event id) has its assignee's delivery
  recorded in notify's database (`not_recorded`: an event lost between the topic and notify);
- no delivery is left waiting (`left_waiting`: lost once the receiver is back);
- every delivery sent on its own arrived (`lost`: its id never reached the receiver), and the
  digests' counts add up to the deliveries marked folded (`digest_count_short`);
- no id arrived twice (`duplicated`). A repeat can be the at-least-once edge docs/notify.md
  names: a replica killed after the receiver took a message and before it recorded it. Each
  message is recorded before the channel's next is sent, so a kill repeats at most the one message
  in flight on each channel. Such a repeat is counted apart (`resent_at_an_edge`: its first
  arrival within `EDGE_SECONDS` before the edge, its second after) and does not fail the run
  unless one edge has more than one such id on a channel (`resent_per_edge_and_channel_most`).
  The edge has two causes, counted each on its own: a kill -9 of a notify replica
  (`resent_after_a_kill`), and PostgreSQL stopped (from the moment its stop began to the moment it
  was down) after the receiver took a message and before its record was written — the record
  fails, the message is sent again once the database is back (`resent_after_a_database_stop`).
  Any other repeat fails the run, listed with its arrival times (`repeats_unexplained`).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from devstack.receivers import Receivers
from devstack.stack import Stack
from townflow_shared.settings import DEMO_TOWN_DIR

from .notify_bench import DIGEST, read_topic, town_folders

DISPATCHED = "dispatch.task.dispatched.v1"
# A replica killed this soon after a receiver took a message may not have recorded it yet (the
# record is one UPDATE a few milliseconds after the answer; a loaded machine stretches that).
EDGE_SECONDS = 2.0


@dataclass
class NotifyChaos:
    receivers: Receivers
    towns: list[str]
    kills: list[float] = field(default_factory=list)  # when a notify replica was killed (epoch seconds)
    # When PostgreSQL's stop began and when it was down (epoch seconds): a fast shutdown cuts the
    # clients first, then writes its checkpoint, seconds on a loaded machine, before it is down.
    database_stops: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def prepare(cls, stack: Stack) -> NotifyChaos:
        """Before any service is added: the stack's own copy of its town or county folder with a
        notify.yaml per town (a webhook per person), and the receivers started."""
        source = Path(stack.extra_env.get("TOWNFLOW_TOWN_DIR") or DEMO_TOWN_DIR)
        town_dir = stack.workdir / "towns"
        shutil.copytree(source, town_dir)
        stack.extra_env["TOWNFLOW_TOWN_DIR"] = str(town_dir)
        secret = secrets.token_hex(16)
        webhooks: dict[str, str] = {}
        codes: list[str] = []
        for folder in town_folders(town_dir):
            code = str(yaml.safe_load((folder / "town.yaml").read_text(encoding="utf-8"))["code"])
            staff = [s["id"] for s in yaml.safe_load((folder / "staff.yaml").read_text(encoding="utf-8"))["staff"]]
            contacts = {
                "robots": [{"name": s, "kind": "webhook", "secret": secret,
                            "url": f"${{TOWNFLOW_RECEIVERS_URL}}/webhook/{code}-{s}"} for s in staff],
                "people": [{"staff": s, "channels": [{"robot": s}]} for s in staff]}
            (folder / "notify.yaml").write_text(yaml.safe_dump(contacts, allow_unicode=True), encoding="utf-8")
            webhooks |= {f"{code}-{s}": secret for s in staff}
            codes.append(code)
        receivers = Receivers(stack.workdir, webhooks=webhooks, journal=True).start()
        stack.use_receivers(receivers)
        return cls(receivers, codes)

    async def failing(self, stack: Stack) -> int:
        """Deliveries waiting after a failed attempt (0 while notify's database cannot be read)."""
        return int(await _fetchval(stack, "SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts > 0")
                   or 0)

    def killed(self) -> None:
        self.kills.append(time.time())

    def database_away(self, began: float, down: float) -> None:
        """PostgreSQL stopped between `began` and `down`: a message taken in the seconds before, or
        while it was stopping, could not be recorded."""
        self.database_stops.append((began, down))

    async def sent_all(self, stack: Stack, timeout: float) -> bool:
        """Every delivery sent (a receiver that was down is tried again with back-off, up to 5 minutes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = await _fetchval(stack, "SELECT count(*) FROM deliveries WHERE status = 'pending'")
            if waiting == 0:
                return True
            print(f"  waiting for notify to send: {waiting}", flush=True)
            await asyncio.sleep(3)
        return False

    async def judge(self, stack: Stack, timeout: float = 360.0) -> dict[str, Any]:
        assert stack.kafka is not None and stack.postgres is not None
        settled = await self.sent_all(stack, timeout)
        conn = await asyncpg.connect(stack.postgres.dsn("notify"))
        try:
            rows = await conn.fetch("SELECT id, event_id::text, status, in_digest FROM deliveries")
        finally:
            await conn.close()
        dispatched = {e["id"] for e in await read_topic(stack.kafka.bootstrap, DISPATCHED)
                      if e.get("type") == "dispatch.task.dispatched" and e.get("town_code") in self.towns}
        recorded = {r["event_id"] for r in rows}
        arrivals: dict[int, list[float]] = {}
        channels: dict[int, str] = {}  # each id's webhook: one person's channel
        digests: dict[int, int] = {}
        for message in self.receivers.journalled():
            if message.get("kind") != "webhook":
                continue
            arrivals.setdefault(int(message["id"]), []).append(float(message["at"]))
            channels[int(message["id"])] = str(message["name"])
            if found := DIGEST.search(message["title"]):
                digests[int(message["id"])] = max(digests.get(int(message["id"]), 0), int(found.group(1)))
        singles = [r["id"] for r in rows if r["status"] == "sent" and not r["in_digest"]]
        folded = sum(1 for r in rows if r["in_digest"])
        repeats = {i: sorted(at) for i, at in arrivals.items() if len(at) > 1}
        edges = [(at, at, "kill") for at in self.kills] + [(b, e, "database stop") for b, e in self.database_stops]
        at_an_edge = {i: e for i, at in repeats.items() if (e := edge_of(at, edges)) is not None}
        # Any other repeat fails the run: its arrivals beside the edges say where to look.
        unexplained = [{"id": i, "channel": channels[i], "arrived": [round(a, 2) for a in at]}
                       for i, at in sorted(repeats.items()) if i not in at_an_edge]
        # An edge repeats at most the message in flight on each channel: one id per edge and channel.
        in_flight = max(Counter((e, channels[i]) for i, e in at_an_edge.items()).values(), default=0)

        report = {
            "receivers": "a signed webhook per person; ids from the receivers' journal",
            "dispatched_events": len(dispatched), "deliveries": len(rows),
            "not_recorded": len(dispatched - recorded),
            "left_waiting": sum(1 for r in rows if r["status"] != "sent"),
            "sent_singly": len(singles), "folded_in_digests": folded, "digests": len(digests),
            "messages_arrived": sum(len(a) for a in arrivals.values()),
            "lost": sum(1 for i in singles if i not in arrivals),
            "digest_count_short": max(0, folded - sum(digests.values())),
            "duplicated": sum(len(at) - 1 for at in repeats.values()),
            "resent_at_an_edge": resent_at_edges(repeats, at_an_edge),
            "resent_after_a_kill": resent_at_edges(repeats, at_an_edge, "kill"),
            "resent_after_a_database_stop": resent_at_edges(repeats, at_an_edge, "database stop"),
            "resent_per_edge_and_channel_most": in_flight,
            "notify_kills": len(self.kills), "database_stops": len(self.database_stops), "sent_all": settled,
            "edges": [{"cause": c, "from": round(b, 2), "to": round(e, 2)} for b, e, c in sorted(edges)],
            "repeats_unexplained": unexplained[:20],
        }
        report["passed"] = bool(
            settled and dispatched and report["not_recorded"] == 0 and report["left_waiting"] == 0
            and report["lost"] == 0 and report["digest_count_short"] == 0
            and report["duplicated"] == report["resent_at_an_edge"]
            and in_flight <= 1)
        return report

    def stop(self) -> None:
        self.receivers.stop()


# An edge notify may repeat a message across: from, to (the same instant for a kill) and its cause.
Edge = tuple[float, float, str]


def edge_of(arrivals: list[float], edges: list[Edge]) -> Edge | None:
    """The edge (a kill -9 at an instant, or PostgreSQL's stop from its beginning to the moment it
    was down: from, to and cause) a repeat (its arrival times, in order) is the repeat of: the first
    whose span its first arrival fell in, or came at most EDGE_SECONDS before, and that ended before
    its last arrival; none, any other repeat."""
    return next(((began, ended, cause) for began, ended, cause in sorted(edges)
                 if began - EDGE_SECONDS <= arrivals[0] <= ended and arrivals[-1] > ended), None)


def resent_at_edges(repeats: dict[int, list[float]], at_an_edge: dict[int, Edge],
                    cause: str | None = None) -> int:
    """The arrivals after the first of the messages repeated at an edge (`edge_of`): of any edge,
    or of those of `cause`."""
    return sum(len(repeats[i]) - 1 for i, (_, _, c) in at_an_edge.items() if cause in (None, c))


async def _fetchval(stack: Stack, query: str) -> Any:
    assert stack.postgres is not None
    try:
        conn = await asyncpg.connect(stack.postgres.dsn("notify"))
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def notify_steps(seed: int, kills: int, replicas: int, receivers_down: bool) -> list[tuple[str, ...]]:
    """Notify's own faults, from a generator of their own (the other faults of a seed stay where
    they were): `kills` kill -9 of its replicas, the receivers down."""
    rng = random.Random(f"{seed}-notify")  # noqa: S311 - replayable from the printed seed
    steps: list[tuple[str, ...]] = [("kill", "notify", str(rng.randrange(replicas))) for _ in range(kills)]
    if receivers_down:
        steps.insert(rng.randint(0, len(steps)), ("receivers",))
    return steps

