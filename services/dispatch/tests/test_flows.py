"""Dispatch's command handlers with the fake unit of work and a fixed clock: each happy path and
each refusal it can give, with no database, no Kafka and no network."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatch import flows
from dispatch.flows import Deps
from dispatch.settings import DispatchSettings
from services.dispatch.tests.fakes import FakeUnitOfWork
from townflow_shared import events
from townflow_shared.auth import Principal
from townflow_shared.clock import Clock
from townflow_shared.county import County, load_county
from townflow_shared.db import Database
from townflow_shared.dlq import Rejected
from townflow_shared.events import new_event
from townflow_shared.problems import Refusal
from townflow_shared.settings import DEMO_COUNTY_DIR

TZ = ZoneInfo("Asia/Shanghai")
COUNTY: County = load_county(DEMO_COUNTY_DIR)
QINGHE, SHIQIAO = "321003104", "321003112"
MONDAY_9 = datetime(2026, 11, 23, 9, tzinfo=TZ)
CENTRE = Principal(sub="s030", roles=frozenset({"command_centre"}), town=QINGHE)
OTHER_CENTRE = Principal(sub="s030", roles=frozenset({"command_centre"}), town=SHIQIAO)
COUNTY_ADMIN = Principal(sub="c001", roles=frozenset({"county_admin"}))


def staff(sub: str, town: str = QINGHE) -> Principal:
    return Principal(sub=sub, roles=frozenset({"staff"}), town=town)


class World:
    """A fixed clock, the fake unit of work and the deps the handlers are handed."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.set(MONDAY_9)
        self.uow = FakeUnitOfWork()
        self.deps = Deps(settings=DispatchSettings(), county=COUNTY, clock=self.clock, database=Database(),
                         unit_of_work=self.uow.factory())

    async def file(self, item_code: str = "S002", town: str = QINGHE, colour: str = "yellow",
                   grid_cell: str | None = None) -> uuid.UUID:
        """A matter filed in `town`, dispatched as the consumer would: the new task's id."""
        request_id = uuid.uuid4()
        event = new_event(events.RequestFiled, events.RequestFiledData(
            request_id=str(request_id), ticket_no=f"T-{request_id.hex[:6]}", channel="window", item_code=item_code,
            colour=colour, description="d", village="v", location="l", citizen_ref="x" * 64,  # type: ignore[arg-type]
            filed_at=self.clock.now(), grid_cell=grid_cell), source="intake", town_code=town, subject=str(request_id),
            correlation_id=str(request_id), time=self.clock.now())
        async with self.deps.unit_of_work() as uow:
            await flows.dispatch_filed(self.deps, uow, event)  # type: ignore[arg-type]
        return next(t["task_id"] for t in self.uow.tables.tasks.values() if t["request_id"] == request_id)

    def task(self, task_id: uuid.UUID) -> dict[str, object]:
        return self.uow.tables.tasks[task_id]

    def later(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))


@pytest.fixture
def world() -> World:
    return World()


async def refused(code: str, call: object) -> Refusal:
    with pytest.raises(Refusal) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code.name == code, caught.value
    return caught.value


# --- dispatch and accept ------------------------------------------------------------------------
async def test_a_filed_matter_becomes_a_task_of_the_posts_a_holder(world: World) -> None:
    task_id = await world.file("S002")
    task = world.task(task_id)
    assert (task["assignee"], task["assigned_via"], task["status"]) == ("s010", "A", "dispatched")
    assert world.uow.types_published() == ["dispatch.task.dispatched"]


async def test_an_item_not_in_the_towns_catalog_is_rejected(world: World) -> None:
    with pytest.raises(Rejected):
        await world.file("NOPE")
    assert world.uow.tables.tasks == {}


async def test_an_event_of_a_town_not_served_is_poison(world: World) -> None:
    with pytest.raises(Rejected):
        await world.file("S002", town="999999999")


async def test_the_assignee_accepts_in_time(world: World) -> None:
    task_id = await world.file()
    accepted = await flows.accept_task(world.deps, staff("s010"), flows.AcceptTask(task_id))
    assert accepted.in_time and accepted.accepted_at == MONDAY_9
    assert world.task(task_id)["status"] == "accepted"
    assert world.uow.types_published()[-1] == "dispatch.task.accepted"


