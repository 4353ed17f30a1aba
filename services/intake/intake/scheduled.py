"""Intake's loops: the citizen's personal data erased once the retention period after the matter's
closure is over (issue #28 item 7); the photos' orphan sweep (issue #29); the citizens' SMS sent
(issue #31 item 3)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
import httpx

from townflow_shared.db import OUTAGES, Database
from townflow_shared.metrics import counter
from townflow_shared.outbox import relay_holder
from townflow_shared.privacy import mask_personal_numbers
from townflow_shared.retry import backoff_delay, sending_loop

from . import flows, gateway, rules
from .flows import Deps
from .store import PgStore

log = logging.getLogger(__name__)
# Counted by the replica that decided: each message's sending, holding (quiet hours), retrying (the
# gateway down or refusing), failing for good or skipping, by its kind (filed, completed, callback).
SMS = counter("townflow_intake_sms_total", "Citizens' SMS by kind and outcome (sent, held, retried, failed, skipped)",
              "kind", "outcome")


def erasure_loop(deps: Deps) -> Callable[[Any], Awaitable[None]]:
    """The loop the service runs for its life (its argument, the process runtime, is not used)."""

    async def erasure_loop(_: Any) -> None:
        """Wakes every `intake_erasure_seconds`, or at once when a test moves the clock; replicas
        share the batches (their rows are claimed with SKIP LOCKED)."""
        while True:
            await flows.erase_expired_personal_data(deps)
            await deps.clock.wait_moved(deps.settings.intake_erasure_seconds)

    return erasure_loop


class GatewayDown(Exception):
    """The gateway did not answer a message: the rest of the wake-up's messages are not tried."""


