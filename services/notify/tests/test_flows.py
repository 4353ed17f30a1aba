"""Notify's flows on a fake store: an event becomes its deliveries, once per person and channel."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from notify import flows, rules
from notify.contacts import Endpoint, TownContacts
from notify.deps import Deps
from notify.digest import KnownCase
from notify.settings import NotifySettings
from services.notify.tests.test_rules import AT, dispatched
from townflow_shared.clock import Clock
from townflow_shared.county import load_county
from townflow_shared.db import Database
from townflow_shared.dlq import Rejected
from townflow_shared.events import (
    TaskAccepted,
    TaskAcceptedData,
    TaskCallback,
    TaskCallbackData,
    TaskCompleted,
    TaskCompletedData,
    TaskDispatched,
    TaskExtended,
    TaskExtendedData,
    TaskReturned,
    TaskReturnedData,
    TaskSupervised,
    TaskVerified,
    TaskVerifiedData,
    new_event,
)
from townflow_shared.settings import DEMO_TOWN_DIR

COUNTY = load_county(DEMO_TOWN_DIR)
TOWN = next(iter(COUNTY.towns))


class FakeStore:
    def __init__(self) -> None:
        self.tasks: dict[str, rules.KnownTask] = {}
        self.deliveries: dict[tuple[uuid.UUID, str, str], rules.Delivery] = {}
        self.cases: dict[str, KnownCase] = {}
        self.closed: set[str] = set()

    async def remember_task(self, town_code: str, task: rules.KnownTask) -> None:
        self.tasks[task.task_id] = task

    async def known_task(self, task_id: str) -> rules.KnownTask | None:
        return self.tasks.get(task_id)

    async def set_task_state(self, task_id: str, state: str | None, resolve_by: datetime | None = None,
                             respond_by: datetime | None = None) -> None:
        if (task := self.tasks.get(task_id)) is not None:
            self.tasks[task_id] = dataclasses.replace(task, state=state or task.state,
                                                      resolve_by=resolve_by or task.resolve_by,
                                                      respond_by=respond_by or task.respond_by)

    async def remember_case(self, town_code: str, case: KnownCase) -> None:
        self.cases[case.case_id] = case

    async def close_case(self, case_id: str) -> None:
        self.closed.add(case_id)

    async def add_deliveries(self, event_id: uuid.UUID, event_type: str, town_code: str,
                             deliveries: Sequence[rules.Delivery]) -> None:
        for d in deliveries:
            self.deliveries.setdefault((event_id, d.recipient, d.channel), d)


DEPS = Deps(settings=NotifySettings(), county=COUNTY, clock=Clock(), database=Database(), contacts={
    TOWN: TownContacts(default_channels=[Endpoint(robot="duty")], people=[
        {"staff": "s030", "channels": [{"email": "s030@qinghe.example.cn"}]}])})  # type: ignore[list-item]


def event(kind: type, data: object, town: str = TOWN) -> object:
    return new_event(kind, data, source="dispatch", town_code=town, subject="t1", correlation_id="r1", time=AT)  # type: ignore[arg-type]


def test_a_dispatched_task_is_remembered_and_its_assignee_told_on_each_channel() -> None:
    store = FakeStore()
    asyncio.run(flows.task_dispatched(DEPS, store, event(TaskDispatched, dispatched())))  # type: ignore[arg-type]
    assert [(r, c) for _, r, c in store.deliveries] == [("s010", f"robot:{TOWN}/duty")]
    assert store.tasks["t1"].assignee == "s010"


def test_a_return_tells_the_command_centre_on_duty_where_each_is_reached() -> None:
    store = FakeStore()
    asyncio.run(flows.task_dispatched(DEPS, store, event(TaskDispatched, dispatched())))  # type: ignore[arg-type]
    returned = event(TaskReturned, TaskReturnedData(task_id="t1", request_id="r1", by="s010", reason="不属本岗",
                                                    returned_at=AT))
    asyncio.run(flows.task_returned(DEPS, store, returned))  # type: ignore[arg-type]
    told = {(r, c) for e, r, c in store.deliveries if e == returned.id}  # type: ignore[attr-defined]
    assert told == {("s030", "email:s030@qinghe.example.cn"), ("s031", f"robot:{TOWN}/duty")}


def test_an_escalation_of_a_known_task_reaches_the_whole_ladder() -> None:
    store = FakeStore()
    asyncio.run(flows.task_dispatched(DEPS, store, event(TaskDispatched, dispatched())))  # type: ignore[arg-type]
    escalated = event(TaskSupervised, {"task_id": "t1", "request_id": "r1", "level": "escalated",
                                       "notified": ["s030"], "at": datetime(2026, 11, 24, tzinfo=UTC)})
    asyncio.run(flows.task_supervised(DEPS, store, TaskSupervised.model_validate(  # type: ignore[arg-type]
        escalated.model_dump())))  # type: ignore[attr-defined]
    assert {r for e, r, _ in store.deliveries if e == escalated.id} == {  # type: ignore[attr-defined]
        "s010", "s005", "s030", "s031", "s000"}


def test_an_event_of_a_town_not_served_is_poison() -> None:
    with pytest.raises(Rejected):
        asyncio.run(flows.task_dispatched(DEPS, FakeStore(), event(TaskDispatched, dispatched(), "999999999")))  # type: ignore[arg-type]


def test_a_reopened_task_tells_its_assignee_and_a_satisfied_callback_nobody() -> None:
    store = FakeStore()
    asyncio.run(flows.task_dispatched(DEPS, store, event(TaskDispatched, dispatched())))  # type: ignore[arg-type]
    for reopened in (False, True):
        callback = TaskCallback.model_validate(event(TaskCallback, TaskCallbackData(  # type: ignore[attr-defined]
            task_id="t1", request_id="r1", reached=True, rating="unsatisfied" if reopened else "satisfied",
            note="路灯仍不亮" if reopened else "", by="s030", at=AT, reopened=reopened,
            resolve_by=AT if reopened else None)).model_dump())
        asyncio.run(flows.task_called_back(DEPS, store, callback))
        told = [(r, store.deliveries[(e, r, c)].title) for e, r, c in store.deliveries if e == callback.id]
        assert told == ([("s010", "重办：城乡居民医保参保")] if reopened else [])


def test_the_tasks_later_events_keep_its_state_for_the_digest() -> None:
    store = FakeStore()
    asyncio.run(flows.task_dispatched(DEPS, store, event(TaskDispatched, dispatched())))  # type: ignore[arg-type]
    assert (store.tasks["t1"].state, store.tasks["t1"].resolve_by) == ("dispatched", AT)
    later = datetime(2026, 11, 30, 9, tzinfo=UTC)
    steps: list[tuple[object, object, str]] = [
        (flows.task_accepted, event(TaskAccepted, TaskAcceptedData(task_id="t1", request_id="r1", by="s010",
                                                                   accepted_at=AT)), "accepted"),
        (flows.task_extended, event(TaskExtended, TaskExtendedData(task_id="t1", request_id="r1", days=5, reason="r",
                                                                   approved_by="s030", resolve_by=later)), "accepted"),
        (flows.task_completed, event(TaskCompleted, TaskCompletedData(
            task_id="t1", request_id="r1", by="s010", resolution="ok", completed_at=AT, on_time=True)), "closed"),
        (flows.task_verified, event(TaskVerified, TaskVerifiedData(task_id="t1", request_id="r1", passed=False,
                                                                   note="没修好", by="s030", at=AT,
                                                                   resolve_by=later)), "rework"),
    ]
    for flow, happened, state in steps:
        asyncio.run(flow(DEPS, store, happened))  # type: ignore[operator]
        assert store.tasks["t1"].state == state
    assert store.tasks["t1"].resolve_by == later