async def test_no_such_task(world: World) -> None:
    await refused("task.not_found", flows.accept_task(world.deps, staff("s010"), flows.AcceptTask(uuid.uuid4())))


async def test_only_the_assignee_or_the_module_leader_accepts(world: World) -> None:
    task_id = await world.file()
    await refused("task.not_assignee", flows.accept_task(world.deps, staff("s015"), flows.AcceptTask(task_id)))
    # The same staff id of another town is not the assignee (staff ids repeat across towns).
    refusal = await refused("town.not_yours", flows.accept_task(world.deps, staff("s010", SHIQIAO),
                                                                 flows.AcceptTask(task_id)))
    assert refusal.status == 403
    assert world.task(task_id)["status"] == "dispatched" and world.uow.types_published() == [
        "dispatch.task.dispatched"]


async def test_a_task_is_accepted_once(world: World) -> None:
    task_id = await world.file()
    await flows.accept_task(world.deps, staff("s010"), flows.AcceptTask(task_id))
    refusal = await refused("task.status_forbids", flows.accept_task(world.deps, staff("s010"),
                                                                      flows.AcceptTask(task_id)))
    assert refusal.params == {"action": "accept", "status": "accepted", "allowed": "dispatched"}
    assert refusal.status == 409


# --- complete, return, redispatch ----------------------------------------------------------------
async def test_completed_on_time_then_verified_closed(world: World) -> None:
    task_id = await world.file()
    done = await flows.complete_task(world.deps, staff("s010"), flows.CompleteTask(task_id, "办好了", "已为您办理完毕。"))
    assert done.on_time and world.task(task_id)["status"] == "completed"
    closed = await flows.verify_task(world.deps, CENTRE, flows.VerifyTask(task_id, True))
    assert closed.status == "closed" and world.uow.published[-1].data.resolve_by is None  # type: ignore[attr-defined]
    await refused("task.status_forbids", flows.verify_task(world.deps, CENTRE, flows.VerifyTask(task_id, True)))


async def test_completing_keeps_the_reply_whole_and_publishes_it_masked(world: World) -> None:
    task_id = await world.file()
    reply = "已为您补办户口登记，如有疑问请拨打 139 1234 5678。"
    await flows.complete_task(world.deps, staff("s010"), flows.CompleteTask(task_id, "户口已登记", reply))
    assert world.uow.tables.replies[task_id]["reply"] == reply  # dispatch's own record keeps it whole
    completed = world.uow.published[-1]
    assert isinstance(completed, events.TaskCompleted)
    assert completed.data.reply == "已为您补办户口登记，如有疑问请拨打 139****5678。"


async def test_completing_without_a_reply_is_refused_and_changes_nothing(world: World) -> None:
    task_id = await world.file()
    for blank in ("", "  \n\u3000"):
        refusal = await refused("task.reply_blank", flows.complete_task(
            world.deps, staff("s010"), flows.CompleteTask(task_id, "办好了", blank)))
        assert refusal.field == "reply" and refusal.status == 422
    assert world.task(task_id)["status"] == "dispatched" and task_id not in world.uow.tables.replies
    assert world.uow.types_published() == ["dispatch.task.dispatched"]


async def test_a_failed_check_is_rework_with_the_original_window(world: World) -> None:
    task_id = await world.file()
    window = world.task(task_id)["resolve_by"] - world.task(task_id)["window_start"]  # type: ignore[operator]
    await flows.complete_task(world.deps, staff("s010"), flows.CompleteTask(task_id, "办好了", "已为您办理完毕。"))
    world.later(days=1)
    rework = await flows.verify_task(world.deps, CENTRE, flows.VerifyTask(task_id, False, "不到位"))
    assert rework.status == "rework" and rework.rework_count == 1
    assert rework.resolve_by == world.clock.now() + window
    verified = world.uow.published[-1]  # the citizen is told the rework's date
    assert isinstance(verified, events.TaskVerified) and verified.data.resolve_by == world.clock.now() + window


async def test_returned_within_the_window_then_redispatched(world: World) -> None:
    task_id = await world.file()
    world.later(hours=1)
    assert (await flows.return_task(world.deps, staff("s010"), flows.ReturnTask(task_id, "不属本岗"))).status == "returned"
    new = await flows.redispatch_task(world.deps, CENTRE, flows.RedispatchTask(task_id, None, "s041", False))
    assert (new.assignee, new.assigned_via, new.redispatch_of) == ("s041", "command_centre", task_id)
    assert world.task(task_id)["status"] == "redispatched"
    dispatched = world.uow.published[-1]
    assert dispatched.type == "dispatch.task.dispatched" and dispatched.data.invalid_return is True  # type: ignore[attr-defined]


