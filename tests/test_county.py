"""One deployment for a county (SPEC §8), end to end on the demo county 禾川县: the same item filed
in two towns, each with its own tickets, post, assignee and deadlines (towns with different
holidays); a town's staff cannot see or act on another town's matter; a county reader sees both;
the county ranking of towns."""

from __future__ import annotations

from typing import Any

from devstack.stack import Stack

from .conftest import BAILU, QINGHE, Api, eventually, filing

COUNTY_ADMIN = ("c001", "county_admin")
COUNTY_READER = ("c002", "county_reader")
CLERK = ("s005", "clerk")           # each town's service-centre leader, also a clerk
COMMAND = ("s007", "command_centre")
HOUSEHOLD_A = {QINGHE: "s049", BAILU: "s039"}  # each town's A holder of its `household` post


async def _county_clocks(stack: Stack, now: str) -> None:
    for name in stack.services:
        moved = await Api(stack, name).call("POST", "/v1/admin/clock", as_=COUNTY_ADMIN, json={"now": now})
        assert moved.status_code == 200, moved.text


async def _file(stack: Stack, town: str) -> dict[str, Any]:
    response = await Api(stack, "intake", town).call("POST", "/v1/requests", as_=CLERK,
                                                   json=filing(item_code="S001"))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _task(stack: Stack, request_id: str) -> dict[str, Any]:
    reader = Api(stack, "dispatch")  # a county reader: no town claim, every town

    async def found() -> dict[str, Any] | None:
        tasks = (await reader.call("GET", "/v1/tasks", as_=COUNTY_READER, params={"request_id": request_id})).json()
        return dict(tasks[0]) if tasks else None

    return await eventually(found, what=f"the task of {request_id}")


async def test_one_item_in_two_towns_gets_each_towns_tickets_post_and_deadline(county_stack: Stack) -> None:
    # Thursday 19 March 2026: the next day is 青禾镇's own day off (镇庆日), a working day in 白鹭镇.
    await _county_clocks(county_stack, "2026-03-19T09:00:00+08:00")
    first, second = await _file(county_stack, QINGHE), await _file(county_stack, QINGHE)
    other = await _file(county_stack, BAILU)
    assert first["ticket_no"].startswith(f"{QINGHE}-20260319-") and other["ticket_no"].startswith(f"{BAILU}-20260319-")
    assert int(second["ticket_no"][-5:]) == int(first["ticket_no"][-5:]) + 1  # each town its own sequence

    qinghe_task, bailu_task = await _task(county_stack, first["request_id"]), await _task(county_stack, other["request_id"])
    assert (qinghe_task["town_code"], qinghe_task["post"], qinghe_task["assignee"]) == (QINGHE, "household", HOUSEHOLD_A[QINGHE])
    assert (bailu_task["town_code"], bailu_task["post"], bailu_task["assignee"]) == (BAILU, "household", HOUSEHOLD_A[BAILU])
    # S001 is three working days in both towns; 青禾镇 skips its day off (Fri 20 March).
    assert qinghe_task["resolve_by"].startswith("2026-03-25T17:30")
    assert bailu_task["resolve_by"].startswith("2026-03-24T17:30")


async def test_a_towns_staff_cannot_see_or_act_on_another_towns_matter_and_a_county_reader_sees_both(
        county_stack: Stack) -> None:
    mine, theirs = await _file(county_stack, QINGHE), await _file(county_stack, BAILU)
    intake_qinghe, dispatch_qinghe = Api(county_stack, "intake", QINGHE), Api(county_stack, "dispatch", QINGHE)
    their_task = await _task(county_stack, theirs["request_id"])

    assert (await intake_qinghe.call("GET", f"/v1/requests/{theirs['ticket_no']}", as_=CLERK)).status_code == 404
    assert (await dispatch_qinghe.call("GET", f"/v1/tasks/{their_task['task_id']}", as_=COMMAND)).status_code == 404
    refused = await dispatch_qinghe.call("POST", f"/v1/tasks/{their_task['task_id']}/accept",
                                         as_=(HOUSEHOLD_A[BAILU], "staff"))  # the same id, the wrong town
    assert refused.status_code == 403, refused.text

    reader = Api(county_stack, "intake")
    for ticket in (mine, theirs):
        view = await reader.call("GET", f"/v1/requests/{ticket['ticket_no']}", as_=COUNTY_READER)
        assert view.status_code == 200, view.text
        assert "citizen" not in view.json()  # a county department never sees a citizen's personal data


async def test_the_county_ranks_its_towns_for_county_roles_only(county_stack: Stack) -> None:
    await _county_clocks(county_stack, "2026-03-23T10:00:00+08:00")
    for town in (QINGHE, BAILU):  # a matter each in March, dispatched: both towns have figures
        await _task(county_stack, (await _file(county_stack, town))["request_id"])
    appraisal = Api(county_stack, "appraisal")

    async def ranked() -> dict[str, Any] | None:
        response = await appraisal.call("GET", "/v1/county/rankings", as_=COUNTY_READER,
                                        params={"period": "2026-03"})
        assert response.status_code == 200, response.text
        body = dict(response.json())
        return body if QINGHE in str(body) and BAILU in str(body) else None

    await eventually(ranked, what="both towns in the county ranking")
    town_staff = Api(county_stack, "appraisal", QINGHE)
    assert (await town_staff.call("GET", "/v1/county/rankings", as_=("s000", "admin"),
                                  params={"period": "2026-03"})).status_code == 403
