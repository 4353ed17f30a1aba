"""Enforcement's command handlers on the fake unit of work, with a fixed clock: no I/O."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest

from enforcement import flows, models, queries
from enforcement.deps import Deps
from enforcement.settings import EnforcementSettings
from enforcement.store import Row
from services.enforcement.tests.fakes import FakeTransactions, FakeUnitOfWork
from townflow_shared.auth import Principal
from townflow_shared.clock import Clock
from townflow_shared.county import County, load_county
from townflow_shared.dlq import Rejected
from townflow_shared.events import CaseUpdated, InspectionDone, PlanPublished, TaskDispatchedData
from townflow_shared.problems import Refusal
from townflow_shared.settings import DEMO_COUNTY_DIR

COUNTY = load_county(DEMO_COUNTY_DIR)
QINGHE, BAILU, SHIQIAO = "321003104", "321003107", "321003112"
NOW = datetime(2026, 11, 23, 1, tzinfo=UTC)  # 09:00 in the towns' time zone
OFFICER = Principal(sub="s026", roles=frozenset({"officer"}), town=QINGHE)
CERTIFIED = ["s026", "s027"]
T = TypeVar("T")


def run(awaitable: Awaitable[T]) -> T:
    return asyncio.run(_awaited(awaitable))


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def refused(awaitable: Awaitable[Any]) -> Refusal:
    with pytest.raises(Refusal) as caught:
        run(awaitable)
    return caught.value


class World:
    """Deps on a fake unit of work and a fixed clock, with helpers to make the records a test reads."""

    def __init__(self, county: County = COUNTY) -> None:
        self.clock = Clock()
        self.clock.set(NOW)
        self.transactions = FakeTransactions()
        self.deps = Deps(settings=EnforcementSettings(), county=county, clock=self.clock,
                         database=None,  # type: ignore[arg-type]  # the fake needs no pool
                         transactions=self.transactions)

    @property
    def store(self) -> Any:
        return self.transactions.store

    def dispatched(self, target: str, item_code: str = "E003", town: str = QINGHE, kind: str = "enforcement",
                   task_id: str | None = None) -> TaskDispatchedData:
        task = TaskDispatchedData(
            task_id=task_id or f"t-{uuid.uuid4().hex[:8]}", request_id=f"r-{uuid.uuid4().hex[:8]}",
            item_code=item_code, kind=kind, colour="yellow", village="v1", location="somewhere", target=target,  # type: ignore[arg-type]
            lead_module="enforcement", post="p1", assignee="s026", assigned_via="A",  # type: ignore[arg-type]
            respond_by=NOW, resolve_by=NOW, dispatched_at=NOW)
        work = FakeUnitOfWork(self.store, self.transactions.published)
        run(flows.task_dispatched(self.deps, work, town, task))
        return task

    def planned(self, target: str) -> Row:
        return next(i for i in self.store.inspections.values() if i["target"] == target and i["status"] == "planned")

    def started(self, target: str, item_code: str = "E003") -> tuple[str, TaskDispatchedData]:
        task = self.dispatched(target, item_code)
        inspection_id = str(self.planned(target)["inspection_id"])
        run(flows.start_inspection(self.deps, OFFICER, flows.StartInspection(inspection_id, ["s027"])))
        return inspection_id, task

    def result(self, inspection_id: str, findings: list[models.FindingIn], officers: list[str] | None = None,
               units: list[str] | None = None, actor: Principal = OFFICER) -> Awaitable[models.InspectionDone]:
        row = self.store.inspections[uuid.UUID(inspection_id)]
        return flows.record_result(self.deps, actor, flows.RecordResult(inspection_id, models.ResultIn(
            officers=officers or CERTIFIED, present_units=row["units"] if units is None else units,
            findings=findings)))

    def case(self, outcome: str = "violation") -> str:
        inspection_id, task = self.started(f"91{uuid.uuid4().hex[:8]}")
        done = run(self.result(inspection_id, [models.FindingIn(task_id=task.task_id, outcome=outcome)]))  # type: ignore[arg-type]
        return str(done.cases[0])


# --- needs (综合查一次) ----------------------------------------------------------------------------
def test_needs_for_one_target_join_one_planned_inspection() -> None:
    world = World()
    world.dispatched("91A", "E003")
    world.dispatched("91A", "J001")
    inspection = world.planned("91A")
    assert inspection["units"] == ["县应急管理局", "land", "planning", "agri"]
    assert inspection["visits_saved"] == 3
    assert len(world.store.needs) == 2


def test_a_redelivered_task_adds_no_second_need() -> None:
    world = World()
    task = world.dispatched("91A")
    world.dispatched("91A", task_id=task.task_id)
    assert len(world.store.needs) == 1


def test_tasks_of_other_kinds_are_not_inspected() -> None:
    world = World()
    world.dispatched("91A", kind="service")
    assert world.store.inspections == {}


@pytest.mark.parametrize(("town", "item"), [("999999999", "E003"), (BAILU, "E003")])
def test_a_town_not_served_or_an_item_not_in_its_catalogue_is_dead_lettered(town: str, item: str) -> None:
    with pytest.raises(Rejected):
        World().dispatched("91A", item, town=town)


# --- starting an inspection -----------------------------------------------------------------------
def test_start_records_the_team_and_the_next_need_plans_a_new_inspection() -> None:
    world = World()
    world.dispatched("91A")
    inspection_id = str(world.planned("91A")["inspection_id"])
    started = run(flows.start_inspection(world.deps, OFFICER, flows.StartInspection(inspection_id, CERTIFIED)))
    assert started.status == "started" and started.assigned_officers == CERTIFIED
    assert started.started_at == NOW and started.started_by == "s026"
    assert started.started_at.utcoffset() == timedelta(hours=8)  # answered in the town's time
    world.dispatched("91A")
    assert str(world.planned("91A")["inspection_id"]) != inspection_id


@pytest.mark.parametrize("inspection_id", ["not-an-id", "5b2f0c1e-8d3a-4f6b-9c2e-7a1d4e6f8b90"])  # an id no world has
def test_start_of_no_inspection_is_not_found(inspection_id: str) -> None:
    error = refused(flows.start_inspection(World().deps, OFFICER, flows.StartInspection(inspection_id)))
    assert error.code.name == "inspection.not_found" and error.status == 404


def test_start_of_another_towns_inspection_is_refused() -> None:
    world = World()
    world.dispatched("91A")
    elsewhere = Principal(sub="s023", roles=frozenset({"officer"}), town=SHIQIAO)
    error = refused(flows.start_inspection(world.deps, elsewhere,
                                           flows.StartInspection(str(world.planned("91A")["inspection_id"]))))
    assert error.code.name == "town.not_yours" and error.status == 403


def test_a_team_of_unknown_staff_is_refused() -> None:
    world = World()
    world.dispatched("91A")
    error = refused(flows.start_inspection(world.deps, OFFICER, flows.StartInspection(
        str(world.planned("91A")["inspection_id"]), ["s026", "nobody"])))
    assert (error.code.name, error.field, error.params) == ("inspection.unknown_staff", "officers",
                                                            {"staff": ["nobody"]})


def test_a_team_of_one_is_refused_and_nothing_starts() -> None:
    world = World()
    world.dispatched("91A")
    inspection_id = str(world.planned("91A")["inspection_id"])
    error = refused(flows.start_inspection(world.deps, OFFICER, flows.StartInspection(inspection_id)))
    assert (error.code.name, error.field, error.status) == ("inspection.too_few_certified", "officers", 422)
    assert error.params == {"required": 2, "certified": 1, "uncertified": []}
    assert world.planned("91A")["inspection_id"] == uuid.UUID(inspection_id)  # still planned


def test_an_uncertified_team_is_refused() -> None:
    world = World()
    world.dispatched("91A")
    uncertified = Principal(sub="s029", roles=frozenset({"officer"}), town=QINGHE)
    error = refused(flows.start_inspection(world.deps, uncertified, flows.StartInspection(
        str(world.planned("91A")["inspection_id"]), ["s026"])))
    assert (error.code.name, error.params["uncertified"]) == ("inspection.too_few_certified", ["s029"])


def test_the_officer_who_starts_is_on_the_team_and_posts_the_result() -> None:
    world = World()
    task = world.dispatched("91A")
    inspection_id = str(world.planned("91A")["inspection_id"])
    started = run(flows.start_inspection(world.deps, OFFICER, flows.StartInspection(inspection_id, ["s027"])))
    assert started.assigned_officers == ["s026", "s027"]
    done = run(world.result(inspection_id, [models.FindingIn(task_id=task.task_id, outcome="compliant")]))
    assert done.status == "done"


def test_a_leader_sends_a_team_without_going() -> None:
    world = World()
    world.dispatched("91A")
    leader = Principal(sub="s001", roles=frozenset({"module_leader"}), town=QINGHE)
    inspection_id = str(world.planned("91A")["inspection_id"])
    started = run(flows.start_inspection(world.deps, leader, flows.StartInspection(inspection_id, ["s027", "s028"])))
    assert (started.assigned_officers, started.started_by) == (["s027", "s028"], "s001")


def test_staff_who_are_no_officers_do_not_start() -> None:
    world = World()
    world.dispatched("91A")
    clerk = Principal(sub="s014", roles=frozenset({"officer"}), town=QINGHE)  # a token's role, not the town file's
    error = refused(flows.start_inspection(world.deps, clerk, flows.StartInspection(
        str(world.planned("91A")["inspection_id"]), CERTIFIED)))
    assert (error.code.name, error.status, error.field) == ("inspection.starter_not_officer", 403, "officers")


def test_an_inspection_starts_once() -> None:
    world = World()
    inspection_id, _ = world.started("91A")
    error = refused(flows.start_inspection(world.deps, OFFICER, flows.StartInspection(inspection_id)))
    assert (error.code.name, error.status, error.params) == ("inspection.not_planned", 409, {"status": "started"})


# --- the result ------------------------------------------------------------------------------------
def test_a_violation_opens_a_case_and_the_result_is_published() -> None:
    world = World()
    inspection_id, task = world.started("91A")
    done = run(world.result(inspection_id, [models.FindingIn(task_id=task.task_id, outcome="violation")]))
    assert done.status == "done" and done.officers == CERTIFIED and len(done.cases) == 1
    case = world.store.cases[done.cases[0]]
    assert case["step"] == "filed" and case["decision_due"] == NOW + timedelta(days=90)
    types = [type(e) for e in world.transactions.published]
    assert types == [InspectionDone, CaseUpdated]
    assert world.transactions.published[0].data.task_ids == [task.task_id]


def test_a_not_delegated_finding_is_filed_and_transferred_at_once() -> None:
    world = World()
    inspection_id, task = world.started("91A", "E006")
    done = run(world.result(inspection_id, [models.FindingIn(task_id=task.task_id, outcome="not_delegated")]))
    case = world.store.cases[done.cases[0]]
    assert case["step"] == "transferred" and case["transferred_to"] == "县生态环境局"
    steps = [e.data.step for e in world.transactions.published if isinstance(e, CaseUpdated)]
    assert steps == ["filed", "transferred"]


def test_a_rectify_finding_plans_the_follow_up_visit_due_at_the_close_of_its_day() -> None:
    world = World()
    inspection_id, task = world.started("91A")
    run(world.result(inspection_id, [models.FindingIn(task_id=task.task_id, outcome="rectify",
                                                      rectify_by=date(2026, 12, 1))]))
    follow_up = next(n for n in world.store.needs if n["source"] == "rectify")
    assert follow_up["due"] == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # 17:30 in the town
    assert world.planned("91A")["inspection_id"] == follow_up["inspection_id"]


def test_only_the_team_posts_the_result() -> None:
    world = World()
    world.dispatched("91A")
    inspection_id = str(world.planned("91A")["inspection_id"])
    run(flows.start_inspection(world.deps, OFFICER, flows.StartInspection(inspection_id, CERTIFIED)))
    task_id = world.store.needs[0]["task_id"]
    outsider = Principal(sub="s028", roles=frozenset({"officer"}), town=QINGHE)
    error = refused(world.result(inspection_id, [models.FindingIn(task_id=task_id, outcome="compliant")],
                                 officers=["s028", "s026"], actor=outsider))
    assert (error.code.name, error.status) == ("inspection.not_officer", 403)
    assert error.params == {"officer": "s028", "officers": "s026, s027"}
    assert world.transactions.published == []  # refused: nothing left


def test_without_a_team_the_poster_is_named_in_the_result() -> None:
    # An inspection the previous release started without a team (side by side in an upgrade).
    world = World()
    inspection_id, task = world.started("91A")
    world.store.inspections[uuid.UUID(inspection_id)]["assigned_officers"] = []
    outsider = Principal(sub="s028", roles=frozenset({"officer"}), town=QINGHE)
    error = refused(world.result(inspection_id, [models.FindingIn(task_id=task.task_id, outcome="compliant")],
                                 actor=outsider))
    assert (error.code.name, error.field) == ("inspection.poster_not_named", "officers")


def test_a_result_before_the_start_is_refused() -> None:
    world = World()
    task = world.dispatched("91A")
    error = refused(world.result(str(world.planned("91A")["inspection_id"]),
                                 [models.FindingIn(task_id=task.task_id, outcome="compliant")]))
    assert (error.code.name, error.status, error.params) == ("inspection.not_started", 409, {"status": "planned"})


@pytest.mark.parametrize(("change", "code", "field"), [
    ({"units": []}, "inspection.unit_absent", "present_units"),
    ({"officers": ["s026", "s029"]}, "inspection.too_few_certified", "officers"),
    ({"findings": []}, "inspection.finding_missing", "findings"),
    ({"rectify": True}, "inspection.rectify_by_missing", "findings"),
])
def test_an_incomplete_result_names_its_code_and_field(change: dict[str, Any], code: str, field: str) -> None:
    world = World()
    inspection_id, task = world.started("91A")
    findings = [models.FindingIn(task_id=task.task_id, outcome="rectify" if change.get("rectify") else "compliant")]
    error = refused(world.result(inspection_id, change.get("findings", findings), officers=change.get("officers"),
                                 units=change.get("units")))
    assert (error.code.name, error.field, error.status) == (code, field, 422)
    assert world.store.inspections[uuid.UUID(inspection_id)]["status"] == "started"


def test_several_problems_at_once_are_each_named() -> None:
    world = World()
    inspection_id, _ = world.started("91A")
    error = refused(world.result(inspection_id, [], officers=["s026"], units=[]))
    assert error.code.name == "request.invalid"
    assert {(e.code, e.field) for e in error.errors} == {
        ("inspection.too_few_certified", "officers"), ("inspection.unit_absent", "present_units"),
        ("inspection.finding_missing", "findings")}


# --- cases -----------------------------------------------------------------------------------------
def step(world: World, case_id: str, name: str, decision: str | None = None) -> Awaitable[models.CaseWithSteps]:
    return flows.take_case_step(world.deps, OFFICER, flows.TakeCaseStep(case_id, name, decision=decision))


def test_a_case_goes_through_its_steps_in_order() -> None:
    world = World()
    case_id = world.case()
    for name in ("investigated", "reviewed"):
        run(step(world, case_id, name))
    decided = run(step(world, case_id, "decided", "罚款500元"))
    assert decided.decision == "罚款500元" and decided.next_flag_at is None and decided.flag == "ok"
    closed = run(step(world, case_id, "closed"))
    assert [s.step for s in closed.steps] == ["filed", "investigated", "reviewed", "decided", "closed"]
    error = refused(step(world, case_id, "closed"))
    assert error.code.name == "case.closed"


def test_case_step_refusals() -> None:
    world = World()
    case_id = world.case()
    assert refused(step(world, str(uuid.uuid4()), "investigated")).code.name == "case.not_found"
    out_of_order = refused(step(world, case_id, "decided", "罚款"))
    assert (out_of_order.code.name, out_of_order.params) == (
        "case.step_out_of_order", {"current": "filed", "expected": "investigated", "requested": "decided"})
    assert refused(step(world, case_id, "transferred")).code.name == "case.transfer_by_finding_only"
    run(step(world, case_id, "investigated"))
    run(step(world, case_id, "reviewed"))
    no_decision = refused(step(world, case_id, "decided"))
    assert (no_decision.code.name, no_decision.field) == ("case.decision_missing", "decision")
    elsewhere = Principal(sub="s023", roles=frozenset({"officer"}), town=SHIQIAO)
    other = refused(flows.take_case_step(world.deps, elsewhere, flows.TakeCaseStep(case_id, "decided", "罚款")))
    assert other.code.name == "town.not_yours"


def test_a_transferred_case_takes_no_step() -> None:
    world = World()
    inspection_id, task = world.started("91A", "E006")
    done = run(world.result(inspection_id, [models.FindingIn(task_id=task.task_id, outcome="criminal")]))
    assert refused(step(world, str(done.cases[0]), "investigated")).code.name == "case.transferred"


def test_the_one_extension_before_day_90() -> None:
    world = World()
    case_id = world.case()
    extend = flows.ExtendCase(case_id, "案情复杂")
    extended = run(flows.extend_case(world.deps, OFFICER, extend))
    assert extended.extended and extended.decision_due == NOW + timedelta(days=120)
    assert refused(flows.extend_case(world.deps, OFFICER, extend)).code.name == "case.already_extended"
    late = World()
    late_case = late.case()
    late.clock.advance(timedelta(days=90))
    error = refused(flows.extend_case(late.deps, OFFICER, flows.ExtendCase(late_case, "too late")))
    assert (error.code.name, error.params) == ("case.extension_too_late", {"day": 90})


def test_a_decided_case_is_not_extended() -> None:
    world = World()
    case_id = world.case()
    for name, decision in (("investigated", None), ("reviewed", None), ("decided", "罚款")):
        run(step(world, case_id, name, decision))
    error = refused(flows.extend_case(world.deps, OFFICER, flows.ExtendCase(case_id, "why")))
    assert (error.code.name, error.params) == ("case.decided", {"step": "decided"})


def test_the_deadline_loop_warns_on_day_60() -> None:
    world = World()
    case_id = uuid.UUID(world.case())
    limits = {QINGHE: COUNTY.towns[QINGHE].rules.enforcement}
    batch = run(flag_due(world, limits, NOW + timedelta(days=60)))
    assert (batch.claimed, batch.done) == (1, 1)
    assert world.store.cases[case_id]["warned_at"] == NOW + timedelta(days=60)
    answer = queries.case_answer(world.deps, world.store.cases[case_id])
    assert answer.flag == "ok"  # the clock still says day 0
    [warned] = world.transactions.published[-1:]  # its officers are told (notify, issue #31)
    assert warned.type == "enforcement.case.flagged" and warned.subject == str(case_id)
    assert warned.data.flag == "warning" and warned.data.decision_due == NOW + timedelta(days=90)  # type: ignore[attr-defined]
    assert warned.data.officers == world.store.inspections[world.store.cases[case_id]["inspection_id"]]["officers"]  # type: ignore[attr-defined]
    assert run(flag_due(world, limits, NOW + timedelta(days=61))).claimed == 0  # once per case and flag
    overdue = run(flag_due(world, limits, NOW + timedelta(days=91)))
    assert overdue.done == 1 and world.transactions.published[-1].data.flag == "overdue"  # type: ignore[attr-defined]
    assert [e.type for e in world.transactions.published].count("enforcement.case.flagged") == 2


async def flag_due(world: World, limits: dict[str, Any], now: datetime) -> Any:
    async with world.transactions.writing() as work:
        return await flows.flag_due_cases(work, limits, now, 100)


# --- random plans ----------------------------------------------------------------------------------
TARGETS = [f"91321003MA{n:08d}" for n in range(30)]


def test_a_plan_is_drawn_from_its_seed_and_published() -> None:
    world = World()
    plan = run(flows.publish_plan(world.deps, OFFICER, flows.PublishPlan(TARGETS, 6, 20261123)))
    again = run(flows.publish_plan(world.deps, OFFICER, flows.PublishPlan(list(reversed(TARGETS)), 6, 20261123)))
    assert plan.targets == again.targets and plan.town_code == QINGHE and len(plan.targets) == 6
    assert [type(e) for e in world.transactions.published] == [PlanPublished, PlanPublished]
    stored = run(queries.get_plan(world.deps, OFFICER, str(plan.plan_id)))
    assert stored.targets == plan.targets and stored.population == sorted(TARGETS)


def test_plan_refusals() -> None:
    world = World()
    too_many = refused(flows.publish_plan(world.deps, OFFICER, flows.PublishPlan(TARGETS, 31, 1)))
    assert (too_many.code.name, too_many.field, too_many.params) == (
        "plan.sample_too_large", "sample_size", {"sample_size": 31, "targets": 30})
    county_admin = Principal(sub="c1", roles=frozenset({"county_admin"}))
    assert refused(flows.publish_plan(world.deps, county_admin, flows.PublishPlan(TARGETS, 3, 1))).code.name == \
        "town.required"
    elsewhere = refused(flows.publish_plan(world.deps, OFFICER, flows.PublishPlan(TARGETS, 3, 1, BAILU)))
    assert (elsewhere.code.name, elsewhere.field) == ("town.not_yours", "town_code")
    unserved = refused(flows.publish_plan(world.deps, OFFICER, flows.PublishPlan(TARGETS, 3, 1, "999")))
    assert unserved.code.name == "town.not_served"
    town = COUNTY.towns[QINGHE]
    uncertified = town.model_copy(update={"staff": {k: s for k, s in town.staff.items() if not s.enforcement_certificate}})
    few = World(County(info=None, towns={QINGHE: uncertified}))
    assert refused(flows.publish_plan(few.deps, OFFICER, flows.PublishPlan(TARGETS, 3, 1))).code.name == \
        "plan.too_few_officers"
    assert world.transactions.published == []


# --- reads -----------------------------------------------------------------------------------------
def test_another_towns_records_are_not_found_and_its_lists_refused() -> None:
    world = World()
    inspection_id, _ = world.started("91A")
    elsewhere = Principal(sub="s023", roles=frozenset({"officer"}), town=SHIQIAO)
    assert refused(queries.get_inspection(world.deps, elsewhere, inspection_id)).code.name == "inspection.not_found"
    assert run(queries.get_inspection(world.deps, OFFICER, inspection_id)).status == "started"
    listed = refused(queries.list_inspections(world.deps, elsewhere, queries.InspectionFilter(town=QINGHE)))
    assert listed.code.name == "town.not_found"
    assert run(queries.list_inspections(world.deps, elsewhere, queries.InspectionFilter())) == []
    reader = Principal(sub="c2", roles=frozenset({"county_reader"}))
    assert len(run(queries.list_inspections(world.deps, reader, queries.InspectionFilter()))) == 1
    unserved = refused(queries.list_cases(world.deps, reader, queries.CaseFilter(town="999")))
    assert (unserved.code.name, unserved.field) == ("town.not_served", "town")
    assert refused(queries.get_case(world.deps, OFFICER, "x")).code.name == "case.not_found"
    assert refused(queries.get_plan(world.deps, OFFICER, str(uuid.uuid4()))).code.name == "plan.not_found"
