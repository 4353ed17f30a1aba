"""Dispatch on the real stack (SPEC §5.3): assignment, deadlines, the task life cycle,
extensions, the closure check, supervision on the clock, inspections, the board."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from devstack.stack import Stack
from townflow_shared.events import Finding, InspectionDone, InspectionDoneData, new_event

from .conftest import COMMAND, Api, advance_clocks, eventually, file_matter, set_clocks, status_of, task_of
from .kafka_tools import event_of, produce, read_all, wait_for_record

SUPERVISED = "dispatch.task.supervised.v1"


def as_staff(task: dict[str, Any]) -> tuple[str, str]:
    return (task["assignee"], "staff")


async def act(dispatch: Api, task: dict[str, Any], action: str, body: dict[str, Any] | None = None,
              who: tuple[str, ...] | None = None) -> Any:
    return await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/{action}", as_=who or as_staff(task),
                               json=body)


async def test_a_off_post_goes_to_b_and_both_away_goes_to_the_leader(
        stack: Stack, intake: Api, dispatch: Api) -> None:
    await set_clocks(stack, "2026-11-24T09:00:00+08:00")
    away = {"from": "2026-11-24T08:00:00+08:00", "to": "2026-11-24T18:00:00+08:00", "reason": "县里开会"}
    # Only the person, their leader or the command centre may register an absence.
    denied = await dispatch.call("POST", "/v1/staff/s017/off-post", as_=("s015", "staff"), json=away)
    assert denied.status_code == 403 and denied.json()["code"] == "off_post.not_permitted"
    ok = await dispatch.call("POST", "/v1/staff/s017/off-post", as_=("s017", "staff"), json=away)
    assert ok.status_code == 201, ok.text
    via_b = await task_of(dispatch, (await file_matter(intake, item_code="T004"))["request_id"])
    assert (via_b["assignee"], via_b["assigned_via"]) == ("s018", "B")
    assert via_b["lead_module"] == "stability" and via_b["cooperating_modules"] == ["justice"]

    ok = await dispatch.call("POST", "/v1/staff/s018/off-post", as_=COMMAND, json=away)
    assert ok.status_code == 201
    via_leader = await task_of(dispatch, (await file_matter(intake, item_code="T004"))["request_id"])
    assert (via_leader["assignee"], via_leader["assigned_via"]) == ("s004", "leader")

    # Once the absence is over, A takes matters again.
    await set_clocks(stack, "2026-11-24T18:30:00+08:00")
    back = await task_of(dispatch, (await file_matter(intake, item_code="T004"))["request_id"])
    assert (back["assignee"], back["assigned_via"]) == ("s017", "A")


async def open_tasks_of(dispatch: Api, staff_id: str) -> int:
    total = 0
    for status in ("dispatched", "accepted", "rework"):
        rows = (await dispatch.call("GET", "/v1/tasks", as_=COMMAND,
                                    params={"assignee": staff_id, "status": status, "limit": 1000})).json()
        total += len(rows)
    return total


async def test_a_at_the_load_cap_counts_as_overloaded(stack: Stack, intake: Api, dispatch: Api) -> None:
    await set_clocks(stack, "2026-11-25T09:00:00+08:00")
    # flood-emergency has a load cap of 10 open tasks; its A holder may hold some from other posts.
    room = 10 - await open_tasks_of(dispatch, "s018")
    assert room > 0
    holders = [(await task_of(dispatch, (await file_matter(intake, item_code="T003"))["request_id"]))
               for _ in range(room + 1)]
    assert [t["assigned_via"] for t in holders] == ["A"] * room + ["B"]
    assert holders[-1]["assignee"] == "s033"
    assert await open_tasks_of(dispatch, "s018") == 10
    # Completing one of A's tasks frees a place.
    assert (await act(dispatch, holders[0], "complete", {"resolution": "已排险", "reply": "已为您办理完毕。"})).status_code == 200
    again = await task_of(dispatch, (await file_matter(intake, item_code="T003"))["request_id"])
    assert again["assigned_via"] == "A"


async def test_red_deadlines_in_hours_and_yellow_across_a_weekend_and_a_holiday(
        stack: Stack, intake: Api, dispatch: Api) -> None:
    await set_clocks(stack, "2026-11-27T20:00:00+08:00")  # a Friday evening
    red = await task_of(dispatch, (await file_matter(intake, item_code="S002", colour="red"))["request_id"])
    assert datetime.fromisoformat(red["respond_by"]) == datetime.fromisoformat("2026-11-27T21:00:00+08:00")
    assert datetime.fromisoformat(red["resolve_by"]) == datetime.fromisoformat("2026-11-28T20:00:00+08:00")
    yellow = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    assert datetime.fromisoformat(yellow["resolve_by"]) == datetime.fromisoformat("2026-11-30T17:30:00+08:00")

    await set_clocks(stack, "2026-09-30T10:00:00+08:00")  # the eve of National Day
    holiday = await task_of(dispatch, (await file_matter(intake, item_code="S003"))["request_id"])
    assert datetime.fromisoformat(holiday["respond_by"]) == datetime.fromisoformat("2026-10-08T17:30:00+08:00")
    assert datetime.fromisoformat(holiday["resolve_by"]) == datetime.fromisoformat("2026-10-10T17:30:00+08:00")
    orange = await task_of(dispatch, (await file_matter(intake, item_code="S004", colour="orange"))["request_id"])
    assert datetime.fromisoformat(orange["respond_by"]) == datetime.fromisoformat("2026-09-30T14:00:00+08:00")
    assert datetime.fromisoformat(orange["resolve_by"]) == datetime.fromisoformat("2026-10-10T17:30:00+08:00")


async def test_only_the_assignee_or_the_module_leader_may_act(stack: Stack, intake: Api,
                                                             dispatch: Api) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    task = await task_of(dispatch, (await file_matter(intake, item_code="S004"))["request_id"])
    assert task["assignee"] == "s014"
    assert (await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/accept")).status_code == 401
    not_assignee = await act(dispatch, task, "accept", who=("s015", "staff"))
    assert not_assignee.status_code == 403 and not_assignee.json()["code"] == "task.not_assignee"
    assert (await act(dispatch, task, "accept", who=("s014", "clerk"))).status_code == 403  # wrong role
    assert (await act(dispatch, task, "accept", who=("s002", "module_leader"))).status_code == 200
    again = await act(dispatch, task, "accept")
    assert again.status_code == 409 and again.json()["code"] == "task.status_forbids"  # already accepted
    assert again.json()["params"] == {"action": "accept", "status": "accepted", "allowed": "dispatched"}
    assert (await dispatch.call("POST", f"/v1/tasks/{uuid.uuid4()}/accept", as_=as_staff(task))).status_code == 404


async def test_return_in_time_then_redispatch_and_return_too_late(stack: Stack, intake: Api,
                                                                 dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-27T16:30:00+08:00")  # Friday, one working hour left
    ticket = await file_matter(intake, item_code="S013")
    task = await task_of(dispatch, ticket["request_id"])
    await advance_clocks(stack, "PT64H50M")  # Monday 09:20: 1 h 50 min of working time later
    returned = await act(dispatch, task, "return", {"reason": "不属于本岗位职责"})
    assert returned.status_code == 200, returned.text
    await status_of(intake, ticket, "returned")
    board = (await dispatch.call("GET", "/v1/board", as_=COMMAND)).json()
    assert task["task_id"] in [t["task_id"] for t in board["returned"]]

    assert (await act(dispatch, task, "redispatch", {"post": "land-resources"},
                      who=("s014", "staff"))).status_code == 403
    new = await act(dispatch, task, "redispatch", {"post": "land-resources", "return_valid": False},
                    who=COMMAND)
    assert new.status_code == 201, new.text
    new_task = new.json()
    assert new_task["redispatch_of"] == task["task_id"]
    assert (new_task["assignee"], new_task["assigned_via"]) == ("s042", "A")
    record = await wait_for_record(bootstrap, "dispatch.task.dispatched.v1",
                                   lambda r: event_of(r)["data"]["task_id"] == new_task["task_id"])
    assert event_of(record)["data"]["redispatch_of"] == task["task_id"]
    assert event_of(record)["data"]["invalid_return"] is True
    old = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert old["status"] == "redispatched"

    await advance_clocks(stack, "PT15M")  # 09:35: the new task's window is fresh
    assert (await act(dispatch, new_task, "return", {"reason": "x"})).status_code == 200
    again = (await act(dispatch, new_task, "redispatch", {"assignee": "s041"}, who=COMMAND)).json()
    assert again["assigned_via"] == "command_centre"
    assert again["assignee"] == "s041"
    await advance_clocks(stack, "PT2H30M")  # 12:05
    late_task = await task_of(dispatch, (await file_matter(intake, item_code="S013"))["request_id"])
    await advance_clocks(stack, "PT4H")  # 16:05: more than two working hours after 12:05
    too_late = await act(dispatch, late_task, "return", {"reason": "太晚了"})
    assert too_late.status_code == 409
    assert too_late.headers["content-type"] == "application/problem+json"
    assert too_late.json()["code"] == "task.return_window_closed" and "closes_at" in too_late.json()["params"]


async def test_extension_approved_refused_and_asked_too_late(stack: Stack, intake: Api, dispatch: Api,
                                                            bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    task = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    assert datetime.fromisoformat(task["resolve_by"]) == datetime.fromisoformat("2026-11-24T17:30:00+08:00")
    asked = await act(dispatch, task, "extend", {"days": 2, "reason": "需补充材料"})
    assert asked.status_code == 202, asked.text
    assert (await act(dispatch, task, "extend", {"days": 1, "reason": "再来"})).status_code == 409
    assert (await act(dispatch, task, "extension/approve", {})).status_code == 403
    approved = await act(dispatch, task, "extension/approve", {"note": "同意"}, who=COMMAND)
    assert approved.status_code == 200, approved.text
    assert datetime.fromisoformat(approved.json()["resolve_by"]) == datetime.fromisoformat("2026-11-26T17:30:00+08:00")
    record = await wait_for_record(bootstrap, "dispatch.task.extended.v1",
                                   lambda r: event_of(r)["data"]["task_id"] == task["task_id"])
    assert event_of(record)["data"]["days"] == 2 and event_of(record)["data"]["approved_by"] == "s030"
    extended = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert extended["extension_count"] == 1
    # Supervision follows the longer window: the reminder at 80 % of it.
    start, end = (datetime.fromisoformat(extended[k]) for k in ("window_start", "resolve_by"))
    assert datetime.fromisoformat(extended["next_supervision_at"]) == start + (end - start) * 0.8

    assert (await act(dispatch, task, "extend", {"days": 3, "reason": "又延"})).status_code == 202
    refused = await act(dispatch, task, "extension/refuse", {"note": "不同意"}, who=COMMAND)
    assert refused.json()["status"] == "refused"
    after = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert datetime.fromisoformat(after["resolve_by"]) == datetime.fromisoformat("2026-11-26T17:30:00+08:00")
    assert (await act(dispatch, task, "extension/approve", {}, who=COMMAND)).status_code == 409

    await set_clocks(stack, "2026-11-26T17:31:00+08:00")
    late = await act(dispatch, task, "extend", {"days": 1, "reason": "过期才申请"})
    assert late.status_code == 409


async def test_an_extension_is_approved_only_while_its_task_is_open(stack: Stack, intake: Api, dispatch: Api) -> None:
    """SPEC §6.1: a request left pending when its task was completed or returned is not approved
    (409 naming why); the command centre may still refuse it, which clears it."""
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    completed = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    assert (await act(dispatch, completed, "extend", {"days": 2, "reason": "需补充材料"})).status_code == 202
    assert (await act(dispatch, completed, "complete", {"resolution": "已办结", "reply": "已为您办理完毕。"})).status_code == 200
    late = await act(dispatch, completed, "extension/approve", {"note": "同意"}, who=COMMAND)
    assert late.status_code == 409
    assert late.json()["code"] == "extension.task_not_open" and late.json()["params"]["status"] == "completed"
    after = (await dispatch.call("GET", f"/v1/tasks/{completed['task_id']}", as_=COMMAND)).json()
    assert after["extension_count"] == 0 and after["resolve_by"] == completed["resolve_by"]
    refused = await act(dispatch, completed, "extension/refuse", {"note": "已办结，无需延期"}, who=COMMAND)
    assert refused.status_code == 200 and refused.json()["status"] == "refused"
    assert [e["status"] for e in after["extensions"]] == ["pending"]
    closed = (await act(dispatch, completed, "verify", {"passed": True}, who=COMMAND))
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert (await act(dispatch, completed, "extension/approve", {},
                      who=COMMAND)).json()["params"]["status"] == "closed"

    returned = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    assert (await act(dispatch, returned, "extend", {"days": 1, "reason": "需补充材料"})).status_code == 202
    assert (await act(dispatch, returned, "return", {"reason": "不属本岗"})).status_code == 200
    refusal = await act(dispatch, returned, "extension/approve", {}, who=COMMAND)
    assert refusal.status_code == 409 and refusal.json()["code"] == "extension.task_not_open"
    assert refusal.json()["params"]["status"] == "returned"


async def test_failed_closure_check_sends_the_task_back_as_rework(stack: Stack, intake: Api,
                                                                 dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    ticket = await file_matter(intake, item_code="T001")
    task = await task_of(dispatch, ticket["request_id"])
    window = datetime.fromisoformat(task["resolve_by"]) - datetime.fromisoformat(task["dispatched_at"])
    assert (await act(dispatch, task, "complete", {"resolution": "已修补", "reply": "已为您办理完毕。"})).status_code == 200
    await advance_clocks(stack, "P1D")
    assert (await act(dispatch, task, "verify", {"passed": False, "note": "修补不到位"},
                      who=as_staff(task))).status_code == 403
    failed = await act(dispatch, task, "verify", {"passed": False, "note": "修补不到位"}, who=COMMAND)
    assert failed.status_code == 200, failed.text
    rework = failed.json()
    assert rework["status"] == "rework" and rework["rework_count"] == 1
    assert rework["assignee"] == task["assignee"]
    assert datetime.fromisoformat(rework["resolve_by"]) == \
        datetime.fromisoformat("2026-11-24T09:00:00+08:00") + window
    # The new window's supervision starts again from its reminder.
    assert datetime.fromisoformat(rework["next_supervision_at"]) == \
        datetime.fromisoformat("2026-11-24T09:00:00+08:00") + window * 0.8
    record = await wait_for_record(bootstrap, "dispatch.task.verified.v1",
                                   lambda r: event_of(r)["data"]["task_id"] == task["task_id"])
    assert event_of(record)["data"]["passed"] is False
    await status_of(intake, ticket, "rework")
    assert (await act(dispatch, task, "complete", {"resolution": "重新修补", "reply": "已为您办理完毕。"})).status_code == 200
    passed = await act(dispatch, task, "verify", {"passed": True, "note": "合格"}, who=COMMAND)
    assert passed.json()["status"] == "closed" and passed.json()["next_supervision_at"] is None
    await status_of(intake, ticket, "closed")


async def _levels(bootstrap: str, task_id: str) -> list[dict[str, Any]]:
    return [event_of(r)["data"] for r in await read_all(bootstrap, SUPERVISED)
            if event_of(r)["data"]["task_id"] == task_id]


async def test_supervision_reminder_overdue_escalated_once_each(stack: Stack, intake: Api,
                                                                dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T10:00:00+08:00")  # Monday
    task = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    # resolve_by Tuesday 17:30; window 31.5 h: reminder at 25.2 h, escalation at 47.25 h.
    await set_clocks(stack, "2026-11-24T11:30:00+08:00")
    first = await eventually(lambda: _levels(bootstrap, task["task_id"]), what="the reminder")
    assert [(e["level"], e["notified"]) for e in first] == [("reminder", [task["assignee"]])]
    await set_clocks(stack, "2026-11-24T17:31:00+08:00")

    async def two() -> list[dict[str, Any]] | None:
        levels = await _levels(bootstrap, task["task_id"])
        return levels if len(levels) >= 2 else None

    second = await eventually(two, what="the overdue notice")
    assert second[1]["level"] == "overdue" and second[1]["notified"] == [task["assignee"], "s005"]
    board = (await dispatch.call("GET", "/v1/board", as_=COMMAND)).json()
    assert task["task_id"] in [t["task_id"] for t in board["overdue"]]
    overdue = (await dispatch.call("GET", "/v1/tasks", as_=COMMAND,
                                   params={"overdue": "true", "colour": "yellow"})).json()
    assert task["task_id"] in [t["task_id"] for t in overdue]
    await set_clocks(stack, "2026-11-25T09:20:00+08:00")

    async def three() -> list[dict[str, Any]] | None:
        levels = await _levels(bootstrap, task["task_id"])
        return levels if len(levels) >= 3 else None

    third = await eventually(three, what="the escalation")
    assert third[2]["level"] == "escalated" and third[2]["notified"] == ["s030", "s031", "s000"]
    board = (await dispatch.call("GET", "/v1/board", as_=COMMAND)).json()
    assert task["task_id"] in [t["task_id"] for t in board["escalated"]]
    # Later checks publish nothing more for this task.
    await advance_clocks(stack, "P3D")
    sentinel = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    await advance_clocks(stack, "P5D")
    await eventually(lambda: _levels(bootstrap, sentinel["task_id"]), what="the sentinel's supervision")
    assert len(await _levels(bootstrap, task["task_id"])) == 3


async def test_supervision_catches_up_after_the_service_was_down(stack: Stack, intake: Api,
                                                                dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-12-07T10:00:00+08:00")
    task = await task_of(dispatch, (await file_matter(intake, item_code="S002", colour="red"))["request_id"])
    process = stack.services["dispatch"]
    process.stop()
    # While dispatch is down, all three moments pass (red: 24 h window, escalation at 36 h).
    process.start()
    await set_clocks(stack, "2026-12-09T12:00:00+08:00")

    async def all_three() -> list[dict[str, Any]] | None:
        levels = await _levels(bootstrap, task["task_id"])
        return levels if len(levels) >= 3 else None

    levels = await eventually(all_three, what="all missed levels")
    assert [e["level"] for e in levels] == ["reminder", "overdue", "escalated"]


async def test_inspection_done_completes_and_verifies_the_tasks_it_covers(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    target = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    tickets = [await file_matter(intake, item_code=code, target=target) for code in ("E003", "E007")]
    tasks = [await task_of(dispatch, t["request_id"]) for t in tickets]
    assert {t["kind"] for t in tasks} == {"enforcement"}
    now = datetime.fromisoformat("2026-11-23T15:00:00+08:00")
    inspection_id = str(uuid.uuid4())
    event = new_event(InspectionDone, InspectionDoneData(
        inspection_id=inspection_id, target=target, task_ids=[t["task_id"] for t in tasks],
        units=["enforcement"], officers=["s026", "s027"],
        findings=[Finding(task_id=tasks[0]["task_id"], outcome="compliant"),
                  Finding(task_id=tasks[1]["task_id"], outcome="violation", note="夜间超标")],
        started_at=now, finished_at=now), source="enforcement", town_code="321003104",
        subject=inspection_id, correlation_id=tickets[0]["request_id"], time=now)
    await produce(bootstrap, InspectionDone.topic, event.model_dump_json().encode(), key=event.key.encode())
    for ticket, task in zip(tickets, tasks, strict=True):
        done = await task_of(dispatch, ticket["request_id"], status="closed")
        assert done["inspection_id"] == inspection_id
        record = await wait_for_record(bootstrap, "dispatch.task.completed.v1",
                                       lambda r, t=task: event_of(r)["data"]["task_id"] == t["task_id"])
        assert event_of(record)["data"]["inspection_id"] == inspection_id
        await status_of(intake, ticket, "closed")

        async def inspected(ticket: dict[str, Any] = ticket) -> bool:
            view = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}",
                                      params={"code": ticket["access_code"]})).json()
            return "inspected" in [s["step"] for s in view["timeline"]]

        await eventually(inspected, what="the inspected step on the citizen's timeline")


async def test_tasks_list_filters_and_the_board_counts(stack: Stack, intake: Api, dispatch: Api) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    task = await task_of(dispatch, (await file_matter(intake, item_code="S014", colour="orange"))["request_id"])
    mine = (await dispatch.call("GET", "/v1/tasks", as_=("s019", "staff"),
                                params={"assignee": "s019", "status": "dispatched", "colour": "orange",
                                        "module": "org"})).json()
    assert task["task_id"] in [t["task_id"] for t in mine]
    assert all(t["assignee"] == "s019" and t["colour"] == "orange" for t in mine)
    board = (await dispatch.call("GET", "/v1/board", as_=COMMAND)).json()
    assert board["counts"]["orange"]["dispatched"] >= 1
    assert (await dispatch.call("GET", "/v1/board", as_=("s019", "staff"))).status_code == 403
    assert (await dispatch.call("GET", "/v1/tasks")).status_code == 401


async def test_task_search_finds_by_ticket_and_place_pages_with_a_total_and_lists_pending_extensions(
        stack: Stack, intake: Api, dispatch: Api) -> None:
    """任务查询 (issue #27) through the API: a ticket's beginning, a place's text, the filters, a
    page with the total; the extension requests waiting; a wrong filter refused with its field."""
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    place = f"青禾村{uuid.uuid4().hex[:6]}号"
    matters = [await file_matter(intake, item_code="S014", colour="orange", location=place) for _ in range(3)]
    tasks = [await task_of(dispatch, m["request_id"]) for m in matters]
    found = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND, params={"q": place, "limit": 2})).json()
    assert found["total"] == 3 and found["limit"] == 2 and len(found["tasks"]) == 2
    rest = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND,
                                params={"q": place, "limit": 2, "offset": 2})).json()
    assert rest["total"] == 3  # the second page holds the third: each task on one page
    assert sorted(t["task_id"] for t in found["tasks"] + rest["tasks"]) == sorted(t["task_id"] for t in tasks)
    by_ticket = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND,
                                     params={"q": matters[1]["ticket_no"], "colour": "orange", "phase": "open"})).json()
    assert [t["task_id"] for t in by_ticket["tasks"]] == [tasks[1]["task_id"]]
    none = (await dispatch.call("GET", "/v1/task-search", as_=COMMAND, params={"q": place, "phase": "ended"})).json()
    assert none == {"total": 0, "offset": 0, "limit": 50, "tasks": []}

    assert (await act(dispatch, tasks[2], "extend", {"days": 2, "reason": "需补充材料"})).status_code == 202
    pending = (await dispatch.call("GET", "/v1/extensions", as_=COMMAND)).json()
    assert {"task_id": tasks[2]["task_id"], "days": 2, "reason": "需补充材料"}.items() <= next(
        e for e in pending if e["task_id"] == tasks[2]["task_id"]).items()
    assert (await dispatch.call("GET", "/v1/extensions", as_=("s019", "staff"))).status_code == 403

    # The redispatch picker: the task's post's holders, its assignee with the open tasks they hold.
    holders = (await dispatch.call("GET", "/v1/holders", as_=COMMAND)).json()
    of_post = [h for h in holders if h["post"] == tasks[0]["post"]]
    assert [h["slot"] for h in of_post] == ["A", "B", "leader"] and sum(h["takes_next"] for h in of_post) == 1
    held = next(h for h in of_post if h["staff_id"] == tasks[0]["assignee"])["open_tasks"]
    assert held >= sum(t["assignee"] == tasks[0]["assignee"] for t in tasks)

    for params, field in (({"colour": "purple"}, "colour"), ({"status": "lost"}, "status"),
                          ({"colours": "red"}, "colours"), ({"limit": "0"}, "limit")):
        refused = await dispatch.call("GET", "/v1/task-search", as_=COMMAND, params=params)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["field"] == field and refused.json()["code"].startswith("value."), refused.json()


async def test_a_suspended_task_is_not_supervised_and_resumes_with_the_working_time_it_had_left(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str) -> None:
    """挂起 (issue #27): asked by the holder, approved by the command centre; while suspended no
    supervision falls due; resumed, the task gets the working time it had left from then on, and the
    citizen's status shows both steps."""
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")  # Monday; S002's resolve_by is Tuesday 17:30
    ticket = await file_matter(intake, item_code="S002")
    task = await task_of(dispatch, ticket["request_id"])
    ask = {"category": "awaiting_citizen", "reason": "等待群众补正材料，电话13912345678"}
    assert (await act(dispatch, task, "suspend", ask)).status_code == 202
    again = await act(dispatch, task, "suspend", ask)
    assert again.status_code == 409 and again.json()["code"] == "suspension.already_asked"
    not_suspended = await act(dispatch, task, "resume", who=COMMAND)
    assert not_suspended.status_code == 409 and not_suspended.json()["code"] == "suspension.not_suspended"
    await set_clocks(stack, "2026-11-23T10:00:00+08:00")  # approved with 2 + 3.5 + 7 = 12.5 working hours left
    approved = await act(dispatch, task, "suspension/approve", {"note": "同意"}, who=COMMAND)
    assert approved.status_code == 200 and approved.json()["status"] == "suspended", approved.text
    record = await wait_for_record(bootstrap, "dispatch.task.suspended.v1",
                                   lambda r: event_of(r)["data"]["task_id"] == task["task_id"])
    assert event_of(record)["data"]["working_left_seconds"] == 12.5 * 3600
    assert "13912345678" not in event_of(record)["data"]["reason"]
    await status_of(intake, ticket, "suspended")

    # A week goes by: every supervision moment of the old window passes. A task filed now as a
    # sentinel gets all three levels, so the loop ran over them; the suspended task gets none.
    sentinel = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    await set_clocks(stack, "2026-12-01T09:00:00+08:00")

    async def sentinel_done() -> list[dict[str, Any]] | None:
        levels = await _levels(bootstrap, sentinel["task_id"])
        return levels if len(levels) == 3 else None

    await eventually(sentinel_done, what="the sentinel's three supervision levels")
    assert await _levels(bootstrap, task["task_id"]) == []
    suspended = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert suspended["status"] == "suspended" and not suspended["overdue"]

    # The citizen's materials arrived: the assignee resumes. 12.5 h from Tuesday 12-01 09:00.
    resumed = await act(dispatch, task, "resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "dispatched"
    assert datetime.fromisoformat(resumed.json()["resolve_by"]) == datetime.fromisoformat("2026-12-02T16:30:00+08:00")
    view = await status_of(intake, ticket, "dispatched")
    assert datetime.fromisoformat(view["promised_by"]) == datetime.fromisoformat("2026-12-02T16:30:00+08:00")
    steps = {s["step"]: s["detail"] for s in view["timeline"]}
    assert steps["suspended"]["category"] == "awaiting_citizen" and "reason" not in steps["suspended"]
    assert datetime.fromisoformat(steps["resumed"]["resolve_by"]) == datetime.fromisoformat("2026-12-02T16:30:00+08:00")
    # A task done (completed, closed) is not suspended.
    assert (await act(dispatch, sentinel, "complete", {"resolution": "已办结", "reply": "已为您办理完毕。"})).status_code == 200
    closed = await act(dispatch, sentinel, "suspend", ask)
    assert closed.status_code == 409 and closed.json()["code"] == "task.status_forbids"
