"""The sender loop: the deliveries recorded by the consumer go out, channel by channel.

Each wake-up leases the channels with deliveries due (store.claim_channels: no two replicas send to
one channel at once, so a delivery is sent by one replica and a robot's per-minute count is
exact), sends, records each outcome, and gives the leases back. A receiver that is down makes its
deliveries wait with back-off (rules.retry_delay), forever: an outage, never a dead letter, and the
log says why. One channel's failure never stops the others (per item, as dispatch's loops).

At-least-once at the receiver's edge: a replica killed after a receiver took a message and before
it recorded so sends that one message again when its lease runs out; a robot cannot tell (the
generic webhook carries the delivery's id for that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from townflow_shared.db import OUTAGES, transaction
from townflow_shared.dlq import describe
from townflow_shared.outbox import relay_holder

from . import digest, rules
from .deps import Deps
from .metrics import MESSAGES
from .senders import RobotSender, SendFailed, send_email
from .store import PgStore

log = logging.getLogger(__name__)
# Due deliveries read for one robot at a wake-up: what exceeds its minute is folded into one digest.
ROBOT_FOLD_MAX = 1000


class Sender:
    def __init__(self, deps: Deps, holder: str | None = None) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.holder = holder or relay_holder()
        self.robots = RobotSender(self.settings.send_timeout_seconds)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.deps.database.pool

    async def send_due(self) -> int:
        """One wake-up: every channel this replica could lease; the number of deliveries sent."""
        async with self.pool.acquire() as conn:
            store = PgStore(conn)
            channels = await store.claim_channels(self.holder, self.settings.send_lease_seconds,
                                                  self.settings.send_channels_per_wake)
            if channels:
                await store.prune_robot_messages()
        sent = 0
        for channel in channels:
            try:
                sent += await self.send_channel(channel)
            except OUTAGES:
                raise
            except Exception:  # one channel's bug never stops the others
                log.exception("sending to %s failed", channel)
            finally:
                async with self.pool.acquire() as conn:
                    await PgStore(conn).release_channel(channel, self.holder)
        return sent

    def _delays(self, rows: Sequence[asyncpg.Record]) -> list[float]:
        return [rules.retry_delay(r["attempts"] + 1, self.settings.send_retry_base_seconds,
                                  self.settings.send_retry_max_seconds) for r in rows]

    async def _failed(self, rows: Sequence[asyncpg.Record], why: str, kind: str = "robot") -> None:
        MESSAGES.labels(kind, "failed").inc()
        async with self.pool.acquire() as conn:
            await PgStore(conn).mark_failed([r["id"] for r in rows], why, self._delays(rows))

    async def _sent(self, ids: Sequence[int], channel: str, *, robot: bool, in_digest: bool = False) -> None:
        MESSAGES.labels(channel.partition(":")[0], "digest" if in_digest else "sent").inc()
        async with self.pool.acquire() as conn:
            await PgStore(conn).mark_sent(ids, channel, robot=robot, in_digest=in_digest)

    async def _held(self, channel: str) -> bool:
        async with self.pool.acquire() as conn:
            return await PgStore(conn).still_held(channel, self.holder)

    async def send_channel(self, channel: str) -> int:
        kind, _, where = channel.partition(":")
        if kind == "email":
            return await self._send_each(channel, lambda row: send_email(
                self.settings, where, row["title"], row["body"]))
        town_code, _, name = where.partition("/")
        contacts = self.deps.contacts.get(town_code)
        robot = contacts.robot(name) if contacts is not None else None
        async with self.pool.acquire() as conn:
            store = PgStore(conn)
            rows = await store.due_on(channel, ROBOT_FOLD_MAX)
            in_window = await store.robot_messages_in_last_minute(channel)
        if robot is None:
            await self._failed(rows, f"no robot {name!r} in town {town_code}'s notify.yaml")
            return 0
        plan = rules.robot_sends([r["id"] for r in rows], in_window, robot.per_minute)
        by_id = {r["id"]: r for r in rows}
        cap = self.settings.send_per_channel
        # More singles than one wake-up sends: the rest wait for the next one, unfolded.
        singles, folded = (plan.singles[:cap], []) if len(plan.singles) > cap else (plan.singles, plan.folded)
        sent = 0
        for position, delivery_id in enumerate(singles):
            row = by_id[delivery_id]
            if not await self._held(channel):
                return sent
            try:
                await self.robots.send(robot, delivery_id, row["title"], row["body"], int(time.time() * 1000))
            except SendFailed as exc:  # the receiver is down: this and the rest wait
                await self._failed([by_id[i] for i in [*singles[position:], *folded]], str(exc))
                return sent
            await self._sent([delivery_id], channel, robot=True)
            sent += 1
        if folded and await self._held(channel):
            title, text = rules.digest([by_id[i]["title"] for i in folded])
            try:
                await self.robots.send(robot, folded[0], title, text, int(time.time() * 1000))
            except SendFailed as exc:
                await self._failed([by_id[i] for i in folded], str(exc))
                return sent
            await self._sent(folded, channel, robot=True, in_digest=True)
            sent += len(folded)
        return sent

    async def _send_each(self, channel: str, send: Callable[[asyncpg.Record], Awaitable[None]]) -> int:
        async with self.pool.acquire() as conn:
            rows = await PgStore(conn).due_on(channel, self.settings.send_per_channel)
        sent = 0
        for position, row in enumerate(rows):
            if not await self._held(channel):
                return sent
            try:
                await send(row)
            except SendFailed as exc:
                await self._failed(rows[position:], str(exc), channel.partition(":")[0])
                return sent
            await self._sent([row["id"]], channel, robot=False)
            sent += 1
        return sent


def sender_loop(deps: Deps) -> Callable[[object], Awaitable[None]]:
    async def sender_loop(_: object) -> None:
        """Wakes every `send_poll_seconds` (sooner again while a wake-up sent something)."""
        sender = Sender(deps)
        try:
            while True:
                try:
                    sent = await sender.send_due()
                except OUTAGES as exc:
                    log.warning("the sender waits out an outage: %s", describe(exc))
                    sent = 0
                if not sent:
                    await asyncio.sleep(deps.settings.send_poll_seconds)
        finally:
            await sender.robots.close()

    return sender_loop


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
        while True:
            try:
                await record_due_digests(deps)
            except OUTAGES as exc:
                log.warning("the daily digest waits out an outage: %s", describe(exc))
            await deps.clock.wait_moved(deps.settings.digest_poll_seconds)

    return digest_loop