async def test_the_return_window_closes(world: World) -> None:
    task_id = await world.file()
    world.later(hours=3)  # more than two working hours after 09:00
    refusal = await refused("task.return_window_closed", flows.return_task(
        world.deps, staff("s010"), flows.ReturnTask(task_id, "太晚了")))
    assert refusal.params == {"closes_at": "2026-11-23T11:00:00+08:00"}


async def test_redispatch_names_a_post_or_staff_of_the_tasks_town(world: World) -> None:
    task_id = await world.file()
    await refused("task.status_forbids", flows.redispatch_task(
        world.deps, CENTRE, flows.RedispatchTask(task_id, "mediation", None)))
    await flows.return_task(world.deps, staff("s010"), flows.ReturnTask(task_id, "不属本岗"))
    unknown_post = await refused("redispatch.unknown_post", flows.redispatch_task(
        world.deps, CENTRE, flows.RedispatchTask(task_id, "nowhere", None)))
    assert unknown_post.field == "post" and unknown_post.params == {"post": "nowhere", "town": QINGHE}
    unknown = await refused("redispatch.unknown_assignee", flows.redispatch_task(
        world.deps, CENTRE, flows.RedispatchTask(task_id, None, "s999")))
    assert unknown.field == "assignee"
    await refused("town.not_yours", flows.redispatch_task(
        world.deps, OTHER_CENTRE, flows.RedispatchTask(task_id, "mediation", None)))
    new = await flows.redispatch_task(world.deps, CENTRE, flows.RedispatchTask(task_id, "mediation", None))
    assert (new.post, new.assignee, new.assigned_via) == ("mediation", "s017", "A")


# --- extensions ---------------------------------------------------------------------------------
async def test_an_extension_asked_approved_and_refused(world: World) -> None:
    task_id = await world.file()
    due = world.task(task_id)["resolve_by"]
    asked = await flows.request_extension(world.deps, staff("s010"), flows.RequestExtension(task_id, 2, "需补充材料"))
    assert asked.status == "pending"
    requested = world.uow.published[-1]  # the command centre is told of the request (notify, issue #31)
    assert requested.type == "dispatch.extension.requested" and requested.data.days == 2  # type: ignore[attr-defined]
    assert requested.data.resolve_by == due and requested.key == requested.correlation_id  # type: ignore[attr-defined]
    await refused("extension.already_pending", flows.request_extension(
        world.deps, staff("s010"), flows.RequestExtension(task_id, 1, "再来")))
    approved = await flows.decide_extension(world.deps, CENTRE, flows.Decide(task_id, True, "同意"))
    assert approved.status == "approved" and approved.resolve_by == datetime(2026, 11, 26, 17, 30, tzinfo=TZ)
    assert due == datetime(2026, 11, 24, 17, 30, tzinfo=TZ)
    assert world.task(task_id)["extension_count"] == 1
    assert world.uow.types_published()[-1] == "dispatch.task.extended"
    await refused("extension.none_pending", flows.decide_extension(
        world.deps, CENTRE, flows.Decide(task_id, False)))
    await flows.request_extension(world.deps, staff("s010"), flows.RequestExtension(task_id, 3, "又延"))
    refused_ = await flows.decide_extension(world.deps, CENTRE, flows.Decide(task_id, False, "不同意"))
    assert refused_.status == "refused" and refused_.resolve_by is None
    assert world.task(task_id)["extension_count"] == 1


async def test_an_extension_is_asked_before_the_deadline(world: World) -> None:
    task_id = await world.file()
    world.clock.set(datetime(2026, 11, 24, 17, 31, tzinfo=TZ))
    refusal = await refused("extension.too_late", flows.request_extension(
        world.deps, staff("s010"), flows.RequestExtension(task_id, 1, "过期才申请")))
    assert refusal.params == {"resolve_by": "2026-11-24T17:30:00+08:00"}


