"""The sender loop: the deliveries recorded by the consumer go out, channel by channel.

Each wake-up leases the channels with deliveries due (store.claim_channels: no two replicas send to
one channel at once, so a delivery is sent by one replica and a robot's per-minute count is
exact) and sends to up to `send_concurrency` of them at once, each channel's messages one after
another. Per channel: its due deliveries read while renewing its lease (store.due_while_held),
each message the receiver took recorded at once, before the next is sent (store.record_sent, one
statement by primary key), and at the end the failed ones' waits recorded with the lease given
back (store.release_channel); e-mail goes through one SMTP session per channel. A message is sent
only while the lease has a call's time left (the replica's own monotonic clock, which runs on
through a pause), so a replica paused past its lease sends nothing more. A receiver that is down
makes its deliveries wait with back-off (rules.retry_delay), forever: an outage, never a dead
letter, and the log says why. One channel's failure never stops the others (per item, as
dispatch's loops).

At-least-once at the receiver's edge: a replica killed after a receiver took a message and before
it recorded it (a few milliseconds, one UPDATE) sends that one message again when its lease runs
out: at most one message per channel, the one in flight. A robot cannot tell (the generic webhook
carries the delivery's id for that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from townflow_shared.db import OUTAGES, transaction
from townflow_shared.dlq import describe
from townflow_shared.outbox import relay_holder
from townflow_shared.retry import sending_loop

from . import digest, rules
from .deps import Deps
from .metrics import DIGEST_PASSES, MESSAGES
from .senders import RobotSender, SendFailed, SmtpSession
from .store import Failed, PgStore

log = logging.getLogger(__name__)
# Due deliveries read for a robot with a limit at a wake-up: what exceeds its minute is folded into one digest.
ROBOT_FOLD_MAX = 1000


@dataclass(frozen=True)
class Message:
    """One message to a channel: a delivery alone, or a digest folding several (the first's id)."""

    ids: list[int]
    title: str
    text: str
    digest: bool = False


class Sender:
    def __init__(self, deps: Deps, holder: str | None = None) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.holder = holder or relay_holder()
        self.robots = RobotSender(self.settings.send_timeout_seconds)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.deps.database.pool

    async def close(self) -> None:
        await self.robots.close()

    async def send_due(self) -> int:
        """One wake-up: every channel this replica could lease, `send_concurrency` at a time; the
        number of deliveries sent."""
        async with self.pool.acquire() as conn:
            store = PgStore(conn)
            channels = await store.claim_channels(self.holder, self.settings.send_lease_seconds,
                                                  self.settings.send_channels_per_wake)
            if channels:
                await store.prune_robot_messages()
        gate = asyncio.Semaphore(self.settings.send_concurrency)

        async def one(channel: str) -> int:
            async with gate:
                try:
                    return await self.send_channel(channel)
                except OUTAGES:
                    raise
                except Exception:  # one channel's bug never stops the others
                    log.exception("sending to %s failed", channel)
                    async with self.pool.acquire() as conn:
                        await PgStore(conn).release_channel(channel, self.holder)
                    return 0

        results = await asyncio.gather(*(one(c) for c in channels), return_exceptions=True)
        for result in results:  # the database away: after every channel's end, the loop waits it out
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    def _delays(self, rows: Sequence[asyncpg.Record]) -> list[float]:
        return [rules.retry_delay(r["attempts"] + 1, self.settings.send_retry_base_seconds,
                                  self.settings.send_retry_max_seconds) for r in rows]

    async def send_channel(self, channel: str) -> int:
        """The channel's due messages, one after another, each recorded as soon as the receiver took
        it; then the failed ones recorded with the lease given back. The number of deliveries sent."""
        kind, _, where = channel.partition(":")
        robot = None
        limit = self.settings.send_per_channel
        if kind == "robot":
            town_code, _, name = where.partition("/")
            contacts = self.deps.contacts.get(town_code)
            robot = contacts.robot(name) if contacts is not None else None
            if robot is not None and robot.minute_limit() is not None:
                limit = ROBOT_FOLD_MAX
        started = time.monotonic()
        async with self.pool.acquire() as conn:
            rows = await PgStore(conn).due_while_held(channel, self.holder, self.settings.send_lease_seconds, limit)
        # The last moment a call may start and still end inside the lease just renewed.
        last_start = started + self.settings.send_lease_seconds - self.settings.send_timeout_seconds

        async def record_sent(message: Message) -> None:
            counted = channel if kind == "robot" else None  # a robot's minute counts its messages
            async with self.pool.acquire() as conn:
                await PgStore(conn).record_sent(message.ids, message.digest, counted)

        failed = Failed()
        sent = 0
        if rows and kind == "robot" and robot is None:
            town_code, _, name = where.partition("/")
            self._fail(failed, rows, f"no robot {name!r} in town {town_code}'s notify.yaml")
        elif rows and robot is not None:
            messages = self._robot_messages(rows, robot.minute_limit())
            sent = await self._send(kind, failed, rows, messages, last_start, lambda m: self.robots.send(
                robot, m.ids[0], m.title, m.text, int(time.time() * 1000)), record_sent)
        elif rows:
            session = SmtpSession(self.settings)
            try:
                sent = await self._send(kind, failed, rows, [Message([r["id"]], r["title"], r["body"]) for r in rows],
                                        last_start, lambda m: session.send(where, m.title, m.text), record_sent)
            finally:
                await session.close()
        async with self.pool.acquire() as conn:
            await PgStore(conn).release_channel(channel, self.holder, failed)
        if failed.ids:
            MESSAGES.labels(kind, "failed").inc()
        return sent

    def _robot_messages(self, rows: Sequence[asyncpg.Record], per_minute: int | None) -> list[Message]:
        """The robot's messages now: its limit kept (rules.robot_sends), at most `send_per_channel`
        singles a wake-up (more: the rest wait for the next one, unfolded)."""
        plan = rules.robot_sends([r["id"] for r in rows], int(rows[0]["in_window"]), per_minute)
        by_id = {r["id"]: r for r in rows}
        cap = self.settings.send_per_channel
        singles, folded = (plan.singles[:cap], []) if len(plan.singles) > cap else (plan.singles, plan.folded)
        messages = [Message([i], by_id[i]["title"], by_id[i]["body"]) for i in singles]
        if folded:
            title, text = rules.digest([by_id[i]["title"] for i in folded])
            messages.append(Message(folded, title, text, digest=True))
        return messages

    async def _send(self, kind: str, failed: Failed, rows: Sequence[asyncpg.Record], messages: Sequence[Message],
                    last_start: float, send: Callable[[Message], Awaitable[None]],
                    record_sent: Callable[[Message], Awaitable[None]]) -> int:
        """Each message in turn while the lease lasts, recorded sent before the next one goes (a
        replica killed mid-turn sends again only the message in flight, not the turn's); the first
        failure makes it and the rest wait (the receiver is down: no use trying the others now).
        The number of deliveries sent."""
        by_id = {r["id"]: r for r in rows}
        sent = 0
        for position, message in enumerate(messages):
            if time.monotonic() > last_start:
                break  # the rest wait for the next lease, untried
            try:
                await send(message)
            except SendFailed as exc:
                self._fail(failed, [by_id[i] for m in messages[position:] for i in m.ids], str(exc))
                break
            await record_sent(message)
            sent += len(message.ids)
            MESSAGES.labels(kind, "digest" if message.digest else "sent").inc()
        return sent

    def _fail(self, failed: Failed, rows: Sequence[asyncpg.Record], why: str) -> None:
        failed.ids += [r["id"] for r in rows]
        failed.delays += self._delays(rows)
        failed.error = why


def sender_loop(deps: Deps) -> Callable[[object], Awaitable[None]]:
    """Wakes every `send_poll_seconds` (at once again while a wake-up sent something, or when a
    test moves the clock)."""
    return sending_loop(lambda: Sender(deps), deps.clock.wait_moved, deps.settings.send_poll_seconds, "notify")


async def record_due_digests(deps: Deps) -> int:
    """One pass of the daily digest: in each town, every person with something open whose digest
    time has come today and who has no digest of today yet gets one, recorded as deliveries (the
    sender loop sends them). One transaction per town: the digest's key (town, person, day) and
    its deliveries commit together, so of two replicas one records it. Which day it is and whose
    time has come is the database's clock (shared work, townflow_shared.clock), never a replica's
    own. One town's failure never stops the others. The number of digests recorded."""
    recorded = 0
    for code, contacts in deps.contacts.items():
        town = deps.county.town(code)
        if town is None:
            continue
        try:
            async with transaction(deps.database.pool) as conn:
                now = await deps.clock.database_now(conn)
                day = digest.digest_day(now, town)
                store = PgStore(conn)
                due = digest.due_for_digest(await store.undigested_people(code, day), now, town, contacts)
                if not due:
                    continue
                claimed = await store.claim_digests(code, day, due)
                items = await store.open_items(code, claimed)
                for person in claimed:
                    notice = digest.daily_digest(person, items, town, now)
                    if notice is not None:
                        await store.add_deliveries(digest.digest_event_id(code, person, day), digest.DIGEST_EVENT_TYPE,
                                                   code, rules.deliveries_of([notice], contacts, code))
                recorded += len(claimed)
        except OUTAGES:
            raise
        except Exception:  # one town's bug never stops the others
            log.exception("the daily digest of town %s failed; tried again next pass", code)
    return recorded


def digest_loop(deps: Deps) -> Callable[[object], Awaitable[None]]:
    async def digest_loop(_: object) -> None:
        """Wakes every `digest_poll_seconds`, or at once when a test moves the clock."""
        passes = DIGEST_PASSES
        while True:
            try:
                await record_due_digests(deps)
            except OUTAGES as exc:
                log.warning("the daily digest waits out an outage: %s", describe(exc))
            passes.inc()
            await deps.clock.wait_moved(deps.settings.digest_poll_seconds)

    return digest_loop
