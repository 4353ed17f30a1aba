"""A batch's facts folded per task as the one-by-one statements would have left them."""

from __future__ import annotations

from datetime import datetime, timedelta

from appraisal.facts import FactBatch
from townflow_shared.events import TaskCompleted, TaskCompletedData, new_event

T0 = datetime.fromisoformat("2026-11-23T09:00:00+08:00")
KEY = ("321003104", "t1")


def completed(at: datetime, on_time: bool) -> TaskCompleted:
    return new_event(TaskCompleted, TaskCompletedData(task_id="t1", request_id="r1", by="s014", resolution="办结",
                                                      completed_at=at, on_time=on_time),
                     source="dispatch", town_code=KEY[0], subject="r1", correlation_id="r1", time=at)


def test_completions_fold_to_the_latest_ones_timeliness_and_the_first_ones_event() -> None:
    batch = FactBatch()
    late, early, same_moment = (completed(T0 + timedelta(days=4), False), completed(T0 + timedelta(days=1), True),
                                completed(T0 + timedelta(days=4), True))
    for event in (late, early, same_moment):  # arrival order, not time order
        batch.task_completed(KEY, "r1", event.data.completed_at, event.data.on_time, batch.cause(event, {}))
    folded = batch.task_events[KEY]
    assert folded.completions == 3
    assert folded.first_completed_at == early.data.completed_at
    assert folded.last_completed_at == late.data.completed_at
    assert folded.last_on_time is True  # of two at the latest moment, the one handled last
    assert folded.completed_event == late.id  # the first handled names the completion in the ledger
    assert [c.event.id for c in batch.task_causes[KEY]] == [late.id, early.id, same_moment.id]


def test_first_acceptance_and_supervision_events_stand() -> None:
    batch = FactBatch()
    events = [completed(T0, True) for _ in range(3)]  # any envelopes: only their ids are kept
    batch.task_accepted(KEY, "r1", T0 + timedelta(hours=2), batch.cause(events[0], {}))
    batch.task_accepted(KEY, "r1", T0 + timedelta(hours=1), batch.cause(events[1], {}))
    batch.task_overdue(KEY, "r1", batch.cause(events[1], {}))
    batch.task_overdue(KEY, "r1", batch.cause(events[2], {}))
    folded = batch.task_events[KEY]
    assert folded.accepted_at == T0 + timedelta(hours=1)  # the earliest acceptance
    assert folded.accepted_event == events[0].id and folded.overdue_event == events[1].id
    assert [c.order for c in batch.task_causes[KEY]] == [1, 2, 3, 4]


def test_a_later_rating_of_a_matter_replaces_an_earlier_one() -> None:
    batch = FactBatch()
    first, second = completed(T0, True), completed(T0, True)
    batch.matter_rated(("321003104", "r1"), "unsatisfied", T0, batch.cause(first, {}))
    batch.matter_rated(("321003104", "r1"), "satisfied", T0 + timedelta(hours=1), batch.cause(second, {}))
    assert batch.rated[("321003104", "r1")] == ("satisfied", T0 + timedelta(hours=1), second.id)