async def test_no_extension_is_approved_once_the_task_is_done(world: World) -> None:
    task_id = await world.file()
    await flows.request_extension(world.deps, staff("s010"), flows.RequestExtension(task_id, 2, "需补充材料"))
    await flows.complete_task(world.deps, staff("s010"), flows.CompleteTask(task_id, "已办结", "已为您办理完毕。"))
    refusal = await refused("extension.task_not_open", flows.decide_extension(
        world.deps, CENTRE, flows.Decide(task_id, True)))
    assert refusal.params["status"] == "completed"
    # Refusing stays allowed: it clears the request left pending.
    assert (await flows.decide_extension(world.deps, CENTRE, flows.Decide(task_id, False))).status == "refused"


# --- callbacks ----------------------------------------------------------------------------------
async def closed_task(world: World) -> uuid.UUID:
    task_id = await world.file()
    await flows.complete_task(world.deps, staff("s010"), flows.CompleteTask(task_id, "办好了", "已为您办理完毕。"))
    await flows.verify_task(world.deps, CENTRE, flows.VerifyTask(task_id, True))
    return task_id


async def test_a_callback_rates_only_a_citizen_reached(world: World) -> None:
    task_id = await closed_task(world)
    needed = await refused("callback.rating_required", flows.call_back(
        world.deps, CENTRE, flows.CallBack(task_id, True, None)))
    assert needed.field == "rating" and needed.status == 422
    await refused("callback.rating_unexpected", flows.call_back(
        world.deps, CENTRE, flows.CallBack(task_id, False, "satisfied")))


async def test_one_callback_per_closure_and_unsatisfied_reopens(world: World) -> None:
    open_task = await world.file()
    early = await refused("callback.task_not_closed", flows.call_back(
        world.deps, CENTRE, flows.CallBack(open_task, True, "satisfied")))
    assert early.params == {"status": "dispatched"}
    task_id = await closed_task(world)
    satisfied = await flows.call_back(world.deps, CENTRE, flows.CallBack(task_id, True, "satisfied"))
    assert satisfied.called_back and satisfied.status == "closed"
    await refused("callback.already_given", flows.call_back(
        world.deps, CENTRE, flows.CallBack(task_id, False, None)))

    other = await closed_task(world)
    reopened = await flows.call_back(world.deps, CENTRE, flows.CallBack(
        other, True, "unsatisfied", "电话 13800138000 没人管"))
    assert (reopened.status, reopened.reopen_count) == ("rework", 1)
    event = world.uow.published[-1]
    assert event.type == "dispatch.task.callback" and "13800138000" not in event.data.note  # type: ignore[attr-defined]


# --- off post -----------------------------------------------------------------------------------
async def test_off_post_moves_dispatch_to_the_b_holder(world: World) -> None:
    registered = await flows.register_off_post(world.deps, staff("s010"), flows.RegisterOffPost(
        "s010", None, MONDAY_9 - timedelta(hours=1), MONDAY_9 + timedelta(hours=9), "县里开会"))
    assert (registered.town_code, registered.staff_id) == (QINGHE, "s010")
    task = world.task(await world.file())
    assert (task["assignee"], task["assigned_via"]) == ("s011", "B")


async def test_off_post_refusals(world: World) -> None:
    away = (MONDAY_9, MONDAY_9 + timedelta(hours=1), "开会")
    await refused("off_post.not_permitted", flows.register_off_post(
        world.deps, staff("s015"), flows.RegisterOffPost("s010", None, *away)))
    missing = await refused("staff.not_found", flows.register_off_post(
        world.deps, CENTRE, flows.RegisterOffPost("s999", None, *away)))
    assert missing.params == {"staff_id": "s999", "town": QINGHE}
    await refused("town.not_yours", flows.register_off_post(
        world.deps, OTHER_CENTRE, flows.RegisterOffPost("s010", QINGHE, *away)))
    await refused("town.not_served", flows.register_off_post(
        world.deps, COUNTY_ADMIN, flows.RegisterOffPost("s010", "999999999", *away)))
    await refused("town.required", flows.register_off_post(
        world.deps, COUNTY_ADMIN, flows.RegisterOffPost("s010", None, *away)))
    assert world.uow.tables.off_post == []


