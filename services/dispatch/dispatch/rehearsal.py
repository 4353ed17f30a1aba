"""Reform rehearsal (演练, issue #32): a past period's real matters replayed on another layout of the
town's modules, posts, staff and rules, to see beforehand what a merger, a moved post or another
load cap does to each person's load, the response and resolution rates and overdue tasks.

Why here, in dispatch: dispatch owns the routing rules (rules.py) and the history they act on (every
matter's arrival, every task's acceptance, completion, return, extension, suspension and off-post
registration), so the rehearsal calls the very functions a filed matter goes through instead of a
copy that would drift. The scores are appraisal's own formulas, from the shared library
(townflow_shared.scoring), since services share no code but that library.

The engine is plain Python with one heap of timed events (heapq), not simpy: a rehearsal has no
processes that wait on each other — a holder's handling of a task is known the moment the task is
dispatched — so the only state that moves is each person's count of open tasks, which the routing
reads at each arrival. A heap of (moment, order) keeps that exact and deterministic, and adds no
dependency to the service's image.

How one matter is replayed: its first task is routed at the matter's real arrival by `rules.assign`
on the layout's post for its item, with the layout's load caps, each person's real off-post
registrations and the open tasks the rehearsal has given them by then. The holder's handling of it
(when accepted, when completed, its approved extensions and suspensions) is
- `replayed`: the task's own, as it happened (moments shifted with the task if it moved); or
- `drawn`: one real handling drawn from history, measured in working time from the dispatch on the
  town's calendar (on the clock against a clock-hour window: Offset), of a matter of the same colour
  (a red matter's hour is not a yellow one's day): the assignee's own for that item where they have
  one, else the item's, else the module's (of the post's module in the real layout), else any of the
  colour, else any. A pool is a deck shuffled by the seed and dealt without replacement (reshuffled
  when empty), so a pool drawn as often as it was filled gives back its own month exactly (see _Decks).
A task that was returned (退回) or merged (重复件) in reality is returned or merged at the same
working-time offset whoever holds it, and the command centre's redispatch follows after the real
gap: to the person it named where the layout still has them, else by the rules on the post it
named (or the item's post when the layout has no such post). Supervision levels, deadlines,
extensions and suspensions follow rules.py on the layout's rules and the town's calendar.

Limits (docs/rehearsal.md): reworks (返工) and reopenings (重办) keep their real outcome; a
citizen's rating is the callback's where dispatch has one (intake's ratings are not dispatch's);
tasks dispatched before the period and still open count in nobody's load.

A county (`--town all`, county_layouts, county_total) is its towns rehearsed one by one and summed:
counts add, a rate is the summed counts' rate."""

from __future__ import annotations

import heapq
import random
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from townflow_shared import scoring
from townflow_shared.auth import Principal
from townflow_shared.calendar import WorkCalendar
from townflow_shared.town import LAYOUT_FILES, Post, Town, TownConfigError, load_town, town_files

from . import rules
from .store import PeriodRows, Row

HOUR = timedelta(hours=1)
Times = Literal["replayed", "drawn"]
# A person's own handlings of an item are their pool once there are this many (else the item's,
# everyone's): one is enough — the twin check is closest when each person's own month is dealt back
# to them, and a person's one handling of an item still says more about them than the item's pool.
MIN_OWN = 1


# --- what the history holds ----------------------------------------------------------------------
@dataclass(frozen=True)
class Offset:
    """A moment after a task's dispatch, as working time on the town's calendar plus the clock time
    past that (an acceptance at 18:00 is the day's working time and half an hour): placed after
    another dispatch it falls at the same working moment, and after its own it is exact. The clock
    time past is off-hours time, so placed elsewhere it stays within the off-hours ahead of that
    working moment: a Saturday acceptance of a task dispatched on Friday afternoon, dealt to a
    Tuesday afternoon's, is accepted before Wednesday's opening, not two days into the week.

    Against a window of clock hours (red's hour, orange's four: rules.in_clock_hours) a moment is
    read on the clock, `clock` after the dispatch: twenty minutes after a red matter came at 10:00
    are twenty minutes after one that came at 17:50 too, not the next morning's first twenty
    working minutes, and a night's acceptance of a night's matter stays an hour's."""

    working: timedelta
    extra: timedelta
    clock: timedelta

    @classmethod
    def between(cls, start: datetime, end: datetime, calendar: WorkCalendar) -> Offset:
        working = calendar.working_time_between(start, end)
        return cls(working, end - calendar.add_working_hours(start, working / HOUR), end - start)

    def after(self, start: datetime, calendar: WorkCalendar, *, on_the_clock: bool = False) -> datetime:
        if on_the_clock:
            return start + self.clock
        worked = calendar.add_working_hours(start, self.working / HOUR)
        return max(start, worked + (min(self.extra, calendar.until_working(worked)) if self.extra else self.extra))


@dataclass(frozen=True)
class Handling:
    """What a holder did with one task, relative to its dispatch."""

    accepted: Offset | None
    completed: Offset | None
    ended: Offset | None = None            # returned or merged: it left the holder's open tasks
    ended_by: Literal["returned", "merged"] | None = None
    extensions: tuple[tuple[Offset, int], ...] = ()            # approved: (when, working days)
    suspensions: tuple[tuple[Offset, Offset | None], ...] = ()  # (suspended, resumed)
    reworks: int = 0
    reopens: int = 0
    on_time: bool | None = None            # the real completion's, kept when reworked or reopened
    # Whether its own task's respond and resolve windows ran in clock hours: dealt to a task whose
    # window does too, that window's moments are placed on the clock (Offset.clock).
    in_clock_hours: tuple[bool, bool] = (False, False)


