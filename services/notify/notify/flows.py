"""Notify's flows: an event becomes deliveries, recorded in the consumer's one transaction with
the event's inbox row, so however often the event arrives (a redelivery, a rewind, another
replica) its deliveries are recorded once. Sending is the sender loop's (scheduled.py). The task's
and case's other events keep what notify knows of their state and deadlines (the daily digest)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from townflow_shared.events import (
    CaseFlagged,
    CaseUpdated,
    Envelope,
    ExtensionRequested,
    PlanPublished,
    SuspensionRequested,
    TaskAccepted,
    TaskCallback,
    TaskCompleted,
    TaskDispatched,
    TaskExtended,
    TaskMerged,
    TaskResumed,
    TaskReturned,
    TaskSupervised,
    TaskSuspended,
    TaskVerified,
)
from townflow_shared.scope import town_of_event
from townflow_shared.town import Town

from . import rules
from .contacts import NO_CONTACTS
from .deps import Deps
from .digest import KnownCase
from .rules import KnownTask
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


class _OfTask(Protocol):
    @property
    def task_id(self) -> str: ...


D = TypeVar("D", bound=_OfTask)


async def _about_task(deps: Deps, store: Store, event: Envelope, data: D,
                      notices: Callable[[D, KnownTask | None, Town], Sequence[rules.Notice]]) -> None:
    """An event naming a task: whom `notices` names are told, with what notify remembers of the
    task (its item, holder and deadlines; None for a task dispatched before notify ran)."""
    town = town_of_event(deps.county, event.town_code)
    task = await store.known_task(data.task_id)
    await _record(deps, store, event, notices(data, task, town))


async def task_supervised(deps: Deps, store: Store, event: TaskSupervised) -> None:
    await _about_task(deps, store, event, event.data, rules.supervised_notices)


async def task_returned(deps: Deps, store: Store, event: TaskReturned) -> None:
    town = town_of_event(deps.county, event.town_code)
    task = await store.known_task(event.data.task_id)
    await store.set_task_state(event.data.task_id, "closed")  # the redispatch is a new task
    await _record(deps, store, event, rules.returned_notices(event.data, task, town))


async def task_called_back(deps: Deps, store: Store, event: TaskCallback) -> None:
    town = town_of_event(deps.county, event.town_code)
    if event.data.reopened:
        task = await store.known_task(event.data.task_id)
        await store.set_task_state(event.data.task_id, "rework", event.data.resolve_by)
        await _record(deps, store, event, rules.reopened_notices(event.data, task, town))


async def plan_published(deps: Deps, store: Store, event: PlanPublished) -> None:
    town = town_of_event(deps.county, event.town_code)
    await _record(deps, store, event, rules.plan_notices(event.data, town))


async def extension_requested(deps: Deps, store: Store, event: ExtensionRequested) -> None:
    await _about_task(deps, store, event, event.data, rules.extension_requested_notices)


async def suspension_requested(deps: Deps, store: Store, event: SuspensionRequested) -> None:
    await _about_task(deps, store, event, event.data, rules.suspension_requested_notices)


async def case_flagged(deps: Deps, store: Store, event: CaseFlagged) -> None:
    town = town_of_event(deps.county, event.town_code)
    data = event.data
    await store.remember_case(town.code, KnownCase(data.case_id, data.item_code, data.target,
                                                   tuple(rules.case_recipients(data, town)), data.decision_due))
    await _record(deps, store, event, rules.case_flagged_notices(data, town))


# --- what the digest knows: each task's and case's state, from their later events ------------------
async def task_accepted(deps: Deps, store: Store, event: TaskAccepted) -> None:
    await store.set_task_state(event.data.task_id, "accepted")


async def task_completed(deps: Deps, store: Store, event: TaskCompleted) -> None:
    await store.set_task_state(event.data.task_id, "closed")


async def task_extended(deps: Deps, store: Store, event: TaskExtended) -> None:
    await store.set_task_state(event.data.task_id, None, event.data.resolve_by)


async def task_verified(deps: Deps, store: Store, event: TaskVerified) -> None:
    """A failed closure check sends the task back to its holder as rework (重办)."""
    if not event.data.passed:
        await store.set_task_state(event.data.task_id, "rework", event.data.resolve_by)


async def task_merged(deps: Deps, store: Store, event: TaskMerged) -> None:
    data = event.data
    state = rules.state_after(data.status) if data.reversed else "closed"
    await store.set_task_state(data.task_id, state, data.resolve_by, data.respond_by)


async def task_suspended(deps: Deps, store: Store, event: TaskSuspended) -> None:
    await store.set_task_state(event.data.task_id, "suspended")  # no deadline runs: out of the digest


async def task_resumed(deps: Deps, store: Store, event: TaskResumed) -> None:
    await store.set_task_state(event.data.task_id, rules.state_after(event.data.status), event.data.resolve_by)


async def case_updated(deps: Deps, store: Store, event: CaseUpdated) -> None:
    if event.data.step in ("decided", "closed", "transferred"):
        await store.close_case(event.data.case_id)
