"""The daily digest (issue #31): each person's open tasks and cases with their due times, once a
town-local day, at their digest time (notify.yaml's `digest_at`, 08:30 unless the town or the person
sets another). Pure: who is due and what their digest says. The loop that records them, one per
person and day however many replicas run, is scheduled.digest_loop; they are sent as every other
message (channels, leases, retries, a robot's limit).

What is open is what notify learnt from the events it consumes (never another service's database):
a task from its dispatch until it is completed, returned, merged or suspended (`known_tasks`), a
case from its first deadline flag (enforcement.case.flagged) until it is decided, closed or
transferred (`known_cases`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from townflow_shared.town import Town

from .contacts import TownContacts
from .rules import KnownTask, Notice, item_name, local_time, staff_name, village_name

# The digest's deliveries carry this event type and an id made of (town, person, day): the log
# shows them as digests, and one day's digest of a person is one delivery per channel.
DIGEST_EVENT_TYPE = "notify.digest.daily"
_DIGEST_IDS = uuid.UUID("6b0d8c1e-31d1-4b8e-9f1e-0d1a9e6c3131")
# A digest lists this many items; the rest are counted (a robot's message has a size limit).
DIGEST_ITEMS = 30
STATE = {"dispatched": "待签收", "accepted": "办理中", "rework": "重办"}


@dataclass(frozen=True)
class KnownCase:
    """An undecided case notify was told of by a deadline flag: whose it is and its legal limit."""

    case_id: str
    item_code: str
    target: str
    officers: tuple[str, ...]
    decision_due: datetime


@dataclass(frozen=True)
class OpenItems:
    tasks: list[KnownTask]
    cases: list[KnownCase]


def digest_day(now: datetime, town: Town) -> date:
    """The town-local day a digest recorded now belongs to."""
    return now.astimezone(town.calendar.tz).date()


def due_for_digest(people: Iterable[str], now: datetime, town: Town, contacts: TownContacts) -> list[str]:
    """Of `people` (those with something open and no digest today), whose digest time has come
    today, town-local. Someone whose first task arrives after their time gets today's digest then."""
    local = now.astimezone(town.calendar.tz).time()
    due = []
    for person in people:
        at = contacts.digest_time_of(person)
        if at is not None and local >= at:
            due.append(person)
    return sorted(due)


def digest_event_id(town_code: str, person: str, day: date) -> uuid.UUID:
    return uuid.uuid5(_DIGEST_IDS, f"{town_code}/{person}/{day.isoformat()}")


def _deadline(task: KnownTask) -> datetime | None:
    """What the holder must meet next: accepting it (签收) while it waits for that, else finishing it."""
    return task.respond_by if task.state == "dispatched" and task.respond_by else task.resolve_by


def daily_digest(person: str, items: OpenItems, town: Town, now: datetime) -> Notice | None:
    """`person`'s digest: their open tasks and cases, the earliest deadline first, each with its
    due time in the town's time and 已超期 once past it; None when they have nothing open."""
    lines: list[tuple[datetime | None, str]] = []
    for task in items.tasks:
        if task.assignee != person or task.state not in STATE:
            continue
        due = _deadline(task)
        what = "签收时限" if task.state == "dispatched" and task.respond_by else "办结时限"
        when = f"{what} {local_time(town, due)}{'（已超期）' if due < now else ''}" if due else f"{what}未知"
        lines.append((due, f"- 【{STATE[task.state]}】{item_name(town, task.item_code)} · "
                           f"{village_name(town, task.village)} {task.location} · {when} · 任务号 {task.task_id}"))
    for case in items.cases:
        if person not in case.officers:
            continue
        late = "（已超期）" if case.decision_due < now else ""
        lines.append((case.decision_due, f"- 【案件】{item_name(town, case.item_code)} · 对象 {case.target} · "
                                         f"作出决定期限 {local_time(town, case.decision_due)}{late} · 案件号 {case.case_id}"))
    if not lines:
        return None
    lines.sort(key=lambda line: (line[0] is None, line[0] or now))
    title = f"每日待办：{staff_name(town, person)} {len(lines)} 项"
    listed = [text for _, text in lines[:DIGEST_ITEMS]]
    more = [f"- 另有 {len(lines) - DIGEST_ITEMS} 项，请登录镇务通查看"] if len(lines) > DIGEST_ITEMS else []
    text = "\n".join([f"### {title}", f"截至 {local_time(town, now)}，按时限先后：", *listed, *more])
    return Notice(person, title, text)