@dataclass(frozen=True)
class Placed:
    """Where a task went and when, what the recorded task and its rehearsed run both say (the twin
    check compares them field by field)."""

    post: str
    assignee: str
    via: str
    dispatched_at: datetime
    respond_by: datetime
    resolve_by: datetime
    accepted_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class PastTask(Placed):
    """One real task of a matter, as dispatch stored it."""

    task_id: str
    returned_at: datetime | None
    merged_at: datetime | None
    on_time: bool | None
    reworks: int = 0
    reopens: int = 0
    extensions: tuple[tuple[datetime, int], ...] = ()
    suspensions: tuple[tuple[datetime, datetime | None], ...] = ()
    levels: frozenset[str] = frozenset()   # supervision levels sent
    rating: str | None = None              # a reached callback's

    def handling(self, calendar: WorkCalendar, in_clock_hours: tuple[bool, bool] = (False, False)) -> Handling:
        def at(moment: datetime | None) -> Offset | None:
            return None if moment is None else Offset.between(self.dispatched_at, moment, calendar)

        ended = self.returned_at or self.merged_at
        return Handling(
            accepted=at(self.accepted_at), completed=at(self.completed_at), ended=at(ended),
            ended_by="returned" if self.returned_at else "merged" if self.merged_at else None,
            extensions=tuple((Offset.between(self.dispatched_at, when, calendar), days)
                             for when, days in self.extensions),
            suspensions=tuple((Offset.between(self.dispatched_at, s, calendar), at(r)) for s, r in self.suspensions),
            reworks=self.reworks, reopens=self.reopens,
            on_time=self.on_time if self.reworks or self.reopens else None, in_clock_hours=in_clock_hours)


@dataclass(frozen=True)
class PastMatter:
    request_id: str
    item_code: str
    colour: str
    village: str
    tasks: tuple[PastTask, ...]  # in the order they were dispatched (a redispatch follows a return)
    grid_cell: str | None = None  # where dispatch knows it (issue #30): routes a territorial matter to its cell's post


@dataclass(frozen=True)
class OffPost:
    staff_id: str
    from_at: datetime
    to_at: datetime


@dataclass(frozen=True)
class History:
    """A town's period as dispatch stored it, read at `as_of` (supervision after it has not happened)."""

    town_code: str
    start: datetime
    end: datetime
    as_of: datetime
    matters: tuple[PastMatter, ...]
    off_post: tuple[OffPost, ...] = ()


def history_of(rows: PeriodRows, town_code: str, start: datetime, end: datetime, as_of: datetime) -> History:
    """The period as store.period_rows read it, every moment in the period's own time zone
    (`start`'s, the town's): the database gives UTC, the calendar the town's zone, and comparing
    moments of two zones asks each for its offset — a third of a rehearsal's time, in the heap,
    the sorts and every max and min. One zone throughout, the same moments compare directly."""
    tz = start.tzinfo

    def local(moment: datetime) -> datetime:
        return moment.astimezone(tz)

    def by(moment: datetime | None) -> datetime | None:
        return None if moment is None or moment > as_of else moment.astimezone(tz)

    def by_task(records: Iterable[Row]) -> dict[object, list[Row]]:
        found: dict[object, list[Row]] = defaultdict(list)
        for r in records:
            found[r["task_id"]].append(r)
        return found

    as_of = local(as_of)
    levels, extensions, suspensions = by_task(rows.supervisions), by_task(rows.extensions), by_task(rows.suspensions)
    ratings = {r["task_id"]: r["rating"] for r in rows.callbacks}
    tasks_of: dict[object, list[Row]] = defaultdict(list)
    for row in rows.tasks:  # in dispatch order
        tasks_of[row["request_id"]].append(row)
    matters = []
    for request_id, rows_of_matter in tasks_of.items():
        first = rows_of_matter[0]
        matters.append(PastMatter(
            request_id=str(request_id), item_code=first["item_code"], colour=first["colour"], village=first["village"],
            grid_cell=rows.cells.get(request_id),
            tasks=tuple(PastTask(
                task_id=str(r["task_id"]), post=r["post"], assignee=r["assignee"], via=r["assigned_via"],
                dispatched_at=local(r["dispatched_at"]), respond_by=local(r["respond_by"]),
                resolve_by=local(r["resolve_by"]), accepted_at=by(r["accepted_at"]),
                completed_at=by(r["completed_at"]), returned_at=by(r["returned_at"]), merged_at=by(r["merged_at"]),
                on_time=r["on_time"], reworks=r["rework_count"], reopens=r["reopen_count"],
                extensions=tuple((local(e["decided_at"]), e["days"]) for e in extensions[r["task_id"]]),
                suspensions=tuple((local(s["decided_at"]), by(s["resumed_at"])) for s in suspensions[r["task_id"]]),
                levels=frozenset(s["level"] for s in levels[r["task_id"]]), rating=ratings.get(r["task_id"]))
                for r in rows_of_matter)))
    return History(town_code=town_code, start=start, end=end, as_of=as_of, matters=tuple(matters),
                   off_post=tuple(OffPost(o["staff_id"], local(o["from_at"]), local(o["to_at"])) for o in rows.off_post))


