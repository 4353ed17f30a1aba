"""The test clock: set, advanced, and released back to the system clock, as the stack tier's
fixtures do after each test (tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from townflow_shared.clock import Clock
from townflow_shared.http import ClockChange

MOMENT = datetime(2027, 3, 15, 9, 0, tzinfo=UTC)


async def test_a_set_clock_stays_until_moved_and_a_released_one_runs_again() -> None:
    clock = Clock()
    assert not clock.is_test_clock
    assert clock.set(MOMENT) == MOMENT and clock.now() == MOMENT
    assert clock.advance(timedelta(hours=2)) == MOMENT + timedelta(hours=2)
    released = clock.release()
    assert not clock.is_test_clock
    assert abs(released - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize("body", [{}, {"now": MOMENT.isoformat(), "release": True},
                                  {"advance": "PT1H", "release": True}, {"release": False}])
def test_a_clock_change_is_exactly_one_of_now_advance_or_release(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ClockChange.model_validate(body)


def test_a_release_alone_is_a_clock_change() -> None:
    assert ClockChange.model_validate({"release": True}).release
