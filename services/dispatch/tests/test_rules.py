"""Dispatch's rules without I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from dispatch import rules
from dispatch.models import Resolution
from townflow_shared.auth import Principal
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import DispatchRules, load_town
from townflow_shared.types import NOT_BLANK_PATTERN

TOWN = load_town(DEMO_TOWN_DIR)
TZ = ZoneInfo("Asia/Shanghai")
R = DispatchRules()


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)  # type: ignore[misc]


def test_assignment_goes_a_then_b_then_leader() -> None:
    post = TOWN.posts["mediation"]
    assert rules.assign(post, TOWN, set()) == rules.Assignment("s017", "A")
    assert rules.assign(post, TOWN, {"s017"}) == rules.Assignment("s018", "B")
    assert rules.assign(post, TOWN, {"s017", "s018"}) == rules.Assignment("s004", "leader")


def test_red_deadlines_are_in_clock_hours() -> None:
    due = rules.deadlines("red", TOWN.catalog["T003"], at(2026, 11, 21, 22), TOWN.calendar, R)
    assert due.respond_by == at(2026, 11, 21, 23)
    assert due.resolve_by == at(2026, 11, 22, 22)


def test_orange_takes_the_sooner_of_item_limit_and_three_working_days() -> None:
    long_item = TOWN.catalog["S004"]  # 15wd
    due = rules.deadlines("orange", long_item, at(2026, 11, 20, 10), TOWN.calendar, R)
    assert due.respond_by == at(2026, 11, 20, 14)
    assert due.resolve_by == at(2026, 11, 25, 17, 30)
    short_item = TOWN.catalog["E001"]  # 2wd
    assert rules.deadlines("orange", short_item, at(2026, 11, 20, 10), TOWN.calendar, R).resolve_by == \
        at(2026, 11, 24, 17, 30)


def test_yellow_uses_the_item_limit_across_a_holiday() -> None:
    due = rules.deadlines("yellow", TOWN.catalog["S003"], at(2026, 9, 30, 10), TOWN.calendar, R)
    assert due.respond_by == at(2026, 10, 8, 17, 30)
    assert due.resolve_by == at(2026, 10, 10, 17, 30)  # Saturday 调休 working day


def test_supervision_levels_fall_at_80_100_150_percent() -> None:
    start, end = at(2026, 11, 23, 10), at(2026, 11, 24, 10)
    moments = rules.supervision_moments(start, end, R)
    assert moments == {"reminder": start + timedelta(hours=19.2), "overdue": end,
                       "escalated": start + timedelta(hours=36)}
    assert rules.supervision_due(start, end, set(), at(2026, 11, 24, 5, 30), R) == ["reminder"]
    assert rules.supervision_due(start, end, {"reminder"}, at(2026, 11, 25, 0), R) == ["overdue", "escalated"]
    assert rules.supervision_due(start, end, {"reminder", "overdue", "escalated"}, at(2026, 12, 1), R) == []


def test_next_supervision_is_the_earliest_level_not_yet_sent() -> None:
    start, end = at(2026, 11, 23, 10), at(2026, 11, 24, 10)
    assert rules.next_supervision_at(start, end, set(), R) == start + timedelta(hours=19.2)
    assert rules.next_supervision_at(start, end, {"reminder"}, R) == end
    assert rules.next_supervision_at(start, end, {"reminder", "overdue"}, R) == start + timedelta(hours=36)
    assert rules.next_supervision_at(start, end, {"reminder", "overdue", "escalated"}, R) is None
    # A level missed while the service was down still comes first.
    assert rules.next_supervision_at(start, end, {"overdue"}, R) == start + timedelta(hours=19.2)


def test_an_extension_moves_the_next_supervision_and_keeps_what_was_sent() -> None:
    start, end = at(2026, 11, 23, 10), at(2026, 11, 24, 10)
    later = rules.extended_resolve_by(end, 2, TOWN.calendar)
    assert rules.next_supervision_at(start, later, {"reminder"}, R) == later


@pytest.mark.parametrize("hours", [0, 5, 19.2, 20, 24, 30, 36, 40, 100])
def test_after_publishing_what_is_due_the_next_supervision_lies_in_the_future(hours: float) -> None:
    """The loop relies on it: a task it has handled is not due again in the same pass."""
    start, end = at(2026, 11, 23, 10), at(2026, 11, 24, 10)
    now = start + timedelta(hours=hours)
    sent = set(rules.supervision_due(start, end, set(), now, R))
    following = rules.next_supervision_at(start, end, sent, R)
    assert following is None or following > now


def test_who_is_notified_climbs_the_ladder() -> None:
    post = TOWN.posts["welfare"]
    assert rules.notified_for("reminder", "s014", post, TOWN) == ["s014"]
    assert rules.notified_for("overdue", "s014", post, TOWN) == ["s014", "s002"]
    assert rules.notified_for("escalated", "s014", post, TOWN) == ["s030", "s031", "s000"]


def test_only_assignee_or_module_leader_may_act() -> None:
    post = TOWN.posts["welfare"]
    here = TOWN.code
    assert rules.may_act(Principal(sub="s014", roles=frozenset({"staff"}), town=here), "s014", post, TOWN)
    assert rules.may_act(Principal(sub="s002", roles=frozenset({"module_leader"}), town=here), "s014", post, TOWN)
    assert not rules.may_act(Principal(sub="s015", roles=frozenset({"staff"}), town=here), "s014", post, TOWN)


def test_the_same_staff_id_of_another_town_may_not_act() -> None:
    """Staff ids repeat across towns (SPEC §8): s014 of another town is not this task's assignee,
    nor is s002 of another town its module leader; the county's admin acts everywhere."""
    post = TOWN.posts["welfare"]
    assert not rules.may_act(Principal(sub="s014", roles=frozenset({"staff"}), town="321003112"), "s014", post, TOWN)
    assert not rules.may_act(Principal(sub="s002", roles=frozenset({"module_leader"}), town="321003112"),
                             "s014", post, TOWN)
    assert rules.may_act(Principal(sub="c001", roles=frozenset({"county_admin"})), "s014", post, TOWN)


