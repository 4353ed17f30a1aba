"""Appraisal's event handlers: each adds the facts its event carries to its consumer transaction's
batch (flows.Batches), which is applied set-based once all the batch's events are in. Each is
handed the service's deps (flows.Deps) by the consumer. An event of a town this deployment does
not serve is refused (poison, SPEC §8: scope.town_of_event)."""

from __future__ import annotations

import asyncpg

from townflow_shared import events
from townflow_shared.consumer import Handler
from townflow_shared.events import Envelope
from townflow_shared.scope import town_of_event
from townflow_shared.town import Town

from . import rules
from .facts import Cause, FactBatch, InspectionFact, OfficerPoints, SubjectKey
from .flows import Deps


def _open(conn: asyncpg.Connection, event: Envelope, deps: Deps) -> tuple[Town, FactBatch, Cause]:
    """The event's town (poison for a town not served) and its transaction's batch with the event
    as a cause."""
    town = town_of_event(deps.county, event.town_code)
    return town, *deps.batches.cause(conn, event)


async def request_filed(conn: asyncpg.Connection, event: events.RequestFiled, deps: Deps) -> None:
    town = town_of_event(deps.county, event.town_code)
    d = event.data
    batch = deps.batches.of(conn)
    batch.matter_filed((town.code, d.request_id), d.village, d.filed_at)
    if d.grid_cell is not None:  # a located matter in a cell: counted in its cell's hotspots
        batch.matter_located((town.code, d.request_id), rules.period_of(d.filed_at, town.calendar.tz),
                             d.grid_cell, d.item_code)


