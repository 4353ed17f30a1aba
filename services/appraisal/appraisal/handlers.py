"""Appraisal's event handlers: record the facts an event carries, then publish the figures it
changed. Each runs in one transaction with its inbox row."""

from __future__ import annotations

import asyncpg

from townflow_shared.events import (
    CaseUpdated,
    Envelope,
    InspectionDone,
    PlanPublished,
    RequestFiled,
    RequestRated,
    TaskAccepted,
    TaskCompleted,
    TaskDispatched,
    TaskExtended,
    TaskReturned,
    TaskSupervised,
    TaskVerified,
)
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.town import Town

from . import flows, rules, store


async def _task_changed(conn: asyncpg.Connection, town: Town, task_id: str, event: Envelope) -> None:
    row = await flows.refresh_contribution(conn, town, task_id)
    await flows.publish_scores(conn, town, flows.subjects_of_task(row), row["period"] if row else None, event)


async def request_filed(conn: asyncpg.Connection, event: RequestFiled, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    await store.upsert_matter(conn, town.code, event.data.request_id, village=event.data.village,
                              filed_at=event.data.filed_at)


async def request_rated(conn: asyncpg.Connection, event: RequestRated, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    await store.upsert_matter(conn, town.code, d.request_id, rating=d.rating, rated_at=d.rated_at,
                              rated_event=event.id)
    for row in await store.standing_tasks_of_request(conn, town.code, d.request_id):
        await flows.refresh_contribution(conn, town, row["task_id"])
        await flows.publish_scores(conn, town, flows.subjects_of_task(row), row["period"], event)


async def task_dispatched(conn: asyncpg.Connection, event: TaskDispatched, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    post = town.posts.get(d.post)
    module = post.module if post else d.lead_module
    item = town.catalog.get(d.item_code)
    await store.upsert_dispatched(conn, {
        "town_code": town.code, "task_id": d.task_id, "request_id": d.request_id, "dispatched_event": event.id,
        "period": rules.period_of(d.dispatched_at, town.calendar.tz), "assignee": d.assignee, "post": d.post,
        "module": module, "village": d.village,
        "seconded_unit": module if module in town.modules and town.modules[module].kind == "seconded" else None,
        "item_code": d.item_code, "colour": d.colour, "difficulty": item.difficulty if item else 1.0,
        "dispatched_at": d.dispatched_at, "respond_by": d.respond_by, "resolve_by": d.resolve_by,
        "redispatch_of": d.redispatch_of,
    })
    if d.redispatch_of and d.invalid_return:
        await store.mark_invalid_return(conn, town.code, d.redispatch_of, d.request_id, event.id)
    if d.redispatch_of:
        await _task_changed(conn, town, d.redispatch_of, event)  # the old assignee no longer counts it
    await _task_changed(conn, town, d.task_id, event)


async def task_accepted(conn: asyncpg.Connection, event: TaskAccepted, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    await store.record_accepted(conn, town.code, d.task_id, d.request_id, d.accepted_at, event.id)
    await _task_changed(conn, town, d.task_id, event)


async def task_returned(conn: asyncpg.Connection, event: TaskReturned, runtime: ServiceRuntime) -> None:
    """A return changes no figure by itself: the redispatch that follows moves the matter."""
    runtime.town_of(event.town_code)  # still an event of a town this deployment serves


async def task_supervised(conn: asyncpg.Connection, event: TaskSupervised, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    await store.record_supervised(conn, town.code, d.task_id, d.request_id, d.level, event.id)
    if d.level != "reminder":
        await _task_changed(conn, town, d.task_id, event)


async def task_completed(conn: asyncpg.Connection, event: TaskCompleted, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    await store.record_completed(conn, town.code, d.task_id, d.request_id, d.completed_at, d.on_time, event.id)
    await _task_changed(conn, town, d.task_id, event)


async def task_extended(conn: asyncpg.Connection, event: TaskExtended, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    await store.record_extended(conn, town.code, d.task_id, d.request_id, event.id)
    await _task_changed(conn, town, d.task_id, event)


async def task_verified(conn: asyncpg.Connection, event: TaskVerified, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    if d.passed:
        return
    await store.record_failed_check(conn, town.code, d.task_id, d.request_id, event.id)
    await _task_changed(conn, town, d.task_id, event)


async def inspection_done(conn: asyncpg.Connection, event: InspectionDone, runtime: ServiceRuntime) -> None:
    town = runtime.town_of(event.town_code)
    d = event.data
    period = rules.period_of(d.finished_at, town.calendar.tz)
    await store.record_inspection(conn, town.code, d.inspection_id, period, d.officers, len(d.task_ids),
                                  d.finished_at, event.id)
    fact = rules.InspectionFact(d.inspection_id, period, tuple(d.officers), len(d.task_ids), str(event.id))
    per_officer: dict[str, tuple[str | None, str | None, float]] = {}
    for entry in rules.ledger([], [fact], town, town.rules.appraisal):
        module, seconded, points = per_officer.get(entry.staff_id, (entry.module, entry.seconded_unit, 0.0))
        per_officer[entry.staff_id] = (module, seconded, points + entry.points)
    await store.add_inspection_points(conn, [(town.code, d.inspection_id, staff, module, seconded, period, points)
                                             for staff, (module, seconded, points) in per_officer.items()])
    subjects: list[flows.Subject] = []
    for officer in d.officers:
        subjects.append(("staff", officer))
        if officer in town.staff:
            module = town.staff[officer].module
            subjects.append(("module", module))
            if town.modules[module].kind == "seconded":
                subjects.append(("seconded_unit", module))
    await flows.publish_scores(conn, town, subjects, period, event)


async def case_updated(conn: asyncpg.Connection, event: CaseUpdated, runtime: ServiceRuntime) -> None:
    """Consumed for completeness of the record; no figure depends on case steps yet."""
    runtime.town_of(event.town_code)


async def plan_published(conn: asyncpg.Connection, event: PlanPublished, runtime: ServiceRuntime) -> None:
    """Consumed for completeness of the record; no figure depends on plans yet."""
    runtime.town_of(event.town_code)


def register(runtime: ServiceRuntime) -> None:
    for event_type, handler in (
        (RequestFiled, request_filed), (RequestRated, request_rated), (TaskDispatched, task_dispatched),
        (TaskAccepted, task_accepted), (TaskReturned, task_returned), (TaskSupervised, task_supervised),
        (TaskCompleted, task_completed), (TaskExtended, task_extended), (TaskVerified, task_verified),
        (InspectionDone, inspection_done), (CaseUpdated, case_updated), (PlanPublished, plan_published),
    ):
        runtime.on(event_type)(handler)  # type: ignore[arg-type]
