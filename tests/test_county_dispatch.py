"""Dispatch serving a county (SPEC §8) on the demo county's own stack: each town's matters go to
that town's posts and staff by its own calendar, a town's staff reach only their town's tasks,
the county roles read every town, and an event of a town the deployment does not serve is
dead-lettered. Events are produced straight onto Kafka: only what dispatch itself does is checked."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from devstack.stack import Stack
from dispatch import rules
from townflow_shared.county import load_county
from townflow_shared.events import RequestFiled, RequestFiledData, new_event
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import QINGHE, SHIQIAO, Api, eventually
from .kafka_tools import about, event_of, produce, read_all, wait_for_record

FILED = "intake.request.filed.v1"
DISPATCHED = "dispatch.task.dispatched.v1"
COUNTY = load_county(DEMO_COUNTY_DIR)
# A Tuesday; the next day is 石桥镇's own day off (丰收节), a working day in 青禾镇.
NOW = datetime.fromisoformat("2026-09-22T10:00:00+08:00")
COUNTY_ADMIN = ("c001", "county_admin")
COUNTY_READER = ("c002", "county_reader")
QINGHE_CENTRE = ("s030", "command_centre")
SHIQIAO_CENTRE = ("s025", "command_centre")


def filed_event(town: str, item_code: str) -> RequestFiled:
    request_id = str(uuid.uuid4())
    return new_event(
        RequestFiled,
        RequestFiledData(request_id=request_id, ticket_no=f"{town}-20260922-{uuid.uuid4().int % 99999:05d}",
                         channel="window", item_code=item_code, colour="yellow", description="test",
                         village="V01", location="村委会", citizen_ref="0" * 64, filed_at=NOW),
        source="intake", town_code=town, subject=request_id, correlation_id=request_id, time=NOW)


async def file(bootstrap: str, event: RequestFiled) -> None:
    await produce(bootstrap, FILED, event.model_dump_json().encode(), key=event.key.encode(),
                  headers=[("content-type", b"application/json")])


@pytest.fixture(scope="module")
def bootstrap(county_stack: Stack) -> str:
    assert county_stack.kafka is not None
    return county_stack.kafka.bootstrap


@pytest.fixture(scope="module")
async def dispatch(county_stack: Stack) -> Api:
    api = Api(county_stack, "dispatch")
    response = await api.call("POST", "/v1/admin/clock", as_=COUNTY_ADMIN, json={"now": NOW.isoformat()})
    assert response.status_code == 200, response.text
    return api


async def task_for(dispatch: Api, request_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        response = await dispatch.call("GET", "/v1/tasks", as_=COUNTY_READER, params={"request_id": request_id})
        assert response.status_code == 200, response.text
        return response.json()[0] if response.json() else None

    return await eventually(found, what=f"the task of {request_id}")


async def test_one_item_code_is_dispatched_by_each_towns_own_posts_staff_and_calendar(
        dispatch: Api, bootstrap: str) -> None:
    events = {town: {item: filed_event(town, item) for item in ("S001", "S009")} for town in (QINGHE, SHIQIAO)}
    for by_item in events.values():
        for event in by_item.values():
            await file(bootstrap, event)

    for town_code, by_item in events.items():
        town = COUNTY.towns[town_code]
        for item_code, event in by_item.items():
            item = town.catalog[item_code]
            post = town.posts[item.post]
            task = await task_for(dispatch, event.data.request_id)
            assert task["town_code"] == town_code
            assert (task["post"], task["assignee"], task["assigned_via"]) == (post.code, post.a_holder, "A")
            expected = rules.deadlines("yellow", item, NOW, town.calendar, town.rules.dispatch)
            assert datetime.fromisoformat(task["resolve_by"]) == expected.resolve_by
            published = event_of(await wait_for_record(bootstrap, DISPATCHED, about(event.data.request_id)))
            assert published["town_code"] == town_code
            assert (published["data"]["post"], published["data"]["assignee"]) == (post.code, post.a_holder)

    # S001: 户籍办理岗 s049 in 青禾镇, the combined window s038 in 石桥镇.
    assert COUNTY.towns[QINGHE].posts["household"].a_holder == "s049"
    assert COUNTY.towns[SHIQIAO].catalog["S001"].post == "household-window"
    # S009 has 5 working days in both towns, but 石桥镇 is off on 2026-09-23: its deadline is later.
    qinghe_s009 = await task_for(dispatch, events[QINGHE]["S009"].data.request_id)
    shiqiao_s009 = await task_for(dispatch, events[SHIQIAO]["S009"].data.request_id)
    assert datetime.fromisoformat(shiqiao_s009["resolve_by"]) > datetime.fromisoformat(qinghe_s009["resolve_by"])


async def test_a_towns_staff_reach_only_their_towns_tasks_and_the_county_reads_all(
        dispatch: Api, bootstrap: str) -> None:
    qinghe_event, shiqiao_event = filed_event(QINGHE, "S001"), filed_event(SHIQIAO, "S001")
    await file(bootstrap, qinghe_event)
    await file(bootstrap, shiqiao_event)
    qinghe_task = await task_for(dispatch, qinghe_event.data.request_id)
    shiqiao_task = await task_for(dispatch, shiqiao_event.data.request_id)
    qinghe, shiqiao = dispatch.of_town(QINGHE), dispatch.of_town(SHIQIAO)
    other = f"/v1/tasks/{shiqiao_task['task_id']}"

    # 青禾镇's command centre: 石桥镇's task is not found, and acting on it is forbidden.
    not_found = await qinghe.call("GET", other, as_=QINGHE_CENTRE)
    assert not_found.status_code == 404 and not_found.json()["code"] == "task.not_found"  # as one that is not there
    not_yours = await qinghe.call("POST", f"{other}/accept", as_=QINGHE_CENTRE)
    assert not_yours.status_code == 403 and not_yours.json()["code"] == "town.not_yours"
    assert (await qinghe.call("POST", f"{other}/redispatch", as_=QINGHE_CENTRE,
                              json={"post": "household"})).status_code == 403
    assert (await qinghe.call("POST", f"{other}/verify", as_=QINGHE_CENTRE,
                              json={"passed": True})).status_code == 403
    assert (await qinghe.call("POST", f"{other}/extension/approve", as_=QINGHE_CENTRE)).status_code == 403
    # The same staff id in 青禾镇 is not 石桥镇's assignee.
    assert (await qinghe.call("POST", f"{other}/accept", as_=(shiqiao_task["assignee"], "staff"))).status_code == 403
    # Its lists hold only its own town.
    listed = (await qinghe.call("GET", "/v1/tasks", as_=QINGHE_CENTRE, params={"limit": 1000})).json()
    assert {t["town_code"] for t in listed} == {QINGHE}
    assert qinghe_task["task_id"] in {t["task_id"] for t in listed}
    board = (await qinghe.call("GET", "/v1/board", as_=QINGHE_CENTRE)).json()
    assert {t["town_code"] for t in board["overdue"] + board["returned"] + board["escalated"]} <= {QINGHE}
    assert (await qinghe.call("GET", "/v1/tasks", as_=QINGHE_CENTRE, params={"town": SHIQIAO})).status_code == 404  # as if not there

    # 石桥镇's own assignee acts on it.
    response = await shiqiao.call("POST", f"{other}/accept", as_=(shiqiao_task["assignee"], "staff"))
    assert response.status_code == 200, response.text

    # The county reader lists every town, or one; an unknown town is named.
    reader = dispatch.of_town(None)
    every = (await reader.call("GET", "/v1/tasks", as_=COUNTY_READER, params={"limit": 1000})).json()
    ids = {t["task_id"] for t in every}
    assert {qinghe_task["task_id"], shiqiao_task["task_id"]} <= ids
    only = (await reader.call("GET", "/v1/tasks", as_=COUNTY_READER, params={"town": SHIQIAO})).json()
    assert {t["town_code"] for t in only} == {SHIQIAO}
    assert (await reader.call("GET", other, as_=COUNTY_READER)).status_code == 200
    assert (await reader.call("GET", "/v1/board", as_=COUNTY_READER, params={"town": QINGHE})).status_code == 200
    unknown = await reader.call("GET", "/v1/tasks", as_=COUNTY_READER, params={"town": "321003999"})
    # A town the deployment does not serve is answered as the town scope's table says (scope.py).
    assert unknown.status_code == 404
    assert (unknown.json()["code"], unknown.json()["field"]) == ("town.not_served", "town")
    # Reading is not acting.
    assert (await reader.call("POST", f"/v1/tasks/{qinghe_task['task_id']}/accept",
                              as_=COUNTY_READER)).status_code == 403


async def test_off_post_is_registered_in_the_callers_town(dispatch: Api, bootstrap: str) -> None:
    """s010 and s011 hold 青禾镇's social-security post; s011 is also 石桥镇's medical-insurance
    A holder. Registering 青禾镇's s010 and s011 off-post moves 青禾镇's S002 to the module
    leader, while 石桥镇's s011 still takes 石桥镇's S002."""
    qinghe = dispatch.of_town(QINGHE)
    for staff_id in ("s010", "s011"):
        response = await qinghe.call("POST", f"/v1/staff/{staff_id}/off-post", as_=QINGHE_CENTRE, json={
            "from": "2026-09-22T00:00:00+08:00", "to": "2026-09-23T00:00:00+08:00", "reason": "培训"})
        assert response.status_code == 201, response.text
        assert response.json()["town_code"] == QINGHE
    # 石桥镇's command centre cannot register in 青禾镇.
    response = await dispatch.of_town(SHIQIAO).call(
        "POST", "/v1/staff/s010/off-post", as_=SHIQIAO_CENTRE, params={"town": QINGHE},
        json={"from": "2026-09-22T00:00:00+08:00", "to": "2026-09-23T00:00:00+08:00", "reason": "x"})
    assert response.status_code == 403 and response.json()["code"] == "town.not_yours"

    qinghe_event, shiqiao_event = filed_event(QINGHE, "S002"), filed_event(SHIQIAO, "S002")
    await file(bootstrap, qinghe_event)
    await file(bootstrap, shiqiao_event)
    qinghe_task = await task_for(dispatch, qinghe_event.data.request_id)
    shiqiao_task = await task_for(dispatch, shiqiao_event.data.request_id)
    town = COUNTY.towns[QINGHE]
    assert (qinghe_task["assignee"], qinghe_task["assigned_via"]) == (town.modules["service_centre"].leader, "leader")
    assert (shiqiao_task["assignee"], shiqiao_task["assigned_via"]) == ("s011", "A")


async def test_an_event_of_a_town_not_served_is_dead_lettered(dispatch: Api, bootstrap: str) -> None:
    event = filed_event("321003199", "S001")
    await file(bootstrap, event)

    async def dead_lettered() -> dict[str, bytes] | None:
        for record in await read_all(bootstrap, FILED + ".dlq"):
            headers = dict(record.headers)
            if headers.get("x-dlq-service") == b"dispatch" and about(event.data.request_id)(record):
                return headers
        return None

    headers = await eventually(dead_lettered, what="the event in the dead-letter topic")
    assert b"town 321003199 is not served by this deployment" in headers["x-dlq-error"]
    listed = await dispatch.call("GET", "/v1/tasks", as_=COUNTY_READER, params={"request_id": event.data.request_id})
    assert listed.json() == []