@pytest.mark.parametrize(("action", "status", "ok"), [
    ("accept", "dispatched", True), ("accept", "accepted", False), ("complete", "rework", True),
    ("return", "completed", False), ("verify", "completed", True), ("redispatch", "dispatched", False),
])
def test_transitions(action: str, status: str, ok: bool) -> None:
    refusal = rules.transition_refusal(action, status)
    assert (refusal is None) is ok
    if refusal is not None:
        assert refusal.code.name == "task.status_forbids"
        assert refusal.params["action"] == action and refusal.params["status"] == status


@pytest.mark.parametrize("status", ["dispatched", "accepted", "rework"])
def test_an_extension_is_approved_while_the_task_is_open(status: str) -> None:
    assert rules.extension_approval_refusal(status) is None


@pytest.mark.parametrize("status", ["completed", "closed", "returned", "redispatched"])
def test_no_extension_is_approved_once_the_task_left_the_open_statuses(status: str) -> None:
    refusal = rules.extension_approval_refusal(status)
    assert refusal is not None and refusal.code.name == "extension.task_not_open"
    assert refusal.params == {"status": status, "allowed": "dispatched or accepted or rework"}


def test_return_window_counts_working_hours() -> None:
    assert rules.return_deadline(at(2026, 11, 20, 16, 30), TOWN.calendar, R) == at(2026, 11, 23, 9, 30)


def test_rework_gets_the_original_window_again() -> None:
    assert rules.rework_resolve_by(at(2026, 11, 25, 9), at(2026, 11, 23, 9), at(2026, 11, 24, 9)) == \
        at(2026, 11, 26, 9)


