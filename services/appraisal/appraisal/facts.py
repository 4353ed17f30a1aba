"""The facts one consumer batch of events carries, folded per matter, task and inspection in the
order the events arrived, so that one set-based statement per kind applies them exactly as the
events would have been applied one by one (a replay in any batching gives the same scores).
Pure data: no I/O, no clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from townflow_shared.events import Envelope

from .rules import SubjectType

TaskKey = tuple[str, str]        # (town_code, task_id)
MatterKey = tuple[str, str]      # (town_code, request_id)
SubjectKey = tuple[str, SubjectType, str, str]  # (town_code, subject_type, subject_id, period)


@dataclass(frozen=True)
class Cause:
    """An event that changed figures, where it came in the batch, under whose trace."""
    order: int
    event: Envelope
    trace: dict[str, str]


@dataclass
class Tally:
    """Facts of one kind about a task: how many the batch brings, and the first, which the ledger
    names (the statements add the count and keep the event already stored)."""
    count: int = 0
    first_event: uuid.UUID | None = None

    def add(self, cause: Cause) -> None:
        self.count += 1
        self.first_event = self.first_event or cause.event.id


@dataclass
class TaskEvents:
    """What a batch's accepted, completed, supervised, extended, verified and redispatched events
    say about one task, folded as the one-by-one statements would: the earliest acceptance and
    first completion, the first event of each kind for the ledger, counts added, the timeliness
    of the latest completion (a later-arriving one of the same moment wins)."""
    request_id: str
    accepted_at: datetime | None = None
    accepted_event: uuid.UUID | None = None
    completions: Tally = field(default_factory=Tally)
    first_completed_at: datetime | None = None
    last_completed_at: datetime | None = None
    last_on_time: bool | None = None
    overdue_event: uuid.UUID | None = None
    escalated_event: uuid.UUID | None = None
    extensions: Tally = field(default_factory=Tally)
    failed_checks: Tally = field(default_factory=Tally)  # the first failed check's event is the rework's
    invalid_return_event: uuid.UUID | None = None  # the command centre marked its return invalid


@dataclass
class TaskLifecycle:
    """What a batch's merge, closure-check-passed and callback events say about one task (issue
    #18): the latest merge state by its moment (of two at one moment, the one that came last),
    checks passed and reopenings (重办) added, the first reopening for the ledger."""
    request_id: str
    merged: bool | None = None
    merge_at: datetime | None = None
    merge_event: uuid.UUID | None = None
    passed_checks: int = 0
    reopens: Tally = field(default_factory=Tally)
    suspensions: Tally = field(default_factory=Tally)


@dataclass(frozen=True)
class InspectionFact:
    town_code: str
    inspection_id: str
    period: str
    officers: list[str]
    task_count: int
    finished_at: datetime
    event_id: uuid.UUID


@dataclass(frozen=True)
class OfficerPoints:
    """An officer's points of one inspection, with the subjects they count for."""
    module: str | None
    seconded_unit: str | None
    period: str
    points: float


