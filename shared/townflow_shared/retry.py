"""Waiting out an outage: exponential back-off with full jitter, and the state that `/readyz`
and the metrics report while a consumer is retrying (SPEC §6.1).

Jitter keeps the replicas of every service from hammering a database that has just come back
all at the same instant."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from .db import OUTAGES
from .dlq import describe
from .metrics import CONSUMER_RETRIES, CONSUMER_RETRYING, SENDER_PASSES


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, …): uniform in [0, min(cap, base·2^(attempt-1))]
    ("full jitter"), never less than a tenth of `base` so a loop cannot spin."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 30))
    return max((rng or random).uniform(0, ceiling), base / 10)


log = logging.getLogger(__name__)


async def keep_sending(send_due: Callable[[], Awaitable[int]], idle: Callable[[], Awaitable[object]],
                       what: str) -> None:
    """A sender's loop (`what`: "notify", its messages; "sms", intake's): sends what is due, and waits
    `idle` only when a wake-up sent nothing, so a backlog goes out at once; the database away is
    waited out (never given up on: what is due stays due), anything else ends the loop for its
    runner. Each pass counts in `townflow_sender_passes_total{sender=what}`."""
    passes = SENDER_PASSES.labels(what)
    while True:
        try:
            sent = await send_due()
        except OUTAGES as exc:
            log.warning("the %s sender waits out an outage: %s", what, describe(exc))
            sent = 0
        passes.inc()
        if not sent:
            await idle()


class Sender(Protocol):
    async def send_due(self) -> int: ...
    async def close(self) -> None: ...


def sending_loop(make: Callable[[], Sender], wait: Callable[[float], Awaitable[object]], poll_seconds: float,
                 what: str) -> Callable[[object], Awaitable[None]]:
    """A runtime loop around a sender made when the loop starts (`keep_sending`): it waits
    `wait(poll_seconds)` when a wake-up sent nothing (the clock's `wait_moved`: at once again when a
    test moves the clock), and closes the sender when it stops."""
    async def loop(_: object) -> None:
        sender = make()
        try:
            await keep_sending(sender.send_due, lambda: wait(poll_seconds), what)
        finally:
            await sender.close()

    return loop


# How much longer than twice the longest wait an attempt may take before a retrying state with no
# new failure is taken for over (longer than any statement's limit of the settings' defaults).
STALE_AFTER_SECONDS = 60.0


class Retrying:
    """Whether a service's consumer is waiting out an error, since when, and why."""

    def __init__(self, service: str, base: float, cap: float) -> None:
        self.service = service
        self.base = base
        self.cap = cap
        self.attempts = 0
        self.since: float | None = None
        self.last: float | None = None  # when the latest attempt failed
        self.reason = ""

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; the seconds to wait before the next."""
        self.attempts += 1
        self.last = time.monotonic()
        if self.since is None:
            self.since = self.last
        self.reason = describe(exc)
        CONSUMER_RETRIES.labels(self.service, type(exc).__name__).inc()
        CONSUMER_RETRYING.labels(self.service).set(1)
        return backoff_delay(self.attempts, self.base, self.cap)

    def succeeded(self) -> None:
        if self.since is not None:
            self.attempts, self.since, self.last, self.reason = 0, None, None, ""
            CONSUMER_RETRYING.labels(self.service).set(0)

    def left(self) -> None:
        """What was retried is no longer this replica's (its partitions went to another while it
        waited): nothing is retried here, so nothing keeps the replica from being ready. Without it,
        a replica whose partitions all moved during an outage said "retrying" until the next batch
        it was given — never, if it was given none."""
        self.succeeded()

    def status(self) -> str:
        """`ok`, or what `/readyz` says while retrying. A retry loop fails again within `cap`
        seconds of waiting and an attempt's own time (a statement's limit, 30 s by default); no
        failure in STALE_AFTER_SECONDS more than twice `cap` means no loop is retrying any more,
        however it ended (a safety net beside `left`)."""
        if self.since is None or self.last is None:
            return "ok"
        if time.monotonic() - self.last > 2 * self.cap + STALE_AFTER_SECONDS:
            self.succeeded()
            return "ok"
        return f"retrying for {time.monotonic() - self.since:.0f}s ({self.attempts} attempts): {self.reason}"[:300]
