"""Dispatch's business rules as pure functions: the time comes in as an argument; a rule that
refuses returns the refusal (a code of refusals.py with its params), for the command to raise."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from townflow_shared import promises
from townflow_shared.auth import Principal
from townflow_shared.calendar import TimeLimit, WorkCalendar
from townflow_shared.events import AssignedVia, Colour, Rating, SupervisionLevel
from townflow_shared.problems import Refusal
from townflow_shared.town import CatalogItem, DispatchRules, Post, Town

from .refusals import CODES

OPEN_STATUSES = ("dispatched", "accepted", "rework")
# A merged matter's task closes as `merged` from any status but done: completed and closed tasks
# stay as they are (the work was done and counts).
MERGEABLE_STATUSES = (*OPEN_STATUSES, "returned", "suspended")


@dataclass(frozen=True)
class Assignment:
    assignee: str
    via: AssignedVia


def post_of_matter(town: Town, item: CatalogItem, grid_cell: str | None) -> Post:
    """The post a new matter goes to: a located territorial matter in a grid cell that a post holds
    goes to that post (属地管理: the cell's 网格员 or 包村干部, issue #30); every other matter to its
    item's post. Enforcement and joint visits keep theirs: they need certified officers or units."""
    if item.kind == "territorial" and item.located and grid_cell is not None:
        held_by = town.cell_posts.get(grid_cell)
        if held_by is not None:
            return held_by
    return town.posts[item.post]


def assign(post: Post, town: Town, unavailable: set[str]) -> Assignment:
    """A holder unless off-post or at the load cap, then B under the same test, else the
    module leader (A/B岗互为备岗)."""
    if post.a_holder not in unavailable:
        return Assignment(post.a_holder, "A")
    if post.b_holder not in unavailable:
        return Assignment(post.b_holder, "B")
    return Assignment(town.modules[post.module].leader, "leader")


@dataclass(frozen=True)
class Deadlines:
    respond_by: datetime
    resolve_by: datetime


def deadlines(colour: Colour, item: CatalogItem, start: datetime, calendar: WorkCalendar,
              rules: DispatchRules) -> Deadlines:
    """差别化督办: red answers in hours, orange in the sooner of the item's limit and 3wd."""
    # The resolution deadline is the one intake promises the citizen on the receipt (promises.py).
    return Deadlines(calendar.deadline(start, rules.respond_by[colour]),
                     promises.resolve_by(colour, item, start, calendar, rules))


def in_clock_hours(colour: Colour, item: CatalogItem, rules: DispatchRules) -> tuple[bool, bool]:
    """Whether deadlines() gives the respond and the resolve window in clock hours (`Nh`: red's hour
    and day, orange's four hours) rather than working time; the resolve window is clock hours only
    when every limit it is the sooner of is (promises.resolve_by). The rehearsal measures a handling
    against such a window on the clock."""
    resolve_limits = {"red": (rules.resolve_by_red,), "orange": (item.time_limit, rules.resolve_by_orange_cap)}
    return (TimeLimit.parse(rules.respond_by[colour]).unit == "h",
            all(TimeLimit.parse(limit).unit == "h" for limit in resolve_limits.get(colour, (item.time_limit,))))


def may_act(principal: Principal, assignee: str, post: Post | None, town: Town) -> bool:
    """Only the assignee or the leader of the post's module (or an admin) acts on a task. Staff
    ids repeat across towns: the caller is the assignee or leader only as staff of the task's town."""
    if principal.roles & {"admin", "county_admin"}:
        return True
    if principal.town != town.code:
        return False
    return principal.sub == assignee or (post is not None and town.modules[post.module].leader == principal.sub)


# 答复: the answer to the citizen that completing a task requires, at most this long (it is shown on
# the citizen's status page and printed on nothing narrower than a phone).
REPLY_MAX_LENGTH = 1000


def reply_refusal(reply: str) -> Refusal | None:
    """None when `reply` answers the citizen (something left once trimmed), else the refusal."""
    return None if reply.strip() else CODES["task.reply_blank"]("reply")


# Photos of a task's steps (issue #29): a task outlives its item in the town's files, and then takes
# as many as an item does by default and needs none.
DEFAULT_TASK_PHOTOS_MAX: int = CatalogItem.model_fields["task_photos_max"].default


def task_photos_max(town: Town, item_code: str) -> int:
    """How many photos a completion or a closure check of a task of this item may carry."""
    item = town.catalog.get(item_code)
    return item.task_photos_max if item is not None else DEFAULT_TASK_PHOTOS_MAX


def completion_photo_required(town: Town, item_code: str) -> bool:
    item = town.catalog.get(item_code)
    return item is not None and item.completion_photo_required


def completion_photo_refusal(town: Town, item_code: str, photos: int) -> Refusal | None:
    """None unless the item needs the work seen done (处置后照片) and the completion has no photo."""
    if photos == 0 and completion_photo_required(town, item_code):
        return CODES["task.completion_photo_required"]("photos", item_code=item_code)
    return None


# An inspection completes the tasks it covered: the citizen's answer says what it found.
INSPECTION_REPLIES = {
    "compliant": "经现场检查，未发现违法违规行为。",
    "rectify": "经现场检查，已责令当事人限期整改，并将复查整改情况。",
    "violation": "经现场检查，发现违法行为，已依法立案查处。",
    "not_delegated": "经现场检查，该事项已移交县级主管部门依法处理。",
    "criminal": "经现场检查，涉嫌犯罪，已移送司法机关处理。",
    "inspected": "已完成现场检查。",
}


def inspection_reply(outcome: str) -> str:
    return INSPECTION_REPLIES.get(outcome, INSPECTION_REPLIES["inspected"])


def return_deadline(dispatched_at: datetime, calendar: WorkCalendar, rules: DispatchRules) -> datetime:
    return calendar.deadline(dispatched_at, rules.return_window)


def supervision_moments(window_start: datetime, resolve_by: datetime,
                        rules: DispatchRules) -> dict[SupervisionLevel, datetime]:
    """When each supervision level falls due: 80 %, 100 % and 150 % of the resolution window."""
    window = resolve_by - window_start
    return {
        "reminder": window_start + window * rules.reminder_at,
        "overdue": window_start + window * rules.overdue_at,
        "escalated": window_start + window * rules.escalated_at,
    }


def supervision_due(window_start: datetime, resolve_by: datetime, sent: set[str], now: datetime,
                    rules: DispatchRules) -> list[SupervisionLevel]:
    """Levels due by `now` and not yet sent, in ladder order (a service that was down catches
    up on every level it missed)."""
    moments = supervision_moments(window_start, resolve_by, rules)
    return [level for level, moment in moments.items() if moment <= now and level not in sent]


def next_supervision_at(window_start: datetime, resolve_by: datetime, sent: Collection[str],
                        rules: DispatchRules) -> datetime | None:
    """When the earliest level not yet sent falls due; None once every level is sent. Stored on
    the task, so supervision reads only what is due instead of every open task."""
    moments = supervision_moments(window_start, resolve_by, rules)
    return min((moment for level, moment in moments.items() if level not in sent), default=None)


def notified_for(level: SupervisionLevel, assignee: str, post: Post | None, town: Town) -> list[str]:
    if level == "reminder":
        return [assignee]
    if level == "overdue":
        leader = town.modules[post.module].leader if post else None
        return list(dict.fromkeys([assignee, *([leader] if leader else [])]))
    return list(dict.fromkeys([*town.info.command_centre_duty, town.info.party_secretary]))


def extended_resolve_by(resolve_by: datetime, days: int, calendar: WorkCalendar) -> datetime:
    """An approved extension adds working days to the current deadline (延期)."""
    return calendar.add_working_days(resolve_by, days)


def rework_resolve_by(now: datetime, window_start: datetime, resolve_by: datetime) -> datetime:
    """A failed closure check gives the same assignee the original window again (返工)."""
    return now + (resolve_by - window_start)


def is_on_time(completed_at: datetime, resolve_by: datetime) -> bool:
    return completed_at <= resolve_by


# The statuses each action is allowed from.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "accept": ("dispatched",),
    "complete": OPEN_STATUSES,
    "return": ("dispatched", "accepted"),
    "extend": OPEN_STATUSES,
    "redispatch": ("returned",),
    "verify": ("completed",),
    "suspend": OPEN_STATUSES,
}


