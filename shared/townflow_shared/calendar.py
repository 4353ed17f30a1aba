"""The town's working-day calendar: the one place deadlines are computed (SPEC §5.1).

`Nwd` ends at the close of working hours on the Nth working day after the day of filing (the
filing day never counts); `Nh` is N clock hours; `Nwh` is N working hours (used for the return
window). Holidays and adjusted working days (调休) come from town.yaml.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Unit = Literal["wd", "h", "wh"]
_LIMIT = re.compile(r"^\s*(\d+)\s*(wd|wh|h)\s*$")
# A calendar with no working day in ten years is a configuration error, not a loop to run forever.
_MAX_DAYS = 3660


@dataclass(frozen=True)
class TimeLimit:
    amount: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> TimeLimit:
        match = _LIMIT.match(text)
        if not match:
            raise ValueError(f"time limit {text!r} is not like '5wd', '24h' or '2wh'")
        return cls(int(match.group(1)), match.group(2))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class WorkCalendar:
    tz: ZoneInfo
    periods: tuple[tuple[time, time], ...]
    weekdays: frozenset[int]  # 0 = Monday
    holidays: frozenset[date] = frozenset()
    adjusted_working_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not self.periods or (not self.weekdays and not self.adjusted_working_days):
            raise ValueError("a calendar needs working hours and at least one working weekday")
        for start, end in self.periods:
            if start >= end:
                raise ValueError(f"working period {start}-{end} ends before it starts")

    @functools.cached_property
    def _day_length(self) -> timedelta:
        """A working day's hours: its periods' lengths summed (on the clock, as the periods are read)."""
        return sum((datetime.combine(date.min, end) - datetime.combine(date.min, begin) for begin, end in self.periods),
                   timedelta(0))

    def is_working_day(self, day: date) -> bool:
        if day in self.adjusted_working_days:
            return True
        if day in self.holidays:
            return False
        return day.weekday() in self.weekdays

    def local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("naive datetime: every moment in Townflow carries its offset")
        return moment.astimezone(self.tz)

    def close_of(self, day: date) -> datetime:
        return datetime.combine(day, self.periods[-1][1], tzinfo=self.tz)

    def nth_working_day_after(self, day: date, n: int) -> date:
        found = 0
        for _ in range(_MAX_DAYS):
            if found == n:
                return day
            day += timedelta(days=1)
            if self.is_working_day(day):
                found += 1
        if found == n:
            return day
        raise ValueError("no working day found within ten years")

    def add_working_days(self, start: datetime, n: int) -> datetime:
        return self.close_of(self.nth_working_day_after(self.local(start).date(), n))

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment when `hours` of working time have passed since `start`."""
        cursor = self.local(start)
        remaining = timedelta(hours=hours)
        if remaining <= timedelta(0):
            return cursor
        day = cursor.date()
        for _ in range(_MAX_DAYS):
            if self.is_working_day(day):
                # A whole working day the time runs past is passed in one step (a rehearsal adds
                # weeks of working hours thousands of times); the same sum as period by period.
                if cursor.time() == time(0) and remaining > self._day_length:
                    remaining -= self._day_length
                    day += timedelta(days=1)
                    cursor = datetime.combine(day, time(0), tzinfo=self.tz)
                    continue
                for begin, end in self.periods:
                    seg_start = max(cursor, datetime.combine(day, begin, tzinfo=self.tz))
                    seg_end = datetime.combine(day, end, tzinfo=self.tz)
                    if seg_end <= seg_start:
                        continue
                    if remaining <= seg_end - seg_start:
                        return seg_start + remaining
                    remaining -= seg_end - seg_start
            day += timedelta(days=1)
            cursor = datetime.combine(day, time(0), tzinfo=self.tz)
        raise ValueError("no working time found within ten years")

    def until_working(self, moment: datetime) -> timedelta:
        """How long from `moment` until working time runs again: zero within working hours, the
        night or the weekend ahead outside them."""
        local = self.local(moment)
        day = local.date()
        for _ in range(_MAX_DAYS):
            if self.is_working_day(day):
                for begin, end in self.periods:
                    if local < datetime.combine(day, end, tzinfo=self.tz):
                        return max(datetime.combine(day, begin, tzinfo=self.tz) - local, timedelta(0))
            day += timedelta(days=1)
        raise ValueError("no working time found within ten years")

    def deadline(self, start: datetime, limit: TimeLimit | str) -> datetime:
        if isinstance(limit, str):
            limit = TimeLimit.parse(limit)
        if limit.unit == "wd":
            return self.add_working_days(start, limit.amount)
        if limit.unit == "wh":
            return self.add_working_hours(start, limit.amount)
        return self.local(start) + timedelta(hours=limit.amount)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time inside [start, end); zero when end is not after start."""
        a, b = self.local(start), self.local(end)
        total = timedelta(0)
        day, first, last = a.date(), a.date(), b.date()
        while day <= last:
            if self.is_working_day(day):
                if first < day < last:  # a whole day between the two: its working hours, in one step
                    total += self._day_length
                    day += timedelta(days=1)
                    continue
                for begin, close in self.periods:
                    lo = max(a, datetime.combine(day, begin, tzinfo=self.tz))
                    hi = min(b, datetime.combine(day, close, tzinfo=self.tz))
                    if hi > lo:
                        total += hi - lo
            day += timedelta(days=1)
        return total