def test_extension_adds_working_days_to_resolve_by() -> None:
    assert rules.extended_resolve_by(at(2026, 11, 20, 17, 30), 2, TOWN.calendar) == at(2026, 11, 24, 17, 30)


def test_a_reopened_task_gets_its_original_window_again_from_now() -> None:
    start, due, now = at(2026, 11, 23, 9), at(2026, 11, 26, 17, 30), at(2026, 12, 1, 10)
    assert rules.reopened_window(now, start, due) == (now, now + (due - start))


def test_a_callback_rates_only_a_citizen_it_reached() -> None:
    assert rules.callback_rating_refusal(True, "satisfied") is None
    assert rules.callback_rating_refusal(False, None) is None
    required = rules.callback_rating_refusal(True, None)
    assert required is not None and (required.code.name, required.field) == ("callback.rating_required", "rating")
    unexpected = rules.callback_rating_refusal(False, "unsatisfied")
    assert unexpected is not None and (unexpected.code.name, unexpected.field) == ("callback.rating_unexpected", "rating")


def test_one_callback_per_closure_and_only_unsatisfied_reopens() -> None:
    assert rules.callback_refusal("closed", False) is None
    early = rules.callback_refusal("completed", False)
    assert early is not None and early.code.name == "callback.task_not_closed" and early.params == {"status": "completed"}
    twice = rules.callback_refusal("closed", True)
    assert twice is not None and twice.code.name == "callback.already_given"
    assert rules.callback_reopens(True, "unsatisfied") is True
    assert rules.callback_reopens(True, "basically_satisfied") is False
    assert rules.callback_reopens(False, None) is False


def test_a_merge_closes_any_task_not_yet_done() -> None:
    assert set(rules.MERGEABLE_STATUSES) == {"dispatched", "accepted", "rework", "returned", "suspended"}
    assert not rules.is_overdue("merged", at(2026, 11, 1), at(2026, 12, 1))  # never supervised again


def test_a_reply_for_the_citizen_must_hold_more_than_whitespace() -> None:
    assert rules.reply_refusal("已办结") is None
    for blank in ("", " ", "\t\n", "\u3000"):
        refusal = rules.reply_refusal(blank)
        assert refusal is not None and refusal.code.name == "task.reply_blank" and refusal.field == "reply"


def test_the_completion_body_requires_a_reply_and_names_the_field() -> None:
    body = {"resolution": "已办结", "reply": "已为您办理完毕"}
    assert Resolution.model_validate(body).reply == "已为您办理完毕"
    for bad, code in (({"resolution": "已办结"}, "missing"), ({**body, "reply": "   "}, "task.reply_blank"),
                      ({**body, "reply": "答" * (rules.REPLY_MAX_LENGTH + 1)}, "too_long")):
        with pytest.raises(ValidationError) as raised:
            Resolution.model_validate(bad)
        (error,) = raised.value.errors()
        assert error["loc"] == ("reply",) and error["type"] == code
    schema = Resolution.model_json_schema()
    assert "reply" in schema["required"]
    assert schema["allOf"] == [{"properties": {"reply": {"pattern": NOT_BLANK_PATTERN}}}]

# --- 挂起: the working time left at suspension, given back from the resumption -------------------
# 青禾镇 works 08:30-12:00 and 14:00-17:30 (7 h a day), Monday to Friday, and keeps the national holidays.
def test_the_working_time_left_skips_the_weekend() -> None:
    # Suspended Friday 2026-11-20 at 16:00 with a deadline of Tuesday 11-24 17:30:
    # Friday 1.5 h + Monday 7 h + Tuesday 7 h; Saturday and Sunday count nothing.
    left = rules.working_time_left(at(2026, 11, 20, 16), at(2026, 11, 24, 17, 30), TOWN.calendar)
    assert left == timedelta(hours=15, minutes=30)