# --- events: inspections, merges; supervision ----------------------------------------------------
async def test_an_inspection_completes_and_verifies_the_open_tasks_it_covered(world: World) -> None:
    open_task, done = await world.file("T004"), await world.file("T004")
    await flows.complete_task(world.deps, staff("s017"), flows.CompleteTask(done, "已调处", "已为您办理完毕。"))
    event = new_event(events.InspectionDone, events.InspectionDoneData(
        inspection_id="i-1", target="t", task_ids=[str(open_task), str(done)], units=["u"], officers=["o1", "o2"],
        findings=[events.Finding(task_id=str(open_task), outcome="compliant")], started_at=world.clock.now(),
        finished_at=world.clock.now()), source="enforcement", town_code=QINGHE, subject="i-1",
        correlation_id="i-1", time=world.clock.now())
    async with world.deps.unit_of_work() as uow:
        await flows.complete_inspected(world.deps, uow, event)  # type: ignore[arg-type]
    assert world.task(open_task)["status"] == "closed" and world.task(open_task)["completed_by"] == "o1,o2"
    assert world.task(done)["status"] == "completed"
    assert world.uow.types_published()[-2:] == ["dispatch.task.completed", "dispatch.task.verified"]
    # The citizen is answered with what the inspection found, in words.
    assert world.uow.tables.replies[open_task]["reply"] == "经现场检查，未发现违法违规行为。"
    assert world.uow.published[-2].data.reply == "经现场检查，未发现违法违规行为。"  # type: ignore[attr-defined]


async def test_a_merge_closes_the_task_and_its_undoing_reopens_it(world: World) -> None:
    task_id = await world.file()
    request_id, into = world.task(task_id)["request_id"], uuid.uuid4()

    async def merge(reversed_: bool) -> None:
        event = new_event(events.RequestMerged, events.RequestMergedData(
            request_id=str(request_id), ticket_no="T-1", into_request_id=str(into), into_ticket_no="T-0",
            reversed=reversed_, by="s030",
            at=world.clock.now()), source="intake", town_code=QINGHE, subject=str(request_id),
            correlation_id=str(request_id), time=world.clock.now())
        async with world.deps.unit_of_work() as uow:
            await flows.follow_request_merged(world.deps, uow, event)  # type: ignore[arg-type]

    await merge(False)
    assert world.task(task_id)["status"] == "merged"
    await merge(True)
    assert world.task(task_id)["status"] == "dispatched" and world.task(task_id)["merged_into"] is None


async def test_supervision_sends_each_due_level_once(world: World) -> None:
    task_id = await world.file("S002")  # due 2026-11-24 17:30: the reminder at 80 % of the window
    world.clock.set(datetime(2026, 11, 25, 9, tzinfo=TZ))  # past resolve_by: reminder and overdue
    async with world.deps.unit_of_work() as uow:
        batch = await flows.supervise_due(uow, COUNTY.towns, world.clock.now(), 10)
    assert (batch.claimed, batch.done, batch.failed) == (1, 2, 0)
    assert {level for (t, level) in world.uow.tables.supervisions if t == task_id} == {"reminder", "overdue"}
    async with world.deps.unit_of_work() as uow:
        again = await flows.supervise_due(uow, COUNTY.towns, world.clock.now(), 10)
    assert again.claimed == 0