# --- what a rehearsal (or the real month) gives each task ------------------------------------------
@dataclass(frozen=True)
class TaskRun(Placed):
    """A task as a rehearsal placed and handled it (or as it happened: `recorded`)."""

    request_id: str
    item_code: str
    colour: str
    village: str
    module: str | None
    open_spans: tuple[tuple[datetime, datetime], ...]  # when it counted among the assignee's open tasks
    levels: frozenset[str] = frozenset()
    extensions: int = 0
    suspensions: int = 0
    reworks: int = 0
    reopens: int = 0
    on_time: bool | None = None
    superseded: bool = False
    merged: bool = False
    rating: str | None = None


# --- the layout --------------------------------------------------------------------------------
def alternative_town(real: Town, files: Mapping[str, str]) -> Town:
    """The town with some of its layout's files replaced by `files` (name → YAML text), checked as
    the town's own are at start-up: TownConfigError names the file and the field."""
    unknown = sorted(set(files) - set(LAYOUT_FILES))
    if unknown:
        raise TownConfigError(f"{unknown[0]}: not a file of a layout (one of {', '.join(LAYOUT_FILES)})")
    with tempfile.TemporaryDirectory(prefix="rehearsal-") as folder:
        root = Path(folder)
        for name, text in (town_files(real) | dict(files)).items():
            (root / name).write_text(text, encoding="utf-8")
        try:
            return load_town(root, places=real.places)  # the town's own map: a layout moves posts, not land
        except TownConfigError as exc:  # name the file as the caller knows it, not the scratch folder
            raise TownConfigError(str(exc).replace(f"{root}/", "")) from None


def layout_files(folder: Path) -> dict[str, str]:
    """The layout files present in `folder` (the others stay the town's)."""
    found = {name: (folder / name).read_text(encoding="utf-8") for name in LAYOUT_FILES if (folder / name).exists()}
    if not found:
        raise TownConfigError(f"{folder}: no layout file found (any of {', '.join(LAYOUT_FILES)})")
    return found


# --- the replay --------------------------------------------------------------------------------
class _Decks:
    """Pools of real handlings, dealt without replacement. Each pool's deck is shuffled by the seed
    and the pool's own name, and dealt in arrival order: a pool the alternative layout does not touch
    deals the same handlings to the same tasks as on the real layout (common random numbers), so
    the two columns differ by what the layout changed, not by the draw."""

    def __init__(self, history: History, real: Town, seed: int, handlings: Mapping[str, Handling]) -> None:
        self.seed = seed
        self.pools: dict[tuple[str, ...], list[Handling]] = defaultdict(list)
        for matter in history.matters:
            for task in matter.tasks:
                if task.returned_at or task.merged_at:
                    continue  # a return or a merge is the matter's, replayed as it was
                handling = handlings[task.task_id]
                post = real.posts.get(task.post)
                module = post.module if post else "?"
                for key in (("own", task.assignee, matter.item_code, matter.colour),
                            ("item", matter.item_code, matter.colour), ("module", module, matter.colour),
                            ("any", matter.colour), ("any",)):
                    self.pools[key].append(handling)
        self.decks: dict[tuple[str, ...], list[Handling]] = {}

    def draw(self, assignee: str, item: str, colour: str, module: str | None) -> Handling | None:
        own = ("own", assignee, item, colour)
        for key in (own, ("item", item, colour), ("module", module or "?", colour), ("any", colour), ("any",)):
            pool = self.pools.get(key)
            if not pool or (key == own and len(pool) < MIN_OWN):
                continue
            deck = self.decks.get(key)
            if not deck:
                deck = self.decks[key] = list(pool)
                shuffle = random.Random(f"{self.seed}:{'/'.join(key)}")  # noqa: S311 - a reproducible draw, not a secret
                shuffle.shuffle(deck)
            return deck.pop()
        return None


def _post_for(town: Town, matter: PastMatter, named: str | None) -> Post:
    """The post a task of the matter goes to on this layout: the one the command centre named where
    the layout has it, else the one dispatch's own rule gives (its cell's post, else its item's)."""
    if named is not None and named in town.posts:
        return town.posts[named]
    return rules.post_of_matter(town, town.catalog[matter.item_code], matter.grid_cell)


def _off_post(history: History) -> dict[str, list[tuple[datetime, datetime]]]:
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for entry in history.off_post:
        spans[entry.staff_id].append((entry.from_at, entry.to_at))
    return spans


@dataclass(frozen=True)
class _Routing:
    """A task of a matter due to be routed: its first at the matter's arrival, a redispatch after a return."""

    matter: PastMatter
    index: int


@dataclass(frozen=True)
class _LoadChange:
    staff: str
    change: int


def handlings(history: History, real: Town) -> dict[str, Handling]:
    """Each task's real handling, by task id: measured once on the calendar (working time between
    moments is a rehearsal's costliest sum) for both layouts' rehearsals."""
    found = {}
    for matter in history.matters:
        item = real.catalog.get(matter.item_code)
        clock = (False, False) if item is None else rules.in_clock_hours(
            matter.colour, item, real.rules.dispatch)  # type: ignore[arg-type]
        for task in matter.tasks:
            found[task.task_id] = task.handling(real.calendar, clock)
    return found