async def request_rated(conn: asyncpg.Connection, event: events.RequestRated, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    batch.matter_rated((town.code, d.request_id), d.rating, d.rated_at, cause)


async def task_dispatched(conn: asyncpg.Connection, event: events.TaskDispatched, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    post = town.posts.get(d.post)
    module = post.module if post else d.lead_module
    item = town.catalog.get(d.item_code)
    batch.task_dispatched((town.code, d.task_id), {
        "town_code": town.code, "task_id": d.task_id, "request_id": d.request_id, "dispatched_event": event.id,
        "period": rules.period_of(d.dispatched_at, town.calendar.tz), "assignee": d.assignee, "post": d.post,
        "module": module, "village": d.village,
        "seconded_unit": module if module in town.modules and town.modules[module].kind == "seconded" else None,
        "item_code": d.item_code, "colour": d.colour, "difficulty": item.difficulty if item else 1.0,
        "dispatched_at": d.dispatched_at, "respond_by": d.respond_by, "resolve_by": d.resolve_by,
        "redispatch_of": d.redispatch_of,
    }, cause)
    if d.redispatch_of and d.invalid_return:
        batch.return_invalid((town.code, d.redispatch_of), d.request_id, cause)
    elif d.redispatch_of:
        batch.touches_task((town.code, d.redispatch_of), cause)  # the old assignee no longer counts it


async def task_accepted(conn: asyncpg.Connection, event: events.TaskAccepted, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    batch.task_accepted((town.code, d.task_id), d.request_id, d.accepted_at, cause)


async def task_returned(conn: asyncpg.Connection, event: events.TaskReturned, deps: Deps) -> None:
    """A return changes no figure by itself: the redispatch that follows moves the matter."""
    town_of_event(deps.county, event.town_code)


async def task_supervised(conn: asyncpg.Connection, event: events.TaskSupervised, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    key = (town.code, d.task_id)
    if d.level == "overdue":
        batch.task_overdue(key, d.request_id, cause)
    elif d.level == "escalated":
        batch.task_escalated(key, d.request_id, cause)
    else:
        batch.task_known(key, d.request_id)  # a reminder costs no points


async def task_completed(conn: asyncpg.Connection, event: events.TaskCompleted, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    batch.task_completed((town.code, d.task_id), d.request_id, d.completed_at, d.on_time, cause)


async def task_extended(conn: asyncpg.Connection, event: events.TaskExtended, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    batch.task_extended((town.code, d.task_id), d.request_id, cause)


async def task_verified(conn: asyncpg.Connection, event: events.TaskVerified, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    if d.passed:
        batch.check_passed((town.code, d.task_id), d.request_id, cause)  # closed: 重办率's denominator
    else:
        batch.check_failed((town.code, d.task_id), d.request_id, cause)


async def task_merged(conn: asyncpg.Connection, event: events.TaskMerged, deps: Deps) -> None:
    """重复件: merged, the task leaves every rate and earns nothing; reversed, it counts again
    (its completions are judged by dispatch against the new window). The latest one decides."""
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    batch.task_merged((town.code, d.task_id), d.request_id, not d.reversed, d.at, cause)


async def task_callback(conn: asyncpg.Connection, event: events.TaskCallback, deps: Deps) -> None:
    """回访: a reached citizen's rating counts as theirs unless they rated the matter
    themselves; `reopened` (重办) sends the task back like a failed closure check."""
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    if d.reached and d.rating is not None:
        batch.matter_called_back((town.code, d.request_id), d.rating, d.at, cause)
    if d.reopened:
        batch.task_reopened((town.code, d.task_id), d.request_id, cause)


async def task_suspended(conn: asyncpg.Connection, event: events.TaskSuspended, deps: Deps) -> None:
    """挂起: counted once per task in 挂起率 (its resumption changes no figure: no handler)."""
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    batch.task_suspended((town.code, d.task_id), d.request_id, cause)


async def inspection_done(conn: asyncpg.Connection, event: events.InspectionDone, deps: Deps) -> None:
    town, batch, cause = _open(conn, event, deps)
    d = event.data
    period = rules.period_of(d.finished_at, town.calendar.tz)
    fact = rules.InspectionFact(d.inspection_id, period, tuple(d.officers), len(d.task_ids), str(event.id))
    points: dict[str, OfficerPoints] = {}
    for entry in rules.ledger([], [fact], town, town.rules.appraisal):
        before = points.get(entry.staff_id)
        points[entry.staff_id] = OfficerPoints(entry.module, entry.seconded_unit, period,
                                               (before.points if before else 0.0) + entry.points)
    subjects: list[SubjectKey] = []
    for officer in d.officers:
        subjects.append((town.code, "staff", officer, period))
        if officer in town.staff:
            module = town.staff[officer].module
            subjects.append((town.code, "module", module, period))
            if town.modules[module].kind == "seconded":
                subjects.append((town.code, "seconded_unit", module, period))
    batch.inspection_done(InspectionFact(town.code, d.inspection_id, period, list(d.officers), len(d.task_ids),
                                         d.finished_at, event.id), points, subjects, cause)


async def case_updated(conn: asyncpg.Connection, event: events.CaseUpdated, deps: Deps) -> None:
    """Consumed for completeness of the record; no figure depends on case steps yet."""
    town_of_event(deps.county, event.town_code)


async def plan_published(conn: asyncpg.Connection, event: events.PlanPublished, deps: Deps) -> None:
    """Consumed for completeness of the record; no figure depends on plans yet."""
    town_of_event(deps.county, event.town_code)


# Each handler under its own name: the inbox knows handled events by `appraisal.<name>`
# (app.py registers them).
HANDLERS: tuple[tuple[type[Envelope], Handler], ...] = (
    (events.RequestFiled, request_filed), (events.RequestRated, request_rated),
    (events.TaskDispatched, task_dispatched), (events.TaskAccepted, task_accepted),
    (events.TaskReturned, task_returned), (events.TaskSupervised, task_supervised),
    (events.TaskCompleted, task_completed), (events.TaskExtended, task_extended),
    (events.TaskVerified, task_verified), (events.TaskMerged, task_merged),
    (events.TaskCallback, task_callback), (events.InspectionDone, inspection_done),
    (events.CaseUpdated, case_updated), (events.PlanPublished, plan_published),
    (events.TaskSuspended, task_suspended),
)
