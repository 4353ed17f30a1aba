"""The working-day calendar: worked examples around weekends, holidays and 调休, and properties."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from townflow_shared.calendar import TimeLimit, WorkCalendar
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

CAL = load_town(DEMO_TOWN_DIR).calendar
TZ = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


@pytest.mark.parametrize(("filed", "limit", "due"), [
    # Friday: the weekend does not count.
    (at(2026, 11, 20), "1wd", at(2026, 11, 23, 17, 30)),
    (at(2026, 11, 20), "3wd", at(2026, 11, 25, 17, 30)),
    # Filed on a Saturday: the filing day never counts, Monday is the first working day.
    (at(2026, 11, 21), "1wd", at(2026, 11, 23, 17, 30)),
    # Filed late in the evening: still the filing day, which does not count.
    (at(2026, 11, 19, 23, 59), "1wd", at(2026, 11, 20, 17, 30)),
    # National Day: Oct 1-7 off, Sep 30 -> Oct 8, 9, then Saturday Oct 10 is a 调休 working day.
    (at(2026, 9, 30), "1wd", at(2026, 10, 8, 17, 30)),
    (at(2026, 9, 30), "3wd", at(2026, 10, 10, 17, 30)),
    # Sunday Sep 20 is a working day (调休) before the Mid-Autumn break Sep 25-27.
    (at(2026, 9, 19), "1wd", at(2026, 9, 20, 17, 30)),
    (at(2026, 9, 24), "1wd", at(2026, 9, 28, 17, 30)),
    # Spring Festival: Feb 14 (Sat) works, Feb 15-23 off.
    (at(2026, 2, 13), "1wd", at(2026, 2, 14, 17, 30)),
    (at(2026, 2, 13), "2wd", at(2026, 2, 24, 17, 30)),
    # New Year: Jan 1-3 off, Sunday Jan 4 works.
    (at(2025, 12, 31), "1wd", at(2026, 1, 4, 17, 30)),
    # Clock hours ignore the calendar.
    (at(2026, 10, 1, 9), "24h", at(2026, 10, 2, 9)),
    (at(2026, 11, 20, 22), "1h", at(2026, 11, 20, 23)),
])
def test_deadline_worked_examples(filed: datetime, limit: str, due: datetime) -> None:
    assert CAL.deadline(filed, limit) == due


@pytest.mark.parametrize(("start", "hours", "end"), [
    (at(2026, 11, 20, 9), 2, at(2026, 11, 20, 11)),
    (at(2026, 11, 20, 11), 2, at(2026, 11, 20, 15)),          # across lunch 12:00-14:00
    (at(2026, 11, 20, 17), 2, at(2026, 11, 23, 10)),          # Friday evening to Monday
    (at(2026, 11, 21, 10), 2, at(2026, 11, 23, 10, 30)),      # from a Saturday
    (at(2026, 9, 30, 17), 1, at(2026, 10, 8, 9)),             # across National Day
])
def test_working_hours_examples(start: datetime, hours: float, end: datetime) -> None:
    assert CAL.add_working_hours(start, hours) == end
    assert CAL.working_time_between(start, end) == timedelta(hours=hours)


def test_time_limit_parsing() -> None:
    assert TimeLimit.parse("5wd") == TimeLimit(5, "wd")
    assert TimeLimit.parse("24h") == TimeLimit(24, "h")
    with pytest.raises(ValueError, match="5 days"):
        TimeLimit.parse("5 days")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.deadline(datetime(2026, 11, 20, 10), "1wd")


moments = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31),
                       timezones=st.just(TZ))


@given(moments, st.integers(min_value=1, max_value=30))
def test_nwd_ends_at_close_of_the_nth_working_day_after_filing(filed: datetime, n: int) -> None:
    due = CAL.deadline(filed, f"{n}wd")
    assert due.timetz().replace(tzinfo=None) == time(17, 30)
    assert CAL.is_working_day(due.date())
    filed_day = filed.astimezone(TZ).date()
    days = [filed_day + timedelta(days=i) for i in range(1, (due.date() - filed_day).days + 1)]
    assert sum(CAL.is_working_day(d) for d in days) == n


@given(moments, st.integers(min_value=1, max_value=20))
def test_more_working_days_never_end_sooner(filed: datetime, n: int) -> None:
    assert CAL.deadline(filed, f"{n}wd") < CAL.deadline(filed, f"{n + 1}wd")


@given(moments, st.integers(min_value=1, max_value=72))
def test_clock_hours_are_exact(filed: datetime, n: int) -> None:
    assert CAL.deadline(filed, f"{n}h") - filed == timedelta(hours=n)


@given(moments, st.floats(min_value=0.25, max_value=40))
def test_working_hours_land_inside_working_time_and_measure_back(start: datetime, hours: float) -> None:
    end = CAL.add_working_hours(start, hours)
    assert end > start
    assert CAL.is_working_day(end.date())
    local = end.timetz().replace(tzinfo=None)
    assert any(b < local <= e for b, e in CAL.periods)
    measured = CAL.working_time_between(start, end)
    assert abs(measured - timedelta(hours=hours)) < timedelta(milliseconds=1)


def test_a_calendar_without_working_days_is_refused() -> None:
    with pytest.raises(ValueError, match="working"):
        WorkCalendar(tz=TZ, periods=((time(9), time(17)),), weekdays=frozenset())


def test_holiday_and_adjusted_days_from_the_state_council_notice() -> None:
    assert not CAL.is_working_day(date(2026, 10, 5))
    assert CAL.is_working_day(date(2026, 10, 10))  # Saturday, 调休
    assert not CAL.is_working_day(date(2026, 2, 23))
    assert CAL.is_working_day(date(2026, 2, 28))  # Saturday, 调休
    assert not CAL.is_working_day(date(2026, 5, 5))
    assert CAL.is_working_day(date(2026, 5, 9))


@pytest.mark.parametrize(("moment", "wait"), [
    (at(2026, 11, 20, 10), timedelta(0)),                              # within the morning's hours
    (at(2026, 11, 20, 12), timedelta(hours=2)),                        # the lunch break to 14:00
    (at(2026, 11, 20, 18), timedelta(days=2, hours=14, minutes=30)),   # Friday evening to Monday 08:30
    (at(2026, 11, 23, 7), timedelta(hours=1, minutes=30)),             # Monday before opening
])
def test_until_working_is_the_off_hours_ahead(moment: datetime, wait: timedelta) -> None:
    assert CAL.until_working(moment) == wait


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
       st.integers(min_value=0, max_value=60 * 24 * 40))
def test_whole_days_passed_in_one_step_give_what_period_by_period_gives(start: datetime, minutes: int) -> None:
    """add_working_hours and working_time_between step over whole working days at once: the same
    as summing each day's periods, and each the inverse of the other."""
    start = start.replace(tzinfo=TZ)
    end = CAL.add_working_hours(start, minutes / 60)
    assert CAL.working_time_between(start, end) == timedelta(minutes=minutes)
    whole_days, day = timedelta(0), start.date()
    while day <= end.date():
        if CAL.is_working_day(day):
            for begin, close in CAL.periods:
                lo = max(start, datetime.combine(day, begin, tzinfo=TZ))
                hi = min(end, datetime.combine(day, close, tzinfo=TZ))
                whole_days += max(hi - lo, timedelta(0))
        day += timedelta(days=1)
    assert whole_days == timedelta(minutes=minutes)
