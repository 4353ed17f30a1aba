"""Back-off with full jitter, and the retrying state /readyz reports."""

from __future__ import annotations

import random

import pytest

from townflow_shared.retry import STALE_AFTER_SECONDS, Retrying, backoff_delay


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    top = random.Random(0)
    top.uniform = lambda a, b: b  # type: ignore[method-assign]  # always the ceiling
    assert [backoff_delay(n, 0.5, 10, top) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_delays_are_spread_between_a_floor_and_the_ceiling() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(4, 0.5, 10, rng) for _ in range(500)]
    assert min(delays) >= 0.05 and max(delays) <= 4
    assert max(delays) - min(delays) > 2  # jitter: replicas do not retry in step


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert backoff_delay(10_000, 0.5, 10, random.Random(1)) <= 10


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, 0.5, 10)


def test_retrying_says_why_until_an_attempt_succeeds() -> None:
    state = Retrying("test-retry", 0.5, 10)
    assert state.status() == "ok"
    state.failed(ConnectionRefusedError("refused"))
    state.failed(ConnectionRefusedError("refused"))
    assert state.status().startswith("retrying for") and "2 attempts" in state.status()
    assert "ConnectionRefusedError" in state.status()
    state.succeeded()
    assert state.status() == "ok" and state.attempts == 0


def test_retrying_ends_when_what_it_retried_left_the_replica() -> None:
    state = Retrying("test-retry", 0.5, 10)
    state.failed(ConnectionRefusedError("refused"))
    state.left()  # its partitions went to another replica during the outage
    assert state.status() == "ok" and state.attempts == 0


def test_retrying_is_over_once_no_attempt_failed_for_twice_the_longest_wait() -> None:
    state = Retrying("test-retry", 0.5, 10)
    state.failed(ConnectionRefusedError("refused"))
    assert state.status().startswith("retrying for")
    assert state.last is not None
    state.last -= 2 * 10 + STALE_AFTER_SECONDS - 0.1  # the latest failure just within a retry loop's time
    assert state.status().startswith("retrying for")
    state.last -= 0.2  # past it: whatever retried has stopped
    assert state.status() == "ok" and state.attempts == 0
