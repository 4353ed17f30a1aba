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
    assert folded.completions.count == 3
    assert folded.first_completed_at == early.data.completed_at
    assert folded.last_completed_at == late.data.completed_at
    assert folded.last_on_time is True  # of two at the latest moment, the one handled last
    assert folded.completions.first_event == late.id  # the first handled names the completion in the ledger
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


def test_the_latest_merge_event_of_a_task_decides_whatever_order_they_arrive_in() -> None:
    batch = FactBatch()
    merge, undo, again = (completed(T0, True) for _ in range(3))
    batch.task_merged(KEY, "r1", False, T0 + timedelta(days=1), batch.cause(undo, {}))
    batch.task_merged(KEY, "r1", True, T0, batch.cause(merge, {}))  # earlier: does not win
    life = batch.lifecycles[KEY]
    assert (life.merged, life.merge_at, life.merge_event) == (False, T0 + timedelta(days=1), undo.id)
    batch.task_merged(KEY, "r1", True, T0 + timedelta(days=1), batch.cause(again, {}))  # same moment: the last
    assert (life.merged, life.merge_event) == (True, again.id)
    assert KEY in batch.task_events  # its row is made even before its dispatch arrives


def test_callback_ratings_fold_to_the_latest_and_reopenings_add_up() -> None:
    batch = FactBatch()
    later, earlier, reopen1, reopen2 = (completed(T0, True) for _ in range(4))
    matter = ("321003104", "r1")
    batch.matter_called_back(matter, "satisfied", T0 + timedelta(days=2), batch.cause(later, {}))
    batch.matter_called_back(matter, "unsatisfied", T0, batch.cause(earlier, {}))
    assert batch.called_back[matter] == ("satisfied", T0 + timedelta(days=2), later.id)
    batch.task_reopened(KEY, "r1", batch.cause(reopen1, {}))
    batch.task_reopened(KEY, "r1", batch.cause(reopen2, {}))
    batch.check_passed(KEY, "r1", batch.cause(reopen2, {}))
    life = batch.lifecycles[KEY]
    assert (life.reopens.count, life.reopens.first_event, life.passed_checks) == (2, reopen1.id, 1)


def test_suspensions_add_up_and_the_first_one_stands_for_the_ledger() -> None:
    batch = FactBatch()
    first, second = completed(T0, True), completed(T0, True)
    batch.task_suspended(KEY, "r1", batch.cause(first, {}))
    batch.task_suspended(KEY, "r1", batch.cause(second, {}))
    life = batch.lifecycles[KEY]
    assert (life.suspensions.count, life.suspensions.first_event) == (2, first.id)
    assert KEY in batch.task_events and len(batch.task_causes[KEY]) == 2