# --- 挂起: suspension ----------------------------------------------------------------------------
async def test_a_suspension_stops_the_deadline_and_resumes_with_the_working_time_left(world: World) -> None:
    task_id = await world.file()  # Monday 09:00, resolve_by Tuesday 17:30
    asked = await flows.request_suspension(world.deps, staff("s010"), flows.RequestSuspension(
        task_id, "awaiting_citizen", "等群众补正材料，电话13912345678"))
    assert asked.status == "pending" and world.task(task_id)["status"] == "dispatched"
    requested = world.uow.published[-1]
    assert requested.type == "dispatch.suspension.requested" and requested.data.requested_by == "s010"  # type: ignore[attr-defined]
    assert "13912345678" not in requested.data.reason  # type: ignore[attr-defined]
    await refused("suspension.already_asked", flows.request_suspension(
        world.deps, staff("s010"), flows.RequestSuspension(task_id, "awaiting_citizen", "再问一次")))
    assert world.uow.types_published().count("dispatch.suspension.requested") == 1  # a refusal publishes nothing
    world.later(hours=1)  # approved Monday 10:00: 2 h + 3.5 h that day and 7 h on Tuesday left
    decided = await flows.decide_suspension(world.deps, CENTRE, flows.Decide(task_id, True, "同意"))
    assert decided.status == "suspended"
    task = world.task(task_id)
    assert task["status"] == "suspended" and task["next_supervision_at"] is None
    suspended = world.uow.published[-1]
    assert suspended.type == "dispatch.task.suspended"
    assert suspended.data.working_left_seconds == 12.5 * 3600  # type: ignore[attr-defined]
    assert "13912345678" not in suspended.data.reason  # type: ignore[attr-defined]
    # While suspended: no supervision, not overdue, no other action.
    world.clock.set(datetime(2026, 12, 1, 9, tzinfo=TZ))
    async with world.deps.unit_of_work() as uow:
        batch = await flows.supervise_due(uow, COUNTY.towns, world.clock.now(), 10)
    assert batch.claimed == 0 and world.uow.tables.supervisions == {}
    await refused("task.status_forbids", flows.complete_task(world.deps, staff("s010"),
                                                             flows.CompleteTask(task_id, "办好了", "已为您办理完毕。")))
    await refused("task.status_forbids", flows.request_suspension(
        world.deps, staff("s010"), flows.RequestSuspension(task_id, "awaiting_citizen", "挂起中再申请")))
    # Resumed Tuesday 12-01 09:00 by the assignee: 12.5 h = 12-01 (3 h + 3.5 h) + 12-02 (3.5 h + 2.5 h).
    resumed = await flows.resume_task(world.deps, staff("s010"), flows.ResumeTask(task_id))
    assert resumed.status == "dispatched" and not resumed.overdue
    assert resumed.resolve_by == datetime(2026, 12, 2, 16, 30, tzinfo=TZ)
    assert resumed.resolve_by - resumed.window_start == timedelta(hours=32, minutes=30)  # the window's length kept
    assert resumed.next_supervision_at is not None and resumed.next_supervision_at > world.clock.now()
    assert world.uow.types_published()[-1] == "dispatch.task.resumed"
    assert world.uow.published[-1].data.resolve_by == resumed.resolve_by  # type: ignore[attr-defined]
    await refused("suspension.not_suspended", flows.resume_task(world.deps, CENTRE, flows.ResumeTask(task_id)))


async def test_a_suspension_refused_changes_nothing_and_may_be_asked_again(world: World) -> None:
    task_id = await world.file()
    await flows.request_suspension(world.deps, staff("s010"), flows.RequestSuspension(
        task_id, "awaiting_third_party", "等县自然资源局答复"))
    refused_ = await flows.decide_suspension(world.deps, CENTRE, flows.Decide(task_id, False, "自行协调"))
    assert refused_.status == "refused" and world.task(task_id)["status"] == "dispatched"
    # A request is published (the command centre is told); a refusal stays inside dispatch.
    assert world.uow.types_published() == ["dispatch.task.dispatched", "dispatch.suspension.requested"]
    await refused("suspension.none_pending", flows.decide_suspension(
        world.deps, CENTRE, flows.Decide(task_id, True)))
    assert (await flows.request_suspension(world.deps, staff("s010"), flows.RequestSuspension(
        task_id, "awaiting_third_party", "再次申请"))).status == "pending"


async def test_suspension_refusals(world: World) -> None:
    task_id = await world.file()
    # Only the assignee or module leader asks; a closed task cannot be suspended; too late after the deadline.
    await refused("task.not_assignee", flows.request_suspension(
        world.deps, staff("s015"), flows.RequestSuspension(task_id, "awaiting_citizen", "不是我的")))
    await refused("suspension.not_suspended", flows.resume_task(world.deps, CENTRE, flows.ResumeTask(task_id)))
    await refused("suspension.resume_not_permitted", flows.resume_task(
        world.deps, staff("s015"), flows.ResumeTask(task_id)))
    later = await world.file()
    world.clock.set(datetime(2026, 11, 24, 17, 31, tzinfo=TZ))
    too_late = await refused("suspension.too_late", flows.request_suspension(
        world.deps, staff("s010"), flows.RequestSuspension(later, "awaiting_citizen", "过期")))
    assert too_late.params == {"resolve_by": "2026-11-24T17:30:00+08:00"}
    closed = await closed_task(world)
    refusal = await refused("task.status_forbids", flows.request_suspension(
        world.deps, staff("s010"), flows.RequestSuspension(closed, "awaiting_citizen", "已结案")))
    assert refusal.status == 409 and refusal.params["status"] == "closed"


