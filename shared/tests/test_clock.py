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


class _Database:
    """A connection whose clock reads `moment` (the database's, for both `now()` and `clock_timestamp()`)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment
        self.asked: list[str] = []

    async def fetchval(self, query: str, *args: object) -> datetime:
        self.asked.append(query)
        return self.moment


async def test_a_machine_clock_minutes_ahead_follows_the_databases() -> None:
    database = _Database(MOMENT)
    clock = Clock(system=lambda: database.moment + timedelta(minutes=5))  # this machine runs 5 min ahead
    assert clock.now() - MOMENT == timedelta(minutes=5)
    offset = await clock.follow(database)
    assert abs(offset + timedelta(minutes=5)) < timedelta(seconds=1)
    assert abs(clock.now() - MOMENT) < timedelta(seconds=1)
    database.moment += timedelta(minutes=1)  # time passes on both clocks alike
    assert abs(clock.now() - database.moment) < timedelta(seconds=1)


async def test_what_is_due_is_decided_by_the_databases_now_unless_a_test_set_the_clock() -> None:
    database = _Database(MOMENT)
    clock = Clock(system=lambda: MOMENT + timedelta(minutes=5))
    assert await clock.database_now(database) == MOMENT and database.asked == ["SELECT now()"]
    clock.set(MOMENT + timedelta(days=2))
    assert await clock.database_now(database) == MOMENT + timedelta(days=2)
    assert database.asked == ["SELECT now()"]  # the test clock is not the database's