def rehearse(history: History, layout: Town, real: Town, *, times: Times = "drawn", seed: int = 0,
             real_handlings: Mapping[str, Handling] | None = None) -> list[TaskRun]:
    """Every task of the period's matters as `layout` would have routed and handled them
    (`real_handlings`: handlings(history, real), when the caller has them already)."""
    calendar = layout.calendar
    known = real_handlings if real_handlings is not None else handlings(history, real)
    decks = _Decks(history, real, seed, known) if times == "drawn" else None
    off = _off_post(history)
    loads: dict[str, int] = defaultdict(int)
    # (moment, kind, order, payload): at one moment loads change (0) before a routing (1) reads them.
    queue: list[tuple[datetime, int, int, _Routing | _LoadChange]] = []
    order = 0

    def push(moment: datetime, kind: int, payload: _Routing | _LoadChange) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (moment, kind, order, payload))

    for matter in history.matters:
        push(matter.tasks[0].dispatched_at, 1, _Routing(matter, 0))
    runs: list[TaskRun] = []
    while queue:
        moment, _, _, payload = heapq.heappop(queue)
        if isinstance(payload, _LoadChange):
            loads[payload.staff] += payload.change
            continue
        matter, index = payload.matter, payload.index
        past = matter.tasks[index]
        if index and past.via == "command_centre" and past.assignee in layout.staff:
            post = _post_for(layout, matter, past.post)
            assignment = rules.Assignment(past.assignee, "command_centre")
        else:
            post = _post_for(layout, matter, past.post if index else None)
            cap = layout.load_cap(post)
            unavailable = {s for s in (post.a_holder, post.b_holder)
                           if loads[s] >= cap or any(a <= moment < b for a, b in off.get(s, ()))}
            assignment = rules.assign(post, layout, unavailable)
        own = known[past.task_id]
        handling = own
        if decks is not None and own.ended_by is None:
            handling = decks.draw(assignment.assignee, matter.item_code, matter.colour,
                                  layout.posts[post.code].module if post.code in layout.posts else None) or own
        # Returned with a redispatch to come: superseded by it (the queue routes every task it holds).
        redispatched = handling.ended_by == "returned" and index + 1 < len(matter.tasks)
        run = _run(matter, post, assignment, moment, handling, layout, history.as_of, superseded=redispatched)
        runs.append(run)
        for start, stop in run.open_spans:
            push(start, 0, _LoadChange(run.assignee, 1))
            push(stop, 0, _LoadChange(run.assignee, -1))
        if redispatched:
            gap = Offset.between(past.returned_at, matter.tasks[index + 1].dispatched_at, real.calendar)  # type: ignore[arg-type]
            returned_at = own.ended.after(moment, calendar)  # type: ignore[union-attr]
            push(gap.after(returned_at, calendar), 1, _Routing(matter, index + 1))
    return runs


def _run(matter: PastMatter, post: Post, assignment: rules.Assignment, dispatched_at: datetime,
         handling: Handling, layout: Town, as_of: datetime, *, superseded: bool) -> TaskRun:
    """One task's course from its dispatch: its deadlines on the layout's rules, the handling's
    moments placed on the calendar, the supervision levels due while it was open."""
    calendar, dispatch_rules = layout.calendar, layout.rules.dispatch
    item = layout.catalog[matter.item_code]
    due = rules.deadlines(matter.colour, item, dispatched_at, calendar, dispatch_rules)  # type: ignore[arg-type]
    # A window of clock hours here and where the handling was measured: its moments on the clock.
    respond_clock, resolve_clock = (
        own and here for own, here in zip(handling.in_clock_hours, rules.in_clock_hours(
            matter.colour, item, dispatch_rules), strict=True))  # type: ignore[arg-type]

    def at(offset: Offset | None, on_the_clock: bool = resolve_clock) -> datetime | None:
        return None if offset is None else offset.after(dispatched_at, calendar, on_the_clock=on_the_clock)

    # A return or a merge keeps its working time (the return window is working hours; the
    # redispatch is placed from it the same way in rehearse()).
    accepted, completed, ended = at(handling.accepted, respond_clock), at(handling.completed), at(handling.ended, False)
    if accepted is not None and completed is not None and accepted > completed:
        accepted = completed  # the acceptance on the clock, the completion in working time: none is done unaccepted
    if accepted is not None and accepted > as_of:
        accepted = None
    if completed is not None and (completed > as_of or (ended is not None and completed > ended)):
        completed = None
    stop = min(m for m in (completed, ended, as_of) if m is not None)
    # The changes of its window, in time order: extensions move the deadline, suspensions stop it.
    changes: list[tuple[datetime, int, datetime | None]] = []  # (when, extension days or 0, resumed)
    for offset, days in handling.extensions:
        changes.append((offset.after(dispatched_at, calendar, on_the_clock=resolve_clock), days, None))
    for suspended, resumption in handling.suspensions:
        changes.append((suspended.after(dispatched_at, calendar, on_the_clock=resolve_clock), 0, at(resumption)))
    window_start, resolve_by = dispatched_at, due.resolve_by
    cursor, spans, levels = dispatched_at, [], set[str]()
    extensions = suspensions = 0

    def supervise(until: datetime) -> None:
        """The levels due by `until` while open (the loop catches up on every missed one)."""
        moments = rules.supervision_moments(window_start, resolve_by, dispatch_rules)
        levels.update(level for level, moment in moments.items() if moment <= until)

    for moment, days, resumed in sorted(changes, key=lambda c: c[0]):
        if moment >= stop:
            break
        supervise(moment)
        if days:
            resolve_by = rules.extended_resolve_by(resolve_by, days, calendar)
            extensions += 1
        else:
            spans.append((cursor, moment))
            suspensions += 1
            if resumed is None or resumed >= stop:
                cursor = stop
                break
            left = rules.working_time_left(moment, resolve_by, calendar)
            new_resolve_by = rules.resumed_resolve_by(resumed, left, calendar)
            window_start = rules.resumed_window_start(window_start, resolve_by, new_resolve_by)
            resolve_by, cursor = new_resolve_by, resumed
    if cursor < stop:
        supervise(stop)
        spans.append((cursor, stop))
    last = matter.tasks[-1]
    on_time = handling.on_time if handling.on_time is not None else (
        None if completed is None else rules.is_on_time(completed, resolve_by))
    return TaskRun(
        request_id=matter.request_id, item_code=matter.item_code, colour=matter.colour, village=matter.village,
        post=post.code, module=post.module, assignee=assignment.assignee, via=assignment.via,
        dispatched_at=dispatched_at, respond_by=due.respond_by, resolve_by=resolve_by, accepted_at=accepted,
        completed_at=completed, open_spans=tuple((a, b) for a, b in spans if b > a), levels=frozenset(levels),
        extensions=extensions, suspensions=suspensions, reworks=handling.reworks, reopens=handling.reopens,
        on_time=on_time, superseded=superseded, merged=handling.ended_by == "merged", rating=last.rating)


