"""Appraisal's rules without I/O."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appraisal import rules
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import AppraisalRules, load_town

TOWN = load_town(DEMO_TOWN_DIR)
R = AppraisalRules()
BASE = rules.TaskFact(task_id="t", period="2026-11", assignee="s014", module="social", village="V01",
                      seconded_unit=None, colour="yellow", difficulty=1.0, responded=True, completions=1,
                      failed_checks=0, last_on_time=True, extensions=0, superseded=False,
                      returned_invalid=False, completed_event="e1")


def task(n: int, **changes: object) -> rules.TaskFact:
    return replace(BASE, task_id=f"t{n}", **changes)  # type: ignore[arg-type]


def test_resolution_rate_is_resolved_on_time_over_dispatched() -> None:
    tasks = [task(n) for n in range(137)] + [task(1000 + n, last_on_time=False) for n in range(10)] + \
            [task(2000 + n, completions=0, last_on_time=None) for n in range(5)]
    r = rules.rates(rules.counts(tasks))
    assert r["resolution"] == 137 / 152
    assert r["satisfaction"] is None  # nobody rated: null, not 0


def test_a_redispatched_matter_counts_once_against_the_final_assignee() -> None:
    old = task(1, assignee="s014", superseded=True, completions=0, last_on_time=None, returned_invalid=True,
               invalid_return_event="e9")
    new = task(2, assignee="s042")
    c = rules.counts([old, new])
    assert c.dispatched == 1
    entries = rules.ledger([old, new], [], TOWN, R)
    assert [(e.staff_id, e.reason, e.points) for e in entries if e.staff_id == "s014"] == [("s014", "invalid_return", -3)]


def test_failed_closure_check_undoes_resolution_until_completed_again() -> None:
    assert not task(1, completions=1, failed_checks=1).resolved
    assert task(1, completions=2, failed_checks=1).resolved
    c = rules.counts([task(1, completions=2, failed_checks=1), task(2)])
    assert rules.rates(c)["rework"] == 0.5


def test_composite_renormalises_the_weights_of_null_rates() -> None:
    assert rules.composite({"response": 1.0, "resolution": 0.5, "satisfaction": None}, R) == \
        pytest.approx(100 * (0.30 * 1.0 + 0.35 * 0.5) / 0.65)
    assert rules.composite({"response": None, "resolution": None, "satisfaction": None}, R) is None
    assert rules.composite({"response": 1.0, "resolution": 1.0, "satisfaction": 1.0}, R) == 100


def test_points_follow_difficulty_colour_and_timeliness() -> None:
    red = task(1, colour="red", difficulty=1.6, rating="satisfied", rated_event="r1")
    late = task(2, last_on_time=False, overdue_event="o", escalated_event="x", rating="unsatisfied", rated_event="r2")
    entries = rules.ledger([red, late], [], TOWN, R)
    by = {(e.ref, e.reason): e.points for e in entries}
    assert by[("t1", "completed")] == pytest.approx(10 * 1.6 * 1.5)
    assert by[("t1", "on_time")] == 2 and by[("t1", "satisfied")] == 2
    assert ("t2", "on_time") not in by
    assert by[("t2", "overdue")] == -5 and by[("t2", "escalated")] == -10 and by[("t2", "unsatisfied")] == -5


def test_inspection_points_for_each_officer() -> None:
    entries = rules.ledger([], [rules.InspectionFact("i1", "2026-11", ("s026", "s040"), 3, "e")], TOWN, R)
    assert sorted((e.staff_id, e.reason, e.points) for e in entries) == [
        ("s026", "combined_extra_tasks", 6), ("s026", "inspection_officer", 5),
        ("s040", "combined_extra_tasks", 6), ("s040", "inspection_officer", 5)]
    assert {e.seconded_unit for e in entries if e.staff_id == "s040"} == {"land"}


@pytest.mark.parametrize(("overdue", "satisfied", "rated", "escalated_red", "levels"), [
    (2, 0, 0, 0, set()),
    (3, 0, 0, 0, {"reminder"}),
    (5, 0, 0, 0, {"reminder", "talk"}),
    (0, 3, 5, 0, {"talk"}),            # 60% over 5 ratings
    (0, 3, 4, 0, set()),               # too few ratings to judge
    (8, 0, 0, 0, {"reminder", "talk", "accountability"}),
    (0, 0, 0, 1, {"accountability"}),
])
def test_accountability_ladder(overdue: int, satisfied: int, rated: int, escalated_red: int, levels: set[str]) -> None:
    c = rules.Counts(overdue=overdue, satisfied=satisfied, rated=rated, escalated_red=escalated_red)
    assert set(rules.alert_levels(c, R)) == levels


def test_bonus_split_to_the_cent_by_largest_remainder() -> None:
    shares = rules.bonus_split(Decimal("100.00"), {"a": 1, "b": 1, "c": 1})
    assert sorted(shares.values()) == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]
    assert sum(shares.values()) == Decimal("100.00")
    assert rules.bonus_split(Decimal("10"), {"a": 3, "b": -5, "c": 0}) == \
        {"a": Decimal("10"), "b": Decimal("0"), "c": Decimal("0")}
    with pytest.raises(ValueError):
        rules.bonus_split(Decimal("10"), {"a": 0})
    with pytest.raises(ValueError):
        rules.bonus_split(Decimal("10.001"), {"a": 1})


@given(st.integers(min_value=0, max_value=10_000_000),
       st.lists(st.floats(min_value=-50, max_value=500, allow_nan=False), min_size=1, max_size=40))
def test_bonus_split_always_sums_to_the_pool_and_is_never_negative(cents: int, weights: list[float]) -> None:
    named = {f"s{i}": w for i, w in enumerate(weights)}
    if not any(w > 0 for w in weights):
        return
    pool = Decimal(cents) / 100
    shares = rules.bonus_split(pool, named)
    assert sum(shares.values()) == pool
    assert all(s >= 0 for s in shares.values())
    assert all(shares[k] == 0 for k, w in named.items() if w <= 0)


def test_seconded_final_score_is_weighted_both_ways() -> None:
    assert rules.seconded_final(80.0, 90.0, R) == pytest.approx(84.0)
    assert rules.seconded_final(None, 90.0, R) is None


def test_ranks_and_the_red_and_black_lists() -> None:
    assert rules.ranks({"a": 90.0, "b": 95.0, "c": 90.0, "d": None}) == {"b": 1, "a": 2, "c": 2}
    figs = [rules.Figures("staff", f"s{i}", "2026-11", rules.Counts(), {}, 0, {}, float(i)) for i in range(8)]
    red, black = rules.red_and_black_lists(figs, 5)
    assert [f.subject_id for f in red] == ["s7", "s6", "s5", "s4", "s3"]
    assert [f.subject_id for f in black] == ["s0", "s1", "s2", "s3", "s4"]


def test_dimensions_stay_within_0_and_25() -> None:
    c = rules.Counts(dispatched=10, overdue=7, escalated=1)
    d = rules.dimensions({"response": 1, "resolution": 0.5, "satisfaction": None, "rework": 0.2, "extension": 0},
                         c, points=40, median_points=10, rules=R)
    assert d["efficiency"] == pytest.approx(18.75)
    assert d["quality"] == pytest.approx(20.0)
    assert d["workload"] == 25
    assert d["discipline"] == 0


def test_a_merged_task_is_in_no_rate_and_earns_no_points_not_even_its_penalties() -> None:
    merged = task(1, merged=True, overdue_event="e2", escalated_event="e3", rating="unsatisfied", rated_event="e4",
                  passed_checks=1)
    c = rules.counts([merged, task(2)])
    assert (c.dispatched, c.resolved, c.overdue, c.escalated, c.rated, c.closed) == (1, 1, 0, 0, 0, 0)
    assert rules.ledger([merged], [], TOWN, R) == []
    assert rules.contribution(merged, TOWN, R) == (rules.Counts(), 0)


def test_a_reopened_task_is_unresolved_until_completed_again_and_counts_once_in_the_reopen_rate() -> None:
    reopened = task(1, passed_checks=1, reopens=1)
    assert not reopened.resolved
    again = task(1, completions=2, passed_checks=2, reopens=1)
    assert again.resolved
    late_again = task(1, completions=2, passed_checks=2, reopens=1, last_on_time=False)
    assert not late_again.resolved
    twice = task(2, completions=3, passed_checks=3, reopens=2)
    c = rules.counts([again, twice, task(3, passed_checks=1), task(4)])
    assert (c.closed, c.reopened, c.reworked) == (3, 2, 0)  # 重办 is not 返工
    r = rules.rates(c)
    assert r["reopen"] == 2 / 3 and r["rework"] == 0
    assert rules.rates(rules.counts([task(5)]))["reopen"] is None  # nothing closed: null


def test_a_reopen_and_a_failed_check_each_need_a_completion_after_them() -> None:
    assert not task(1, completions=2, failed_checks=1, reopens=1).resolved
    assert task(1, completions=3, failed_checks=1, reopens=1).resolved


def test_the_suspension_rate_counts_each_task_suspended_once_over_dispatched() -> None:
    c = rules.counts([task(1, suspensions=2), task(2, suspensions=1), task(3), task(4),
                      task(5, suspensions=1, merged=True)])  # a merged task is in no rate
    assert (c.dispatched, c.suspended) == (4, 2)
    assert rules.rates(c)["suspension"] == 2 / 4
    assert rules.rates(rules.Counts())["suspension"] is None  # nothing dispatched: null
    # A suspension costs no points and changes no other count: the task is judged on its deadline.
    assert rules.contribution(task(1, suspensions=1), TOWN, R)[1] == rules.contribution(task(1), TOWN, R)[1]