async def test_no_suspension_is_approved_once_the_task_is_done(world: World) -> None:
    task_id = await world.file()
    await flows.request_suspension(world.deps, staff("s010"), flows.RequestSuspension(
        task_id, "awaiting_citizen", "等材料"))
    await flows.complete_task(world.deps, staff("s010"), flows.CompleteTask(task_id, "已办结", "已为您办理完毕。"))
    refusal = await refused("suspension.task_not_open", flows.decide_suspension(
        world.deps, CENTRE, flows.Decide(task_id, True)))
    assert refusal.params["status"] == "completed"
    assert (await flows.decide_suspension(world.deps, CENTRE, flows.Decide(task_id, False))).status == "refused"


async def test_a_merge_of_a_suspended_task_keeps_it_suspended_when_undone(world: World) -> None:
    task_id = await world.file()
    await flows.request_suspension(world.deps, staff("s010"), flows.RequestSuspension(
        task_id, "awaiting_citizen", "等材料"))
    await flows.decide_suspension(world.deps, CENTRE, flows.Decide(task_id, True))
    async with world.deps.unit_of_work() as uow:
        task = await uow.store.task_for_update(task_id)
        assert task is not None
        assert await flows.follow_merge(uow, COUNTY.towns[QINGHE], task, merged=True,
                                        into_request_id=uuid.uuid4(), now=world.clock.now())
    await refused("suspension.not_suspended", flows.resume_task(world.deps, CENTRE, flows.ResumeTask(task_id)))
    async with world.deps.unit_of_work() as uow:
        task = await uow.store.task_for_update(task_id)
        assert task is not None
        await flows.follow_merge(uow, COUNTY.towns[QINGHE], task, merged=False,
                                 into_request_id=uuid.uuid4(), now=world.clock.now())
    assert world.task(task_id)["status"] == "suspended"
    assert (await flows.resume_task(world.deps, CENTRE, flows.ResumeTask(task_id))).status == "dispatched"


# --- routing by grid cell (issue #30) --------------------------------------------------------------
async def test_a_territorial_matter_in_a_held_cell_goes_to_the_cells_post(world: World) -> None:
    held = "321003104001003"  # 青禾村's, held by the 网格员 of 青禾村 and 东湖村 (posts.yaml)
    task = world.task(await world.file("T001", grid_cell=held))
    assert (task["post"], task["assignee"]) == ("grid-qinghe-donghu", "s033")
    # A cell no post holds, no cell, or an enforcement item: the item's own post.
    assert world.task(await world.file("T001", grid_cell="321003104005001"))["post"] == "infrastructure"
    assert world.task(await world.file("T001"))["post"] == "infrastructure"
    assert world.task(await world.file("E001", grid_cell=held))["post"] == "enforcement-city"


# --- 演练 (issue #32): refusals the console shows beside its fields -------------------------------
async def test_a_wrong_layout_file_is_refused_naming_the_file_and_the_field_within_it(world: World) -> None:
    appraisal = Principal(sub="s032", roles=frozenset({"appraisal_admin"}), town=QINGHE)
    day = MONDAY_9.date()
    wrong = await refused("rehearsal.layout_invalid", flows.rehearse(world.deps, appraisal, flows.Rehearse(
        None, day, day, {"posts.yaml": "posts:\n  - {code: x, name: 岗, module: nowhere, a_holder: s017}\n"})))
    assert (wrong.field, wrong.params["at"]) == ("files.posts.yaml", "posts.0.b_holder")  # a B holder is required
    no_yaml = await refused("rehearsal.layout_invalid", flows.rehearse(world.deps, appraisal, flows.Rehearse(
        None, day, day, {"staff.yaml": "staff: [\n"})))
    assert (no_yaml.field, no_yaml.params["at"]) == ("files.staff.yaml", "")
    await refused("rehearsal.period_invalid", flows.rehearse(world.deps, appraisal, flows.Rehearse(
        None, day, day - timedelta(days=1), {"staff.yaml": ""})))
    await refused("rehearsal.not_permitted", flows.rehearse(world.deps, staff("s017"), flows.Rehearse(
        None, day, day, {"staff.yaml": ""})))
