"""A channel's turn in the sender loop, without a database: each message the receiver took is
recorded sent before the next one goes out (a kill repeats at most the one in flight), the first
failure makes it and the rest wait, and nothing starts past the lease's last moment."""

from __future__ import annotations

import asyncio
import math
import time

from notify.deps import Deps
from notify.scheduled import Message, Sender
from notify.senders import SendFailed
from notify.settings import NotifySettings
from notify.store import Failed
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import Database
from townflow_shared.settings import DEMO_TOWN_DIR

DEPS = Deps(settings=NotifySettings(send_retry_base_seconds=2.0), county=load_county(DEMO_TOWN_DIR), clock=Clock(), database=Database())
# Four deliveries due: two alone, then a digest folding two more (one message).
ROWS = [{"id": i, "attempts": 0} for i in (1, 2, 3, 4)]
MESSAGES = [Message([1], "一", "…"), Message([2], "二", "…"), Message([3, 4], "汇总提醒（2条）", "…", digest=True)]


def _turn(fail_on: int | None = None, last_start: float = math.inf) -> tuple[list[str], Failed, int]:
    """One turn on a robot's channel: what happened, in order, what waits, and how many were sent."""
    steps: list[str] = []

    async def send(message: Message) -> None:
        steps.append(f"send {message.ids}")
        if message.ids[0] == fail_on:
            raise SendFailed("HTTP 503")

    async def record_sent(message: Message) -> None:
        steps.append(f"record {message.ids}")

    async def turn() -> tuple[Failed, int]:
        sender = Sender(DEPS, holder="replica-a")
        try:
            failed = Failed()
            sent = await sender._send("robot", failed, ROWS, MESSAGES, last_start, send, record_sent)  # type: ignore[arg-type]
            return failed, sent
        finally:
            await sender.close()

    failed, sent = asyncio.run(turn())
    return steps, failed, sent


def test_each_message_is_recorded_sent_before_the_next_is_sent() -> None:
    steps, failed, sent = _turn()
    assert steps == ["send [1]", "record [1]", "send [2]", "record [2]", "send [3, 4]", "record [3, 4]"]
    assert (failed.ids, sent) == ([], 4)


def test_the_first_failure_leaves_what_went_before_recorded_and_makes_it_and_the_rest_wait() -> None:
    steps, failed, sent = _turn(fail_on=2)
    assert steps == ["send [1]", "record [1]", "send [2]"]  # the digest is not tried: the receiver is down
    assert (failed.ids, failed.error, sent) == ([2, 3, 4], "HTTP 503", 1)
    assert failed.delays == [2.0, 2.0, 2.0]  # each one's first failure: the base back-off


def test_a_turn_past_its_leases_last_moment_sends_nothing_more() -> None:
    steps, failed, sent = _turn(last_start=time.monotonic() - 1)
    assert (steps, failed.ids, sent) == ([], [], 0)  # untried: they wait for the next lease, not failed
