"""The date a matter is promised by (承诺办结时限): dispatch sets each task's `resolve_by` with it,
and intake tells the citizen the same date on the receipt, before the task is dispatched.

差别化督办: red is resolved within the town's red limit (hours), orange within the sooner of the
item's own limit and the orange cap, yellow within the item's limit; all on the town's working
calendar."""

from __future__ import annotations

from datetime import datetime

from .calendar import WorkCalendar
from .events import Colour
from .town import CatalogItem, DispatchRules


def resolve_by(colour: Colour, item: CatalogItem, start: datetime, calendar: WorkCalendar,
               rules: DispatchRules) -> datetime:
    item_due = calendar.deadline(start, item.time_limit)
    if colour == "red":
        return calendar.deadline(start, rules.resolve_by_red)
    if colour == "orange":
        return min(item_due, calendar.deadline(start, rules.resolve_by_orange_cap))
    return item_due