def transition_refusal(action: str, status: str) -> Refusal | None:
    """None if `action` is allowed from `status`, else the refusal naming both."""
    allowed = ALLOWED_FROM[action]
    if status in allowed:
        return None
    return CODES["task.status_forbids"](action=action, status=status, allowed=" or ".join(allowed))


def extension_approval_refusal(status: str) -> Refusal | None:
    """SPEC §6.1: an extension is approved only while its task is open, since it moves a
    resolve_by that only an open task still has. Refusing stays allowed on any task: it changes
    nothing but clears a request left pending when the task moved on. None if allowed."""
    if status in OPEN_STATUSES:
        return None
    return CODES["extension.task_not_open"](status=status, allowed=" or ".join(OPEN_STATUSES))


def is_overdue(status: str, resolve_by: datetime, now: datetime) -> bool:
    return status in OPEN_STATUSES and now > resolve_by


def window_of(window_start: datetime, resolve_by: datetime) -> timedelta:
    return resolve_by - window_start


def reopened_window(now: datetime, window_start: datetime, resolve_by: datetime) -> tuple[datetime, datetime]:
    """(window_start, resolve_by) of a task reopened after a merge is undone or an unsatisfied
    callback (重办): the original window's length again, from now, like a rework."""
    return now, rework_resolve_by(now, window_start, resolve_by)


def callback_rating_refusal(reached: bool, rating: Rating | None) -> Refusal | None:
    """回访: a citizen reached gives a rating; one not reached gives none."""
    if reached and rating is None:
        return CODES["callback.rating_required"]("rating")
    if not reached and rating is not None:
        return CODES["callback.rating_unexpected"]("rating")
    return None