@dataclass
class FactBatch:
    filed: dict[MatterKey, tuple[str, datetime]] = field(default_factory=dict)
    located: dict[MatterKey, tuple[str, str, str]] = field(default_factory=dict)  # period, grid cell, item (#30)
    rated: dict[MatterKey, tuple[str, datetime, uuid.UUID]] = field(default_factory=dict)
    called_back: dict[MatterKey, tuple[str, datetime, uuid.UUID]] = field(default_factory=dict)
    dispatched: dict[TaskKey, dict[str, Any]] = field(default_factory=dict)
    task_events: dict[TaskKey, TaskEvents] = field(default_factory=dict)
    lifecycles: dict[TaskKey, TaskLifecycle] = field(default_factory=dict)
    inspections: dict[tuple[str, str], InspectionFact] = field(default_factory=dict)
    officer_points: dict[tuple[str, str, str], OfficerPoints] = field(default_factory=dict)
    # Why each figure changed: by task, by matter (a rating reaches the matter's standing tasks),
    # and by subject directly (an inspection's officers).
    task_causes: dict[TaskKey, list[Cause]] = field(default_factory=dict)
    matter_causes: dict[MatterKey, list[Cause]] = field(default_factory=dict)
    subject_causes: dict[SubjectKey, list[Cause]] = field(default_factory=dict)
    _arrived: int = 0

    def cause(self, event: Envelope, trace: dict[str, str]) -> Cause:
        self._arrived += 1
        return Cause(self._arrived, event, trace)

    def touches_task(self, key: TaskKey, cause: Cause) -> None:
        self.task_causes.setdefault(key, []).append(cause)

    def _events_of(self, key: TaskKey, request_id: str) -> TaskEvents:
        found = self.task_events.get(key)  # not setdefault: made once, not for every fact
        if found is None:
            found = self.task_events[key] = TaskEvents(request_id)
        return found

    def _task_fact(self, key: TaskKey, request_id: str, cause: Cause) -> TaskEvents:
        """The task's row, for a fact its event brings: the event is a cause of the task's figures."""
        self.touches_task(key, cause)
        return self._events_of(key, request_id)

    def _lifecycle_fact(self, key: TaskKey, request_id: str, cause: Cause) -> TaskLifecycle:
        self._task_fact(key, request_id, cause)  # record_task_events makes the task's row from its first fact
        return self.lifecycles.setdefault(key, TaskLifecycle(request_id))

    # --- matters ---------------------------------------------------------------------------
    def matter_filed(self, key: MatterKey, village: str, filed_at: datetime) -> None:
        self.filed[key] = (village, filed_at)

    def matter_located(self, key: MatterKey, period: str, cell: str, item_code: str) -> None:
        """Where a located matter was filed, for the hotspots (issue #30)."""
        self.located[key] = (period, cell, item_code)

    def matter_rated(self, key: MatterKey, rating: str, rated_at: datetime, cause: Cause) -> None:
        self.rated[key] = (rating, rated_at, cause.event.id)  # a later rating replaces an earlier one
        self.matter_causes.setdefault(key, []).append(cause)

    def matter_called_back(self, key: MatterKey, rating: str, at: datetime, cause: Cause) -> None:
        """A reached callback's rating: the latest by its moment stands (the citizen's own, kept
        apart, wins over any)."""
        before = self.called_back.get(key)
        if before is None or at >= before[1]:
            self.called_back[key] = (rating, at, cause.event.id)
        self.matter_causes.setdefault(key, []).append(cause)

    # --- tasks -----------------------------------------------------------------------------
    def task_dispatched(self, key: TaskKey, row: dict[str, Any], cause: Cause) -> None:
        self.dispatched[key] = row
        self.touches_task(key, cause)

    def return_invalid(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        self._task_fact(key, request_id, cause).invalid_return_event = cause.event.id

    def task_known(self, key: TaskKey, request_id: str) -> None:
        """Facts of a task may arrive before its dispatch: its row exists from the first of them."""
        self._events_of(key, request_id)

    def task_accepted(self, key: TaskKey, request_id: str, at: datetime, cause: Cause) -> None:
        e = self._task_fact(key, request_id, cause)
        e.accepted_at = at if e.accepted_at is None else min(e.accepted_at, at)
        e.accepted_event = e.accepted_event or cause.event.id

    def task_completed(self, key: TaskKey, request_id: str, at: datetime, on_time: bool, cause: Cause) -> None:
        e = self._task_fact(key, request_id, cause)
        e.completions.add(cause)
        e.first_completed_at = at if e.first_completed_at is None else min(e.first_completed_at, at)
        if e.last_completed_at is None or at >= e.last_completed_at:
            e.last_completed_at, e.last_on_time = at, on_time

    def task_overdue(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        e = self._task_fact(key, request_id, cause)
        e.overdue_event = e.overdue_event or cause.event.id

    def task_escalated(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        e = self._task_fact(key, request_id, cause)
        e.escalated_event = e.escalated_event or cause.event.id

    def task_extended(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        self._task_fact(key, request_id, cause).extensions.add(cause)

    def check_failed(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        self._task_fact(key, request_id, cause).failed_checks.add(cause)

    def task_merged(self, key: TaskKey, request_id: str, merged: bool, at: datetime, cause: Cause) -> None:
        life = self._lifecycle_fact(key, request_id, cause)
        if life.merge_at is None or at >= life.merge_at:
            life.merged, life.merge_at, life.merge_event = merged, at, cause.event.id

    def check_passed(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        self._lifecycle_fact(key, request_id, cause).passed_checks += 1

    def task_reopened(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        self._lifecycle_fact(key, request_id, cause).reopens.add(cause)

    def task_suspended(self, key: TaskKey, request_id: str, cause: Cause) -> None:
        """挂起: each approved suspension added; the first for the ledger."""
        self._lifecycle_fact(key, request_id, cause).suspensions.add(cause)

    # --- inspections -----------------------------------------------------------------------
    def inspection_done(self, fact: InspectionFact, points: dict[str, OfficerPoints],
                        subjects: list[SubjectKey], cause: Cause) -> None:
        self.inspections.setdefault((fact.town_code, fact.inspection_id), fact)  # the first one recorded stands
        for staff_id, officer in points.items():
            self.officer_points.setdefault((fact.town_code, fact.inspection_id, staff_id), officer)
        for subject in subjects:
            self.subject_causes.setdefault(subject, []).append(cause)