def recorded(history: History, real: Town) -> list[TaskRun]:
    """The period's tasks as they happened (what a rehearsal of the real layout is checked against)."""
    runs = []
    for matter in history.matters:
        for index, task in enumerate(matter.tasks):
            post = real.posts.get(task.post)
            stop = min(m for m in (task.completed_at, task.returned_at, task.merged_at, history.as_of) if m is not None)
            spans, cursor = [], task.dispatched_at
            for suspended, resumed in sorted(task.suspensions):
                if suspended >= stop:
                    break
                spans.append((cursor, suspended))
                cursor = resumed if resumed is not None else stop
            if cursor < stop:
                spans.append((cursor, stop))
            runs.append(TaskRun(
                request_id=matter.request_id, item_code=matter.item_code, colour=matter.colour,
                village=matter.village, post=task.post, module=post.module if post else None,
                assignee=task.assignee, via=task.via, dispatched_at=task.dispatched_at, respond_by=task.respond_by,
                resolve_by=task.resolve_by, accepted_at=task.accepted_at, completed_at=task.completed_at,
                open_spans=tuple((a, b) for a, b in spans if b > a), levels=task.levels,
                extensions=len(task.extensions), suspensions=len(task.suspensions), reworks=task.reworks,
                reopens=task.reopens, on_time=task.on_time, superseded=index + 1 < len(matter.tasks),
                merged=task.merged_at is not None, rating=matter.tasks[-1].rating))
    return runs


# --- the figures -------------------------------------------------------------------------------
Kind = Literal["town", "module", "post", "staff"]


@dataclass(frozen=True)
class Figures:
    """One subject's month: its load and appraisal's figures of its tasks."""

    handled: int                  # tasks that stand (not handed on by a return, not merged)
    busiest_day: date | None
    busiest_day_tasks: int        # tasks dispatched to it that day
    most_open: int                # the most tasks it held open at once
    wait_to_accept_hours: float | None  # mean working hours from dispatch to acceptance
    response: float | None        # 响应率
    resolution: float | None      # 办结率 (on time)
    satisfaction: float | None    # 满意率 (callbacks' ratings)
    overdue: int
    escalated: int
    composite: float | None
    points: float


def task_fact(run: TaskRun, layout: Town, period: str) -> scoring.TaskFact:
    """The run as appraisal's fact of a task (appraisal/handlers.py and its SQL fold the same)."""
    module = run.module
    seconded = module if module in layout.modules and layout.modules[module].kind == "seconded" else None
    item = layout.catalog.get(run.item_code)
    responded = (run.accepted_at is not None and run.accepted_at <= run.respond_by) or (
        run.accepted_at is None and run.completed_at is not None and run.completed_at <= run.respond_by)
    completions = (1 + run.reworks + run.reopens) if run.completed_at is not None else 0
    return scoring.TaskFact(
        task_id=f"{run.request_id}/{run.dispatched_at.isoformat()}", period=period, assignee=run.assignee,
        module=module, village=run.village, seconded_unit=seconded, colour=run.colour,
        difficulty=item.difficulty if item else 1.0, responded=responded, completions=completions,
        failed_checks=run.reworks, last_on_time=run.on_time, extensions=run.extensions, superseded=run.superseded,
        returned_invalid=False, rating=run.rating, completed_event="c" if completions else None,
        overdue_event="o" if "overdue" in run.levels else None,
        escalated_event="e" if "escalated" in run.levels else None, merged=run.merged, reopens=run.reopens,
        suspensions=run.suspensions)


def _subjects(run: TaskRun, town_code: str) -> list[tuple[Kind, str]]:
    subjects: list[tuple[Kind, str]] = [("town", town_code), ("post", run.post), ("staff", run.assignee)]
    return subjects + ([("module", run.module)] if run.module else [])