class SmsSender:
    """Sends what `sms_outbox` holds (docs/notify.md "Citizens' SMS"). Each wake-up leases the
    messages due (store.claim_sms: no two replicas take one row), and for each: the citizen's
    phone opened from its sealed row, the rules (opted out, no mobile, already rated, quiet hours)
    applied, one signed call to the gateway, the outcome recorded. A gateway that is down or
    refuses makes the message wait with back-off, for as long as it takes: never a dead letter. A
    number refused for good ends as `failed`, with the gateway's code. The phone is in no log line
    and no row: a row's `last_error` is the gateway's code and message, masked all the same."""

    def __init__(self, deps: Deps, database: Database, client: httpx.AsyncClient | None = None,
                 holder: str | None = None) -> None:
        settings = deps.settings
        if settings.sms_url is None or settings.sms_access_key_id is None or settings.sms_access_key_secret is None \
                or settings.sms_sign_name is None:
            raise ValueError("the SMS sender needs the gateway's settings")
        self.deps, self.database, self.settings = deps, database, settings
        self.gateway = gateway.Gateway(settings.sms_url, settings.sms_access_key_id,
                                       settings.sms_access_key_secret.get_secret_value(), settings.sms_sign_name)
        self.client = client or httpx.AsyncClient(timeout=settings.sms_timeout_seconds)
        self.holder = holder or relay_holder()

    async def _store(self, work: Callable[[PgStore], Awaitable[Any]]) -> Any:
        async with self.database.pool.acquire() as conn:
            return await work(PgStore(conn))

    async def close(self) -> None:
        await self.client.aclose()

    async def send_due(self) -> int:
        """One wake-up: the messages this replica could lease; how many were sent."""
        rows: list[asyncpg.Record] = await self._store(lambda s: s.claim_sms(
            self.holder, self.settings.sms_lease_seconds, self.deps.clock.now(), self.settings.sms_batch_size))
        return await self.send_rows(rows)

    async def send_rows(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """The leased messages, one by one; how many were sent."""
        sent = 0
        for position, row in enumerate(rows):
            try:
                sent += await self.send_one(row)
            except GatewayDown:  # the rest would wait on it one timeout each: they go back, due now
                await self._release([r["id"] for r in rows[position + 1:]])
                break
            except OUTAGES:
                raise
            except Exception as exc:  # one message's bug never stops the others; its text masked
                log.error("SMS message %s could not be sent: %s: %s", row["id"], type(exc).__name__,
                          mask_personal_numbers(str(exc)))
                await self._retry(row, f"{type(exc).__name__}")
        return sent

    async def _release(self, message_ids: list[int]) -> None:
        if message_ids:
            await self._store(lambda s: s.sms_release(message_ids, self.holder))

    async def _retry(self, row: Mapping[str, Any], why: str) -> None:
        # The shared back-off (full jitter): the messages that failed together while the gateway was
        # down are not all tried again at the same instant it comes back.
        delay = backoff_delay(row["attempts"] + 1, self.settings.sms_retry_base_seconds,
                              self.settings.sms_retry_max_seconds)
        why = mask_personal_numbers(why)
        log.warning("SMS message %s (%s) waits %.1f s: %s", row["id"], row["kind"], delay, why)
        SMS.labels(row["kind"], "retried").inc()
        await self._store(lambda s: s.sms_retry(row["id"], why, delay))

    async def _end(self, row: Mapping[str, Any], status: str, why: str, attempted: bool = False) -> None:
        log.info("SMS message %s (%s) %s: %s", row["id"], row["kind"], status, why)
        SMS.labels(row["kind"], status).inc()
        await self._store(lambda s: s.sms_ended(row["id"], status, why, attempted))

    async def send_one(self, row: Mapping[str, Any]) -> int:
        async def read(s: PgStore) -> tuple[Any, Any]:
            return await s.request_by_id(row["request_id"]), await s.sealed_citizen(row["request_id"])

        request, sealed = await self._store(read)
        town = self.deps.county.town(row["town_code"])
        if request is None or town is None:
            await self._end(row, "failed", "no such matter in a town served")
            return 0
        if row["kind"] == "callback" and request["rating"] is not None:
            await self._end(row, "skipped", "already rated")
            return 0
        citizen = self.deps.keyring.citizen_of(request, sealed)
        if citizen is None:
            await self._end(row, "skipped", "personal data erased")
            return 0
        phone = rules.mobile_number(citizen.phone)
        if phone is None:
            await self._end(row, "skipped", "no mobile number")
            return 0
        held = rules.quiet_until(town.calendar.local(self.deps.clock.now()), row["red"])
        if held is not None:
            await self._store(lambda s: s.sms_hold(row["id"], held, "quiet hours: held until 08:00"))
            SMS.labels(row["kind"], "held").inc()
            return 0
        # Held for one more call at least: a lease that ran out mid-call would let another replica send it too.
        if not await self._store(lambda s: s.sms_still_held(row["id"], self.holder, self.settings.sms_timeout_seconds)):
            return 0  # this replica was paused past its lease: another one has it now
        try:
            outcome = await gateway.send(self.client, self.gateway, phone, row["template"], dict(row["params"]),
                                         str(row["id"]))
        except gateway.Unavailable as exc:
            await self._retry(row, f"gateway unavailable: {exc}")
            raise GatewayDown from None
        if isinstance(outcome, gateway.Refused):
            why = f"{outcome.code}: {outcome.message}"
            if outcome.final:
                await self._end(row, "failed", mask_personal_numbers(why), attempted=True)
            else:
                await self._retry(row, why)
            return 0
        now = self.deps.clock.now()
        await self._store(lambda s: s.sms_sent(row["id"], outcome.biz_id, now))
        log.info("SMS message %s (%s) sent", row["id"], row["kind"])
        SMS.labels(row["kind"], "sent").inc()
        return 1


def sms_loop(deps: Deps, database: Database) -> Callable[[Any], Awaitable[None]]:
    """Wakes every `sms_poll_seconds` (at once again while a wake-up sent something, or when a test
    moves the clock)."""
    return sending_loop(lambda: SmsSender(deps, database), deps.clock.wait_moved, deps.settings.sms_poll_seconds,
                        "sms")