def callback_refusal(status: str, called_back: bool) -> Refusal | None:
    """One callback per closure, after it (SPEC §10). None if allowed."""
    if status != "closed":
        return CODES["callback.task_not_closed"](status=status)
    if called_back:
        return CODES["callback.already_given"]()
    return None


def callback_reopens(reached: bool, rating: Rating | None) -> bool:
    """重办: an unsatisfied citizen's matter is worked on again by the same assignee."""
    return reached and rating == "unsatisfied"


# --- the task lists (issue #27): what a search and its filters mean --------------------------------
# Every status a task has; a list filters on these only (another value is refused, 422).
TASK_STATUSES = ("dispatched", "accepted", "rework", "completed", "returned", "closed", "merged", "redispatched",
                 "suspended")
# 已结: a task that has ended, for good or handed on. Every other status is 在办 — a returned task
# waits for the command centre, a completed one for its closure check.
ENDED_STATUSES = ("closed", "merged", "redispatched")
PHASES = {"open": tuple(s for s in TASK_STATUSES if s not in ENDED_STATUSES), "ended": ENDED_STATUSES}
_TICKET_TEXT = re.compile(r"[0-9][0-9-]{3,}")


def ticket_search(text: str, towns: Collection[str]) -> tuple[str, bool] | None:
    """A search of digits (and a ticket number's dashes), four digits or more, is a ticket number.
    Starting as one of `towns`' codes does, it is the beginning of one, with the dashes where
    intake writes them (`321003104-20261123-00002`) whether typed or not — an index finds it in
    any town; otherwise a part of one (a day, a sequence), its digits looked for without the
    dashes. The text to look for and whether it is the beginning; None for any other text."""
    if not _TICKET_TEXT.fullmatch(text) or sum(c.isdigit() for c in text) < 4:
        return None
    digits = text.replace("-", "")
    if any(code.startswith(digits[:9]) for code in towns):
        return "-".join(part for part in (digits[:9], digits[9:17], digits[17:]) if part), True
    return digits, False


def like_pattern(text: str) -> str:
    """`text` for SQL LIKE, its wildcards taken literally (the escape character is `\\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- who may take a post's task (issue #27: redispatch with a picker) ------------------------------
@dataclass(frozen=True)
class Holder:
    """One of the people dispatch's rules give a post's tasks: its A or B holder (up to the post's
    load cap) or its module's leader (the last resort, no cap)."""

    post: str
    slot: AssignedVia  # A, B or leader
    staff_id: str
    cap: int | None


def eligible_holders(town: Town) -> list[Holder]:
    """Every post's holders in the order `assign` tries them, post by post (a person holding two
    posts is listed under each)."""
    holders = []
    for post in town.posts.values():
        cap = town.load_cap(post)
        holders += [Holder(post.code, "A", post.a_holder, cap), Holder(post.code, "B", post.b_holder, cap),
                    Holder(post.code, "leader", town.modules[post.module].leader, None)]
    return holders


def takes_next(holders: list[Holder], post: str, loads: dict[str, int], off_post: set[str]) -> Holder | None:
    """Which of the post's holders a task of the post would go to now, as `assign` decides: the
    first neither off post nor at the cap; the leader otherwise."""
    for holder in (h for h in holders if h.post == post):
        if holder.slot == "leader" or (holder.staff_id not in off_post
                                       and loads.get(holder.staff_id, 0) < (holder.cap or 0)):
            return holder
    return None
# --- 挂起: a task suspended while waiting on the citizen (补正材料) or a third party ----------------
# Why a task is suspended: the citizen's status page shows the category, never the free text.
SUSPENSION_CATEGORIES = ("awaiting_citizen", "awaiting_third_party")


def suspension_approval_refusal(status: str) -> Refusal | None:
    """A suspension is approved only while its task is open (it stops a running deadline); refusing
    stays allowed on any task, to clear a request left pending when the task moved on."""
    if status in OPEN_STATUSES:
        return None
    return CODES["suspension.task_not_open"](status=status, allowed=" or ".join(OPEN_STATUSES))


def working_time_left(suspended_at: datetime, resolve_by: datetime, calendar: WorkCalendar) -> timedelta:
    """The working time between the suspension and the deadline (zero once the deadline passed):
    what the task gets back when it resumes (行政许可法 art. 32: the limit runs on complete materials)."""
    return calendar.working_time_between(suspended_at, resolve_by)


def resumed_resolve_by(resumed_at: datetime, left: timedelta, calendar: WorkCalendar) -> datetime:
    """The deadline of a resumed task: the working time it had left, counted from the resumption."""
    return calendar.add_working_hours(resumed_at, left / timedelta(hours=1))


def resumed_window_start(window_start: datetime, resolve_by: datetime, new_resolve_by: datetime) -> datetime:
    """The window moves with its deadline, its length kept: the supervision levels not yet sent fall
    as late as the deadline moved, those already sent stay sent."""
    return window_start + (new_resolve_by - resolve_by)
