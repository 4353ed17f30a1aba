"""Notify's flows: an event becomes deliveries, recorded in the consumer's one transaction with
the event's inbox row, so however often the event arrives (a redelivery, a rewind, another
replica) its deliveries are recorded once. Sending is the sender loop's (scheduled.py)."""

from __future__ import annotations

from collections.abc import Sequence

from townflow_shared.events import (
    Envelope,
    PlanPublished,
    TaskCallback,
    TaskDispatched,
    TaskReturned,
    TaskSupervised,
)
from townflow_shared.scope import town_of_event

from . import rules
from .contacts import NO_CONTACTS
from .deps import Deps
from .store import Store


async def _record(deps: Deps, store: Store, event: Envelope, notices: Sequence[rules.Notice]) -> None:
    contacts = deps.contacts.get(event.town_code, NO_CONTACTS)
    await store.add_deliveries(event.id, event.type, event.town_code,
                               rules.deliveries_of(notices, contacts, event.town_code))


async def task_dispatched(deps: Deps, store: Store, event: TaskDispatched) -> None:
    """The assignee of a new or redispatched task is told; the task is remembered for the later
    events that name only it."""
    town = town_of_event(deps.county, event.town_code)
    await store.remember_task(town.code, rules.known_task(event.data))
    await _record(deps, store, event, rules.dispatched_notices(event.data, town))


async def task_supervised(deps: Deps, store: Store, event: TaskSupervised) -> None:
    town = town_of_event(deps.county, event.town_code)
    task = await store.known_task(event.data.task_id)
    await _record(deps, store, event, rules.supervised_notices(event.data, task, town))


async def task_returned(deps: Deps, store: Store, event: TaskReturned) -> None:
    town = town_of_event(deps.county, event.town_code)
    task = await store.known_task(event.data.task_id)
    await _record(deps, store, event, rules.returned_notices(event.data, task, town))


async def task_called_back(deps: Deps, store: Store, event: TaskCallback) -> None:
    town = town_of_event(deps.county, event.town_code)
    if event.data.reopened:
        task = await store.known_task(event.data.task_id)
        await _record(deps, store, event, rules.reopened_notices(event.data, task, town))


async def plan_published(deps: Deps, store: Store, event: PlanPublished) -> None:
    town = town_of_event(deps.county, event.town_code)
    await _record(deps, store, event, rules.plan_notices(event.data, town))