def figures(runs: Sequence[TaskRun], layout: Town, start: datetime, end: datetime) -> dict[tuple[Kind, str], Figures]:
    """Each subject's figures over the tasks dispatched in [start, end)."""
    return _figures(runs, layout, start, end)[0]


def _figures(runs: Sequence[TaskRun], layout: Town, start: datetime,
             end: datetime) -> tuple[dict[tuple[Kind, str], Figures], scoring.Counts]:
    """figures(), and the town's appraisal counts. What a task gives — its fact, its points, its
    wait, its day — is worked out once, not once for each of its four subjects (town, module, post,
    person): that was most of a rehearsal's time. The sums run in the same order as before, so the
    figures are the same to the last digit."""
    tz, calendar, appraisal = layout.calendar.tz, layout.calendar, layout.rules.appraisal
    period = start.astimezone(tz).strftime("%Y-%m")
    mine = [r for r in runs if start <= r.dispatched_at < end]
    facts = [task_fact(r, layout, period) for r in mine]
    points = [[e.points for e in scoring.ledger([fact], [], layout, appraisal)] for fact in facts]
    waits = [None if r.accepted_at is None else calendar.working_time_between(r.dispatched_at, r.accepted_at) / HOUR
             for r in mine]
    days_of = [r.dispatched_at.astimezone(tz).date() for r in mine]
    by_subject: dict[tuple[Kind, str], list[int]] = defaultdict(list)
    for index, run in enumerate(mine):
        for subject in _subjects(run, layout.code):
            by_subject[subject].append(index)
    result = {}
    for subject, theirs in sorted(by_subject.items()):
        counts = scoring.counts(facts[i] for i in theirs)
        rates = scoring.rates(counts)
        days: dict[date, int] = defaultdict(int)
        for i in theirs:
            days[days_of[i]] += 1
        busiest = max(sorted(days), key=lambda d: days[d]) if days else None
        their_waits = [wait for i in theirs if (wait := waits[i]) is not None]
        result[subject] = Figures(
            handled=counts.dispatched, busiest_day=busiest, busiest_day_tasks=days[busiest] if busiest else 0,
            most_open=_most_open(mine[i] for i in theirs),
            wait_to_accept_hours=round(sum(their_waits) / len(their_waits), 2) if their_waits else None,
            response=rates["response"], resolution=rates["resolution"], satisfaction=rates["satisfaction"],
            overdue=counts.overdue, escalated=counts.escalated, composite=scoring.composite(rates, appraisal),
            points=round(sum(p for i in theirs for p in points[i]), 4))
    town = by_subject.get(("town", layout.code), [])
    return result, scoring.counts(facts[i] for i in town)


def _most_open(runs: Iterable[TaskRun]) -> int:
    changes = sorted((moment, change) for r in runs for a, b in r.open_spans for moment, change in ((a, 1), (b, -1)))
    most = current = 0
    for _, change in changes:  # at one moment a task that ends is counted out before one that starts
        current += change
        most = max(most, current)
    return most


# --- the comparison ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    town_code: str
    start: datetime
    end: datetime
    times: Times
    seed: int
    matters: int
    real: dict[tuple[Kind, str], Figures]         # the real layout, rehearsed the same way
    alternative: dict[tuple[Kind, str], Figures]
    recorded: Figures                             # the town's month as it happened
    same_assignee: float                          # share of tasks the real layout's rehearsal gave as it was
    worse: list[Worse]
    # The town's appraisal counts of each side ("recorded", "real", "alternative"): what a county's
    # totals add up (a rate of the county is its summed counts' rate, not a mean of the towns' rates).
    counts: dict[str, scoring.Counts] = field(default_factory=dict)

    def town(self, side: str) -> Figures | None:
        """The town's own line of a side ("recorded", "real", "alternative")."""
        return self.recorded if side == "recorded" else getattr(self, side).get(("town", self.town_code))


RATES = (("response", "响应率"), ("resolution", "办结率"), ("satisfaction", "满意率"))
COUNTS = (("overdue", "逾期"), ("escalated", "升级督办"), ("most_open", "同时在办"))


@dataclass(frozen=True)
class Worse:
    """One figure the alternative makes worse for one subject: a rate (a fraction) that drops, or a
    count that rises; `real` is None for a subject only the alternative has (a new post or module).
    Codes, not words: the console names the subject and the figure, the CLI prints `text`."""

    kind: Kind
    id: str
    figure: str                  # a key of RATES or COUNTS
    real: float | None
    alternative: float

    @property
    def text(self) -> str:
        label = dict(RATES + COUNTS)[self.figure]
        shown = (lambda v: f"{v:.1%}") if self.figure in dict(RATES) else (lambda v: f"{v:g}")
        if self.real is None:
            return f"{self.kind} {self.id} (new): {label} {shown(self.alternative)}"
        return f"{self.kind} {self.id}: {label} {shown(self.real)} → {shown(self.alternative)}"