def test_resumed_on_a_working_day_the_deadline_is_the_time_left_later() -> None:
    left = timedelta(hours=15, minutes=30)
    # Resumed Wednesday 11-25 at 10:00: 2 h that morning, 3.5 h that afternoon (5.5 h), Thursday 7 h
    # (12.5 h), then 3 h on Friday 11-27: 08:30-11:30.
    assert rules.resumed_resolve_by(at(2026, 11, 25, 10), left, TOWN.calendar) == at(2026, 11, 27, 11, 30)


def test_resumed_on_a_weekend_the_time_counts_from_monday_morning() -> None:
    # Resumed Saturday 11-28: nothing counts until Monday 11-30 08:30; 15.5 h end Wednesday 12-02 at 10:00.
    assert rules.resumed_resolve_by(at(2026, 11, 28, 15), timedelta(hours=15, minutes=30), TOWN.calendar) == \
        at(2026, 12, 2, 10)


def test_a_holiday_stops_the_clock_on_both_sides() -> None:
    # Suspended Wednesday 2026-09-30 at 17:00 with a deadline of Friday 10-09 12:00: 0.5 h on 09-30,
    # 10-01..07 are the National Day holiday, Thursday 10-08 7 h, Friday 10-09 3.5 h: 11 h.
    left = rules.working_time_left(at(2026, 9, 30, 17), at(2026, 10, 9, 12), TOWN.calendar)
    assert left == timedelta(hours=11)
    # Resumed on the holiday (10-03): the time counts from 10-08 08:30; 7 h that day, 4 h on 10-09
    # (3.5 h in the morning, 0.5 h from 14:00).
    assert rules.resumed_resolve_by(at(2026, 10, 3, 9), left, TOWN.calendar) == at(2026, 10, 9, 14, 30)


def test_a_suspension_approved_after_the_deadline_has_no_time_left() -> None:
    left = rules.working_time_left(at(2026, 11, 25, 9), at(2026, 11, 24, 17, 30), TOWN.calendar)
    assert left == timedelta(0)
    assert rules.resumed_resolve_by(at(2026, 11, 26, 10), left, TOWN.calendar) == at(2026, 11, 26, 10)


def test_the_supervision_window_moves_with_its_deadline() -> None:
    start, due, new_due = at(2026, 11, 23, 9), at(2026, 11, 24, 17, 30), at(2026, 11, 27, 11, 30)
    new_start = rules.resumed_window_start(start, due, new_due)
    assert new_due - new_start == due - start
    assert rules.supervision_moments(new_start, new_due, R)["overdue"] == new_due


@pytest.mark.parametrize(("status", "ok"), [("dispatched", True), ("accepted", True), ("rework", True),
                                            ("completed", False), ("closed", False), ("suspended", False),
                                            ("returned", False), ("merged", False)])
def test_a_task_is_suspended_only_while_open(status: str, ok: bool) -> None:
    assert (rules.transition_refusal("suspend", status) is None) is ok
    assert (rules.suspension_approval_refusal(status) is None) is ok


def test_a_suspended_task_is_neither_open_nor_overdue() -> None:
    assert "suspended" not in rules.OPEN_STATUSES
    assert not rules.is_overdue("suspended", at(2026, 11, 1), at(2026, 12, 1))


def test_a_located_territorial_item_goes_to_the_post_of_its_cell() -> None:
    town = load_county(DEMO_COUNTY_DIR).towns["321003107"]  # 白鹭镇: the 网格员 of 鹭洲村 holds its cells
    road, dispute, stall = town.catalog["T001"], town.catalog["T004"], town.catalog["E001"]
    luzhou, hubin = "321003107001002", "321003107002002"
    assert rules.post_of_matter(town, road, luzhou).code == "grid-luzhou"
    assert rules.post_of_matter(town, road, hubin).code == road.post  # no post holds 湖滨村's cells
    assert rules.post_of_matter(town, road, None).code == road.post
    assert not dispute.located and rules.post_of_matter(town, dispute, luzhou).code == dispute.post
    assert rules.post_of_matter(town, stall, luzhou).code == stall.post  # enforcement keeps its officers
