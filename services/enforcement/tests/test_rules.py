"""Enforcement's rules without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from enforcement import rules
from townflow_shared.auth import Principal
from townflow_shared.problems import FieldError, Refusal
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import EnforcementRules, load_town

TOWN = load_town(DEMO_TOWN_DIR)
R = EnforcementRules()
FILED = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_units_of_a_need() -> None:
    assert rules.need_units(TOWN.catalog["J001"]) == ["land", "planning", "agri"]
    assert rules.need_units(TOWN.catalog["E003"]) == ["县应急管理局"]


def test_three_needs_one_visit_saves_the_rest() -> None:
    groups = [["县应急管理局"], ["县生态环境局"], ["县市场监督管理局"]]
    assert rules.union_units(*groups) == ["县应急管理局", "县生态环境局", "县市场监督管理局"]
    assert rules.visits_saved(groups) == 2
    assert rules.visits_saved([["land", "planning", "agri"]]) == 2
    assert rules.visits_saved([]) == 0


def _problems(**overrides: object) -> list[FieldError]:
    args: dict[str, object] = dict(town=TOWN, rules=R, units=["land", "planning"], officers=["s026", "s027"],
                                   present_units=["land", "planning"], finding_task_ids=["t1"],
                                   covered_task_ids=["t1"], rectify_missing_dates=[])
    args.update(overrides)
    return rules.result_problems(**args)  # type: ignore[arg-type]


def test_a_complete_result_has_no_problem() -> None:
    assert _problems() == []


@pytest.mark.parametrize(("overrides", "field", "code", "params"), [
    ({"officers": ["s026"]}, "officers", "inspection.too_few_certified", {"required": 2, "certified": 1}),
    ({"officers": ["s026", "s029"]}, "officers", "inspection.too_few_certified", {"uncertified": ["s029"]}),
    ({"officers": ["s026", "s027", "nobody"]}, "officers", "inspection.unknown_staff", {"staff": ["nobody"]}),
    ({"present_units": ["land"]}, "present_units", "inspection.unit_absent", {"units": ["planning"]}),
    ({"present_units": ["land", "planning", "agri"]}, "present_units", "inspection.unit_foreign", {"units": ["agri"]}),
    ({"finding_task_ids": []}, "findings", "inspection.finding_missing", {"tasks": ["t1"]}),
    ({"finding_task_ids": ["t1", "t9"]}, "findings", "inspection.finding_not_covered", {"tasks": ["t9"]}),
    ({"finding_task_ids": ["t1", "t1"]}, "findings", "inspection.finding_repeated", {"tasks": ["t1"]}),
    ({"rectify_missing_dates": ["t1"]}, "findings", "inspection.rectify_by_missing", {"task": "t1"}),
])
def test_each_missing_piece_is_named(overrides: dict[str, object], field: str, code: str,
                                     params: dict[str, object]) -> None:
    problems = _problems(**overrides)
    assert any(p.field == field and p.code == code and params.items() <= (p.params or {}).items()
               for p in problems), problems


def _who(sub: str, *roles: str) -> Principal:
    return Principal(sub=sub, roles=frozenset(roles or {"officer"}))


def test_the_enforcement_leader_is_the_leader_of_the_module_of_kind_enforcement() -> None:
    assert rules.enforcement_leaders(TOWN) == {"s006"}


@pytest.mark.parametrize(("caller", "assigned", "named", "allowed"), [
    (_who("s026"), ["s026", "s027"], ["s026", "s027"], True),  # on the assigned team
    (_who("s027"), ["s026", "s027"], ["s028", "s040"], True),  # assigned; whom it names is another matter
    (_who("s028"), ["s026", "s027"], ["s026", "s027"], False),  # not on the team
    (_who("s028"), ["s026", "s027"], ["s028", "s026"], False),  # naming oneself does not join the team
    (_who("s028"), [], ["s028", "s026"], True),  # no team assigned: named in the result
    (_who("s028"), [], ["s026", "s027"], False),  # no team assigned and not named
    (_who("s006", "module_leader", "officer"), ["s026", "s027"], ["s026", "s027"], True),  # 执法队长
    (_who("s006", "module_leader", "officer"), [], ["s026", "s027"], True),
    (_who("s040", "module_leader", "officer"), ["s026", "s027"], ["s026", "s027"], False),  # another module's leader
    (_who("s000", "admin"), ["s026", "s027"], [], True),
])
def test_who_may_post_a_result(caller: Principal, assigned: list[str], named: list[str], allowed: bool) -> None:
    error = rules.result_poster_error(caller, assigned=assigned, named=named, town=TOWN)
    assert (error is None) is allowed, error
    if not allowed:
        assert error is not None and error.params["officer"] == caller.sub


def test_a_refusal_names_the_team_when_one_was_assigned() -> None:
    error = rules.result_poster_error(_who("s028"), assigned=["s026", "s027"], named=[], town=TOWN)
    assert error is not None and error.code.name == "inspection.not_officer"
    assert error.params == {"officer": "s028", "officers": "s026, s027"}
    error = rules.result_poster_error(_who("s028"), assigned=[], named=["s026", "s027"], town=TOWN)
    assert error is not None and error.code.name == "inspection.poster_not_named"


def test_unknown_staff_are_named_once() -> None:
    assert rules.unknown_staff(TOWN, ["s026", "x1", "x1", "s027"]) == ["x1"]


def _in_town(sub: str, *roles: str) -> Principal:
    return Principal(sub=sub, roles=frozenset(roles or {"officer"}), town=TOWN.code)


@pytest.mark.parametrize(("starter", "named", "team", "code"), [
    (_in_town("s026"), ["s027"], ["s026", "s027"], None),  # the certified starter is added, first
    (_in_town("s026"), ["s027", "s026", "s027"], ["s027", "s026"], None),  # named: kept where named, once
    (_in_town("s026"), [], ["s026"], "inspection.too_few_certified"),  # a team of one
    (_in_town("s026"), ["s029"], ["s026", "s029"], "inspection.too_few_certified"),  # one certificate
    (_in_town("s029"), ["s026"], ["s029", "s026"], "inspection.too_few_certified"),  # uncertified: goes, not counted
    (_in_town("s029"), ["s026", "s027"], ["s029", "s026", "s027"], None),
    (_in_town("s006", "module_leader", "officer"), ["s026"], ["s006", "s026"], None),  # a certified leader goes too
    (_in_town("s001", "module_leader"), ["s026", "s027"], ["s026", "s027"], None),  # sends a team
    (_in_town("s001", "module_leader"), ["s026"], ["s026"], "inspection.too_few_certified"),
    (_in_town("s000", "admin"), ["s026", "s027"], ["s026", "s027"], None),
    (Principal(sub="s026", roles=frozenset({"county_admin"})), ["s027", "s028"], ["s027", "s028"], None),
    (_in_town("s014", "officer"), ["s026", "s027"], ["s026", "s027"], "inspection.starter_not_officer"),  # staff, no officer
    (_in_town("s026"), ["s027", "nobody"], ["s027", "nobody"], "inspection.unknown_staff"),
])
def test_who_starts_with_which_team(starter: Principal, named: list[str], team: list[str], code: str | None) -> None:
    started, refusal = rules.start_team(starter, named, town=TOWN, rules=R)
    assert (started, _code(refusal)) == (team, code)
    if refusal is not None:
        assert refusal.field == "officers"


def test_a_team_too_small_names_the_rule_and_the_uncertified() -> None:
    _, refusal = rules.start_team(_in_town("s026"), ["s029"], town=TOWN, rules=R)
    assert refusal is not None and refusal.status == 422
    assert refusal.params == {"required": 2, "certified": 1, "uncertified": ["s029"]}
    _, refusal = rules.start_team(_in_town("s026"), ["s027"], town=TOWN, rules=EnforcementRules(min_officers=3))
    assert refusal is not None and refusal.params["required"] == 3


def test_the_starter_of_another_town_is_not_its_officer() -> None:
    # Staff ids repeat across towns: s026 of another town is not 青禾's s026.
    stranger = Principal(sub="s026", roles=frozenset({"officer"}), town="321003107")
    _, refusal = rules.start_team(stranger, ["s027", "s028"], town=TOWN, rules=R)
    assert _code(refusal) == "inspection.starter_not_officer"


def _code(refusal: Refusal | None) -> str | None:
    return refusal.code.name if refusal is not None else None


def test_case_steps_go_in_order() -> None:
    assert rules.step_error("filed", "investigated") is None
    out_of_order = rules.step_error("filed", "decided")
    assert out_of_order is not None and out_of_order.code.name == "case.step_out_of_order"
    assert out_of_order.params == {"current": "filed", "expected": "investigated", "requested": "decided"}
    assert rules.step_error("decided", "closed") is None
    assert _code(rules.step_error("closed", "closed")) == "case.closed"
    assert _code(rules.step_error("transferred", "investigated")) == "case.transferred"
    assert _code(rules.step_error("filed", "appealed")) == "case.step_unknown"


def test_decision_limit_warning_and_extension() -> None:
    assert rules.case_flag(FILED, False, False, FILED + timedelta(days=59), R) == "ok"
    assert rules.case_flag(FILED, False, False, FILED + timedelta(days=60), R) == "warning"
    assert rules.case_flag(FILED, False, False, FILED + timedelta(days=90, seconds=1), R) == "overdue"
    assert rules.case_flag(FILED, True, False, FILED + timedelta(days=100), R) == "warning"
    assert rules.case_flag(FILED, False, True, FILED + timedelta(days=200), R) == "ok"
    assert rules.extension_error(FILED, False, FILED + timedelta(days=89), R) is None
    assert _code(rules.extension_error(FILED, False, FILED + timedelta(days=90), R)) == "case.extension_too_late"
    assert _code(rules.extension_error(FILED, True, FILED + timedelta(days=10), R)) == "case.already_extended"



def test_case_flags_fall_due_once_each_in_order() -> None:
    moments = rules.case_flag_moments(FILED, False, R)
    assert moments["warning"] == FILED + timedelta(days=60)
    assert moments["overdue"] == FILED + timedelta(days=90, microseconds=1)
    assert rules.case_flags_due(FILED, False, set(), FILED + timedelta(days=59), R) == []
    assert rules.case_flags_due(FILED, False, set(), FILED + timedelta(days=60), R) == ["warning"]
    assert rules.case_flags_due(FILED, False, set(), FILED + timedelta(days=90), R) == ["warning"]
    assert rules.case_flags_due(FILED, False, {"warning"}, FILED + timedelta(days=91), R) == ["overdue"]
    assert rules.case_flags_due(FILED, False, set(), FILED + timedelta(days=91), R) == ["warning", "overdue"]
    assert rules.case_flags_due(FILED, False, {"warning", "overdue"}, FILED + timedelta(days=200), R) == []


def test_next_case_flag_is_the_earliest_flag_not_yet_set() -> None:
    assert rules.next_case_flag_at(FILED, False, set(), R) == FILED + timedelta(days=60)
    assert rules.next_case_flag_at(FILED, False, {"warning"}, R) == FILED + timedelta(days=90, microseconds=1)
    assert rules.next_case_flag_at(FILED, True, {"warning"}, R) == FILED + timedelta(days=120, microseconds=1)
    assert rules.next_case_flag_at(FILED, False, {"warning", "overdue"}, R) is None


@pytest.mark.parametrize("days", [0, 59, 60, 89, 90, 91, 130])
@pytest.mark.parametrize("extended", [False, True])
def test_flag_moments_agree_with_case_flag(days: int, extended: bool) -> None:
    """The loop flags what case_flag reports, and a case it has flagged is not due again at once."""
    now = FILED + timedelta(days=days)
    due = rules.case_flags_due(FILED, extended, set(), now, R)
    flag = rules.case_flag(FILED, extended, False, now, R)
    assert due == {"ok": [], "warning": ["warning"], "overdue": ["warning", "overdue"]}[flag]
    following = rules.next_case_flag_at(FILED, extended, set(due), R)
    assert following is None or following > now


def test_transfers() -> None:
    assert rules.transfer_destination("not_delegated", TOWN.catalog["E006"]) == "县生态环境局"
    assert rules.transfer_destination("criminal", TOWN.catalog["E003"]) == rules.JUDICIAL_ORGANS
    assert rules.transfer_destination("violation", TOWN.catalog["E003"]) is None


def test_random_plan_is_reproducible_and_never_repeats_an_officer_per_target() -> None:
    targets = [f"T{i:03d}" for i in range(40)]
    officers = ["s006", "s026", "s027", "s028", "s040"]
    first = rules.draw_plan(targets, 10, 42, officers)
    assert first == rules.draw_plan(list(reversed(targets)), 10, 42, officers)
    assert first != rules.draw_plan(targets, 10, 43, officers)
    assert len({t for t, _ in first}) == 10
    assert all(len(set(o)) == 2 and set(o) <= set(officers) for _, o in first)
    with pytest.raises(Refusal) as too_many:
        rules.draw_plan(targets[:3], 4, 1, officers)
    assert too_many.value.code.name == "plan.sample_too_large" and too_many.value.field == "sample_size"
    with pytest.raises(Refusal) as too_few:
        rules.draw_plan(targets, 4, 1, ["s026"])
    assert too_few.value.code.name == "plan.too_few_officers"


# --- 多头检查 -----------------------------------------------------------------------------------
def _visit(n: int, target: str, units: tuple[str, ...], day: int) -> rules.Visit:
    return rules.Visit(f"i{n}", target, units, datetime(2026, 11, day, 2, tzinfo=UTC))


def test_a_target_visited_separately_by_two_units_within_30_days_is_flagged() -> None:
    limits = EnforcementRules()
    now = datetime(2026, 11, 30, 2, tzinfo=UTC)
    visits = [_visit(1, "91A", ("国土所",), 2), _visit(2, "91A", ("市场监管所",), 20),  # two units, 18 days apart
              _visit(3, "91B", ("国土所", "规划站"), 10),                                # one combined visit
              _visit(4, "91C", ("市场监管所",), 5), _visit(5, "91C", ("市场监管所",), 25)]  # one unit back again
    assert rules.repeated_inspections(visits, now, limits) == {"91A": [visits[0], visits[1]]}
    # 31 days on, the first visit is out of the window
    assert rules.repeated_inspections(visits, datetime(2026, 12, 3, 2, tzinfo=UTC), limits) == {}
    assert rules.repeated_inspections(visits, now, EnforcementRules(repeated_inspection_units=3)) == {}