def what_got_worse(real: Mapping[tuple[Kind, str], Figures], alternative: Mapping[tuple[Kind, str], Figures],
                   limit: int = 10) -> list[Worse]:
    """The subjects whose figures the alternative makes worse, the largest changes first."""
    found: list[tuple[float, Worse]] = []
    for subject in sorted(set(real) & set(alternative)):
        before, after = real[subject], alternative[subject]
        for key, _ in RATES:
            b, a = getattr(before, key), getattr(after, key)
            if b is not None and a is not None and a < b - 0.005:
                found.append(((b - a) * 100, Worse(*subject, key, b, a)))
        for key, _ in COUNTS:
            b, a = getattr(before, key), getattr(after, key)
            if a > b:
                found.append((float(a - b), Worse(*subject, key, b, a)))
    for subject in sorted(set(alternative) - set(real)):
        if alternative[subject].overdue:
            found.append((float(alternative[subject].overdue), Worse(*subject, "overdue", None,
                                                                     alternative[subject].overdue)))
    return [worse for _, worse in sorted(found, key=lambda f: -f[0])[:limit]]


def compare(history: History, real: Town, layout: Town, *, times: Times = "drawn", seed: int = 0) -> Comparison:
    """The period rehearsed on the real layout and on `layout`, side by side, with the month as
    recorded and how closely the real layout's rehearsal reproduced its assignees (the twin check)."""
    as_was = recorded(history, real)
    known = handlings(history, real)
    twin = rehearse(history, real, real, times=times, seed=seed, real_handlings=known)
    alternative = rehearse(history, layout, real, times=times, seed=seed, real_handlings=known)
    key = {(r.request_id, r.dispatched_at): r.assignee for r in as_was}
    same = sum(key.get((r.request_id, r.dispatched_at)) == r.assignee for r in twin)
    real_figures, real_counts = _figures(twin, real, history.start, history.end)
    alternative_figures, alternative_counts = _figures(alternative, layout, history.start, history.end)
    recorded_figures, recorded_counts = _figures(as_was, real, history.start, history.end)
    town: tuple[Kind, str] = ("town", real.code)
    empty = Figures(0, None, 0, 0, None, None, None, None, 0, 0, None, 0.0)
    return Comparison(
        town_code=real.code, start=history.start, end=history.end, times=times, seed=seed,
        matters=len(history.matters), real=real_figures, alternative=alternative_figures,
        recorded=recorded_figures.get(town, empty),
        same_assignee=round(same / len(twin), 4) if twin else 1.0,
        worse=what_got_worse(real_figures, alternative_figures),
        counts={"recorded": recorded_counts, "real": real_counts, "alternative": alternative_counts})


# --- a county: each town rehearsed on its own, and the sums ---------------------------------------
SIDES = ("recorded", "real", "alternative")


def county_layouts(towns: Mapping[str, Town], folder: Path) -> dict[str, tuple[Town, Town]]:
    """Every town of the county with the layout it is rehearsed on: the files in `folder`/<town
    code>/ where the town has such a folder, else the files at `folder`'s top (one change made in
    every town alike), else the town's own layout (its columns then differ only by nothing). A
    wrong file raises TownConfigError naming the town."""
    everywhere = {name: (folder / name).read_text(encoding="utf-8") for name in LAYOUT_FILES
                  if (folder / name).exists()}
    own_folders = {code for code in towns if (folder / code).is_dir()}
    if not everywhere and not own_folders:
        raise TownConfigError(f"{folder}: no layout file found (any of {', '.join(LAYOUT_FILES)}, at its top or in"
                              f" a folder named by a town's code)")
    layouts = {}
    for code, town in sorted(towns.items()):
        files = layout_files(folder / code) if code in own_folders else everywhere
        try:
            layouts[code] = (town, alternative_town(town, files) if files else town)
        except TownConfigError as exc:
            raise TownConfigError(f"town {code}: {exc}") from None
    return layouts


def _summed(counts: Iterable[scoring.Counts]) -> scoring.Counts:
    total = scoring.Counts()
    for c in counts:
        for name, value in asdict(c).items():
            setattr(total, name, getattr(total, name) + value)
    return total


def county_total(comparisons: Sequence[Comparison]) -> dict[str, Any]:
    """The county's month, each side summed over its towns: counts and points add; a rate is the
    summed counts' rate (a town of 2,000 tasks weighs twice one of 1,000). Most-open and the
    busiest day are a subject's own and have no county sum; the twin's share of real assignees is
    given as the lowest town's."""
    def side(name: str) -> dict[str, Any]:
        counts = _summed(c.counts[name] for c in comparisons)
        rates = scoring.rates(counts)
        points = sum(town.points for c in comparisons if (town := c.town(name)) is not None)
        return {"handled": counts.dispatched, "response": rates["response"], "resolution": rates["resolution"],
                "satisfaction": rates["satisfaction"], "overdue": counts.overdue, "escalated": counts.escalated,
                "points": round(points, 4)}

    return {"towns": len(comparisons), "matters": sum(c.matters for c in comparisons),
            "lowest_same_assignee": min((c.same_assignee for c in comparisons), default=1.0)} | {
        name: side(name) for name in SIDES}


# --- who may, and how it is shown ------------------------------------------------------------------
def may_rehearse(principal: Principal, town: Town) -> bool:
    """The appraisal office (考核办) and the town's party secretary (党委书记), who decide a reform;
    admins as always."""
    if principal.roles & {"admin", "county_admin", "appraisal_admin"}:
        return True
    return principal.town == town.code and principal.sub == town.info.party_secretary


