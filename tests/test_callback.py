"""回访 on the real stack (SPEC §10): after closure the command centre calls the citizen back; an
unsatisfied citizen's matter is reopened (重办) for the same assignee with the original window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devstack.stack import Stack

from .conftest import COMMAND, Api, eventually, file_matter, set_clocks, status_of, task_of
from .kafka_tools import event_of, wait_for_record


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _act(dispatch: Api, task: dict[str, Any], action: str, body: dict[str, Any] | None = None,
               who: tuple[str, ...] | None = None) -> Any:
    return await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/{action}",
                               as_=who or (task["assignee"], "staff"), json=body)


async def _closed(dispatch: Api, task: dict[str, Any]) -> None:
    assert (await _act(dispatch, task, "complete", {"resolution": "垃圾已清运", "reply": "已为您办理完毕。"})).status_code == 200
    assert (await _act(dispatch, task, "verify", {"passed": True, "note": "现场核实"}, who=COMMAND)).status_code == 200


async def test_an_unsatisfied_callback_reopens_the_matter_for_the_same_assignee(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-12-10T09:00:00+08:00")
    ticket = await file_matter(intake, item_code="T002", village="V02", location="东湖村垃圾点")
    task = await task_of(dispatch, ticket["request_id"])
    window = _at(task["resolve_by"]) - _at(task["window_start"])
    callback = f"/v1/tasks/{task['task_id']}/callback"

    # Only after closure, only the command centre, a rating only from a citizen reached.
    early = await dispatch.call("POST", callback, as_=COMMAND, json={"reached": True, "rating": "satisfied"})
    assert early.status_code == 409 and early.json()["code"] == "callback.task_not_closed"
    assert early.json()["params"] == {"status": "dispatched"}
    await _closed(dispatch, task)
    by_staff = await dispatch.call("POST", callback, as_=(task["assignee"], "staff"),
                                   json={"reached": True, "rating": "satisfied"})
    assert by_staff.status_code == 403
    no_rating = await dispatch.call("POST", callback, as_=COMMAND, json={"reached": True})
    assert no_rating.status_code == 422
    assert (no_rating.json()["code"], no_rating.json()["field"]) == ("callback.rating_required", "rating")
    unreached = await dispatch.call("POST", callback, as_=COMMAND, json={"reached": False, "rating": "satisfied"})
    assert unreached.status_code == 422
    assert (unreached.json()["code"], unreached.json()["field"]) == ("callback.rating_unexpected", "rating")

    await set_clocks(stack, "2026-12-11T10:00:00+08:00")
    called = await dispatch.call("POST", callback, as_=COMMAND, json={
        "reached": True, "rating": "unsatisfied", "note": "群众称垃圾仍未清完，回电 13912345678"})
    assert called.status_code == 200, called.text
    reopened = called.json()
    assert reopened["status"] == "rework" and reopened["assignee"] == task["assignee"]
    assert reopened["reopen_count"] == 1 and reopened["rework_count"] == 0
    assert reopened["window_start"] == "2026-12-11T10:00:00+08:00"
    assert _at(reopened["resolve_by"]) == _at("2026-12-11T10:00:00+08:00") + window

    event = event_of(await wait_for_record(
        bootstrap, "dispatch.task.callback.v1", lambda r: event_of(r)["data"]["task_id"] == task["task_id"]))
    data = event["data"]
    assert _at(data.pop("at")) == _at("2026-12-11T10:00:00+08:00")
    assert _at(data.pop("resolve_by")) == _at(reopened["resolve_by"])
    assert data == {"task_id": task["task_id"], "request_id": ticket["request_id"], "reached": True,
                    "rating": "unsatisfied", "note": "群众称垃圾仍未清完，回电 139****5678", "by": "s030",
                    "reopened": True}
    assert event["correlation_id"] == ticket["request_id"]

    # The citizen sees the callback and the reopened matter; the task record keeps the whole note.
    view = await status_of(intake, ticket, "reopened")
    assert view["timeline"][-1]["step"] == "callback"
    assert view["timeline"][-1]["detail"] == {"task_id": task["task_id"], "reached": True,
                                              "rating": "unsatisfied", "reopened": True}
    stored = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert [c["note"] for c in stored["callbacks"]] == ["群众称垃圾仍未清完，回电 13912345678"]
    again = await dispatch.call("POST", callback, as_=COMMAND, json={"reached": True, "rating": "satisfied"})
    assert again.status_code == 409  # reopened: the next callback follows the next closure

    # Worked again and closed: one callback for this closure, and a satisfied one closes for good.
    await _closed(dispatch, task)
    satisfied = await dispatch.call("POST", callback, as_=COMMAND, json={"reached": True, "rating": "satisfied"})
    assert satisfied.status_code == 200 and satisfied.json()["status"] == "closed"
    assert satisfied.json()["reopen_count"] == 1
    twice = await dispatch.call("POST", callback, as_=COMMAND, json={"reached": False})
    assert twice.status_code == 409 and twice.json()["code"] == "callback.already_given"


async def test_a_callback_that_does_not_reach_the_citizen_changes_nothing_but_the_record(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-12-10T09:00:00+08:00")
    ticket = await file_matter(intake, item_code="T002", village="V03", location="西山村垃圾点")
    task = await task_of(dispatch, ticket["request_id"])
    await _closed(dispatch, task)
    called = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/callback", as_=COMMAND,
                                 json={"reached": False, "note": "无人接听"})
    assert called.status_code == 200 and called.json()["status"] == "closed"
    event = event_of(await wait_for_record(
        bootstrap, "dispatch.task.callback.v1", lambda r: event_of(r)["data"]["task_id"] == task["task_id"]))
    assert (event["data"]["reached"], event["data"]["rating"], event["data"]["reopened"],
            event["data"]["resolve_by"]) == (False, None, False, None)
    async def called_back() -> dict[str, Any] | None:
        view = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}",
                                  params={"code": ticket["access_code"]})).json()
        # On the timeline, not necessarily last: the closure check's step comes on another topic and
        # may be recorded after the callback's (the last step never became "callback" once, 30 s).
        return view if any(step["step"] == "callback" for step in view["timeline"]) else None

    view = await eventually(called_back, what="the callback on the citizen's timeline")
    assert view["status"] == "closed"
    # Both steps at the same test-clock moment: the timeline's order between them is the order they
    # were recorded in, so the callback's step is looked up rather than taken as the last.
    [step] = [s for s in view["timeline"] if s["step"] == "callback"]
    assert step["detail"] == {"task_id": task["task_id"], "reached": False, "rating": None, "reopened": False}