def period_of_days(first: date, last: date, town: Town) -> tuple[datetime, datetime]:
    """[start, end) of the days `first` to `last` (both included) in the town's time zone."""
    tz = town.calendar.tz
    return (datetime.combine(first, time(0), tzinfo=tz),
            datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz))


def as_plain(comparison: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data: every subject of either layout, side by side."""
    def seen(f: Figures | None) -> dict[str, Any] | None:
        if f is None:
            return None
        data = asdict(f)
        data["busiest_day"] = f.busiest_day.isoformat() if f.busiest_day else None
        return data

    subjects = sorted(set(comparison.real) | set(comparison.alternative), key=lambda s: (KINDS.index(s[0]), s[1]))
    return {
        "town_code": comparison.town_code, "from": comparison.start.isoformat(), "to": comparison.end.isoformat(),
        "times": comparison.times, "seed": comparison.seed, "matters": comparison.matters,
        "same_assignee": comparison.same_assignee, "recorded": seen(comparison.recorded),
        "subjects": [{"kind": kind, "id": ident, "real": seen(comparison.real.get((kind, ident))),
                      "alternative": seen(comparison.alternative.get((kind, ident)))} for kind, ident in subjects],
        "worse": [asdict(w) for w in comparison.worse],
    }


KINDS: tuple[Kind, ...] = ("town", "module", "post", "staff")


def as_table(comparison: Comparison) -> str:
    """The comparison as a plain-text table: one line per subject, the real layout's figures and the
    alternative's side by side."""
    def rate(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    def cells(f: Figures | None) -> list[str]:
        if f is None:
            return ["—"] * 8
        return [str(f.handled), f"{f.busiest_day_tasks}", str(f.most_open),
                "—" if f.wait_to_accept_hours is None else f"{f.wait_to_accept_hours:.1f}",
                rate(f.response), rate(f.resolution), f"{f.overdue}/{f.escalated}",
                "—" if f.composite is None else f"{f.composite:.1f} {f.points:g}"]

    head = ["subject", "handled", "peak day", "most open", "wait h", "响应率", "办结率", "overdue/esc", "composite pts"]
    data = as_plain(comparison)
    lines = [f"rehearsal of town {comparison.town_code}, {comparison.start:%Y-%m-%d} to {comparison.end:%Y-%m-%d}"
             f" (exclusive), {comparison.matters} matters, times {comparison.times}, seed {comparison.seed}",
             f"twin check: the real layout's rehearsal gave {comparison.same_assignee:.1%} of tasks their real"
             f" assignee; recorded 响应率 {rate(comparison.recorded.response)}, 办结率"
             f" {rate(comparison.recorded.resolution)}, overdue {comparison.recorded.overdue}",
             "", "  ".join(head[:1] + [f"{h} (real → alt)" for h in head[1:]])]
    for subject in data["subjects"]:
        real = cells(comparison.real.get((subject["kind"], subject["id"])))
        alternative = cells(comparison.alternative.get((subject["kind"], subject["id"])))
        lines.append("  ".join([f"{subject['kind']} {subject['id']}"] +
                               [a if a == b else f"{a} → {b}" for a, b in zip(real, alternative, strict=True)]))
    lines += ["", "what got worse:"] + ([f"  - {w.text}" for w in comparison.worse] or ["  - nothing"])
    return "\n".join(lines)


def county_plain(comparisons: Sequence[Comparison]) -> dict[str, Any]:
    """A county's rehearsal as JSON-ready data: each town's comparison as the API answers it, and the sums."""
    return {"towns": [as_plain(c) for c in comparisons], "total": county_total(comparisons)}


def county_table(comparisons: Sequence[Comparison]) -> str:
    """A county's rehearsal as a plain-text table: one line per town (its own subject's figures,
    real → alt where they differ), then the county's sums."""
    def rate(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    def cells(f: Mapping[str, Any] | Figures | None) -> list[str]:
        if f is None:
            return ["—"] * 4
        get = f.get if isinstance(f, Mapping) else lambda key: getattr(f, key)
        return [str(get("handled")), rate(get("response")), rate(get("resolution")),
                f"{get('overdue')}/{get('escalated')}"]

    def line(name: str, matters: int, twin: float, real: list[str], alternative: list[str]) -> str:
        return "  ".join([name, str(matters), f"{twin:.1%}"] +
                         [a if a == b else f"{a} → {b}" for a, b in zip(real, alternative, strict=True)])

    total = county_total(comparisons)
    first = comparisons[0] if comparisons else None
    lines = [f"rehearsal of {total['towns']} towns, {total['matters']} matters"
             + (f", {first.start:%Y-%m-%d} to {first.end:%Y-%m-%d} (exclusive), times {first.times}, seed {first.seed}"
                if first else ""),
             "", "town  matters  twin (real assignee)  handled (real → alt)  响应率  办结率  overdue/esc"]
    for c in comparisons:
        lines.append(line(c.town_code, c.matters, c.same_assignee, cells(c.town("real")), cells(c.town("alternative"))))
    lines.append(line("county", total["matters"], total["lowest_same_assignee"], cells(total["real"]),
                      cells(total["alternative"])))
    recorded = total["recorded"]
    lines += ["", f"recorded: 响应率 {rate(recorded['response'])}, 办结率 {rate(recorded['resolution'])},"
                  f" overdue {recorded['overdue']} (the county line's twin is its lowest town's)"]
    return "\n".join(lines)
