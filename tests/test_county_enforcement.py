"""Enforcement in a county (SPEC §8), on the demo county's own stack: the same target in three
towns is three inspections, each with its town's units; a town's staff see and act on their own
town's only; county roles read every town; 多头检查 is judged town by town; a task of a town the
deployment does not serve is dead-lettered. Tasks are produced straight onto Kafka, so only enforcement's own work is checked."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.stack import Stack
from townflow_shared.county import load_county
from townflow_shared.events import TaskDispatched, TaskDispatchedData, TaskKind, new_event
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import BAILU, QINGHE, SHIQIAO, Api, eventually
from .kafka_tools import produce, read_all, wait_for_record

DISPATCHED = "dispatch.task.dispatched.v1"
OFFICER = ("s026", "officer")          # certified in 青禾镇, not in 白鹭镇
COUNTY_READER = ("c001", "county_reader")
COUNTY_ADMIN = ("c000", "county_admin")
TOWNS = load_county(DEMO_COUNTY_DIR).towns


def certified(town: str) -> set[str]:
    return {s.id for s in TOWNS[town].staff.values() if s.enforcement_certificate}


def dispatched(town: str, item_code: str, kind: TaskKind, target: str) -> TaskDispatched:
    task_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    event: TaskDispatched = new_event(TaskDispatched, TaskDispatchedData(
        task_id=task_id, request_id=request_id, item_code=item_code, kind=kind, colour="yellow",
        village="V01", location="湖滨路", target=target, lead_module="enforcement", post="enforcement-city",
        assignee="s026", assigned_via="A", respond_by=now + timedelta(hours=2), resolve_by=now + timedelta(days=5),
        dispatched_at=now), source="dispatch", town_code=town, subject=task_id, correlation_id=request_id, time=now)
    return event


async def send(stack: Stack, event: TaskDispatched) -> None:
    assert stack.kafka is not None
    await produce(stack.kafka.bootstrap, DISPATCHED, event.model_dump_json().encode(),
                  key=event.data.request_id.encode())


async def planned_in(api: Api, town: str, target: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        rows = (await api.of_town(town).call("GET", "/v1/inspections", as_=OFFICER,
                                             params={"target": target})).json()
        return rows[0] if rows else None

    return await eventually(find, what=f"an inspection of {target} in town {town}")


async def test_one_target_in_three_towns_is_three_inspections_each_kept_to_its_town(county_stack: Stack) -> None:
    api = Api(county_stack, "enforcement")
    target = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    # J001 is 农村建房 in 青禾镇 and 石桥镇 with each town's own units; J101 is 白鹭镇's 民宿 visit.
    events = {QINGHE: dispatched(QINGHE, "J001", "joint_visit", target),
              SHIQIAO: dispatched(SHIQIAO, "J001", "joint_visit", target),
              BAILU: dispatched(BAILU, "J101", "joint_visit", target)}
    for event in events.values():
        await send(county_stack, event)
    qinghe, shiqiao, bailu = [await planned_in(api, town, target) for town in (QINGHE, SHIQIAO, BAILU)]
    assert (qinghe["town_code"], shiqiao["town_code"], bailu["town_code"]) == (QINGHE, SHIQIAO, BAILU)
    assert qinghe["units"] == ["land", "planning", "agri"]
    assert shiqiao["units"] == ["land", "econ", "agri"]
    assert bailu["units"] == ["tourism", "police", "market"]
    assert len({qinghe["inspection_id"], shiqiao["inspection_id"], bailu["inspection_id"]}) == 3
    assert [n["task_id"] for n in bailu["needs"]] == [events[BAILU].data.task_id]

    # A 青禾镇 officer: 白鹭镇's inspection is not there to read, and not theirs to start.
    of_qinghe = api.of_town(QINGHE)
    path = f"/v1/inspections/{bailu['inspection_id']}"
    absent = await of_qinghe.call("GET", path, as_=OFFICER)
    assert absent.status_code == 404 and absent.json()["code"] == "inspection.not_found"
    refused = await of_qinghe.call("POST", f"{path}/start", as_=OFFICER, json={})
    assert refused.status_code == 403 and refused.json()["code"] == "town.not_yours", refused.text
    listed = (await of_qinghe.call("GET", "/v1/inspections", as_=OFFICER, params={"target": target})).json()
    assert [r["inspection_id"] for r in listed] == [qinghe["inspection_id"]]
    other_list = await of_qinghe.call("GET", "/v1/inspections", as_=OFFICER, params={"town": BAILU})
    assert other_list.status_code == 404 and other_list.json()["code"] == "town.not_found"

    # The county's reader lists every town's, or one town's.
    county = api.of_town(None)
    every = (await county.call("GET", "/v1/inspections", as_=COUNTY_READER, params={"target": target})).json()
    assert {r["town_code"] for r in every} == {QINGHE, SHIQIAO, BAILU}
    one = (await county.call("GET", "/v1/inspections", as_=COUNTY_READER,
                             params={"target": target, "town": BAILU})).json()
    assert [r["inspection_id"] for r in one] == [bailu["inspection_id"]]
    unknown = await county.call("GET", "/v1/inspections", as_=COUNTY_READER, params={"town": "321003999"})
    # SPEC §8's one answer for a town the deployment does not serve (it was a 422 here before #25).
    assert unknown.status_code == 404 and unknown.json()["code"] == "town.not_served"
    assert unknown.json()["field"] == "town"
    assert (await county.call("POST", f"{path}/start", as_=COUNTY_READER, json={})).status_code == 403

    # 白鹭镇's result takes two of 白鹭镇's certified officers: 青禾镇's s026/s027 are not.
    assert {"s026", "s027"} <= certified(QINGHE) and not {"s026", "s027"} & certified(BAILU)
    assert {"s023", "s024"} <= certified(BAILU)
    of_bailu = api.of_town(BAILU)
    started = await of_bailu.call("POST", f"{path}/start", as_=("s023", "officer"), json={"officers": ["s024"]})
    assert started.status_code == 200, started.text
    result = {"present_units": bailu["units"],
              "findings": [{"task_id": events[BAILU].data.task_id, "outcome": "compliant"}]}
    wrong = await of_bailu.call("POST", f"{path}/result", as_=("s006", "module_leader"),
                                json={**result, "officers": ["s026", "s027"]})
    assert wrong.status_code == 422, wrong.text  # 白鹭镇's s026/s027 hold no certificate
    assert (wrong.json()["code"], wrong.json()["field"]) == ("inspection.too_few_certified", "officers")
    assert wrong.json()["params"]["uncertified"] == ["s026", "s027"]
    done = await of_bailu.call("POST", f"{path}/result", as_=("s006", "module_leader"),
                               json={**result, "officers": ["s023", "s024"]})
    assert done.status_code == 200, done.text
    assert county_stack.kafka is not None
    record = await wait_for_record(county_stack.kafka.bootstrap, "enforcement.inspection.done.v1",
                                   lambda r: bailu["inspection_id"].encode() in r.value)
    assert b'"town_code":"321003107"' in record.value.replace(b" ", b"")


async def test_random_plans_draw_the_officers_of_the_callers_town(county_stack: Stack) -> None:
    api = Api(county_stack, "enforcement")
    body = {"targets": [f"T{i}" for i in range(6)], "sample_size": 3, "seed": 20261123}
    county = api.of_town(None)
    missing = await county.call("POST", "/v1/random-plans", as_=COUNTY_ADMIN, json=body)
    assert missing.status_code == 422 and missing.json()["code"] == "town.required"
    assert missing.json()["field"] == "town_code"
    unknown = await county.call("POST", "/v1/random-plans", as_=COUNTY_ADMIN, json={**body, "town_code": "321003999"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "town.not_served"  # SPEC §8's one answer
    assert unknown.json()["field"] == "town_code"

    plan = await county.call("POST", "/v1/random-plans", as_=COUNTY_ADMIN, json={**body, "town_code": BAILU})
    assert plan.status_code == 201, plan.text
    assert plan.json()["town_code"] == BAILU
    assert all(set(t["officers"]) <= certified(BAILU) for t in plan.json()["targets"])

    mine = await api.of_town(QINGHE).call("POST", "/v1/random-plans", as_=OFFICER, json=body)
    assert mine.status_code == 201 and mine.json()["town_code"] == QINGHE
    assert all(set(t["officers"]) <= certified(QINGHE) for t in mine.json()["targets"])
    other = await api.of_town(QINGHE).call("POST", "/v1/random-plans", as_=OFFICER, json={**body, "town_code": BAILU})
    assert other.status_code == 403 and other.json()["code"] == "town.not_yours"

    qinghe_plans = (await api.of_town(QINGHE).call("GET", "/v1/plans", as_=OFFICER)).json()
    assert mine.json()["plan_id"] in {p["plan_id"] for p in qinghe_plans}
    assert plan.json()["plan_id"] not in {p["plan_id"] for p in qinghe_plans}
    hidden = await api.of_town(QINGHE).call("GET", f"/v1/plans/{plan.json()['plan_id']}", as_=OFFICER)
    assert hidden.status_code == 404 and hidden.json()["code"] == "plan.not_found"
    every = (await county.call("GET", "/v1/plans", as_=COUNTY_READER)).json()
    assert {mine.json()["plan_id"], plan.json()["plan_id"]} <= {p["plan_id"] for p in every}


async def test_a_task_of_a_town_not_served_is_dead_lettered(county_stack: Stack) -> None:
    assert county_stack.kafka is not None
    event = dispatched("321003999", "J001", "joint_visit", "91321003MAUNKNOWN")
    await send(county_stack, event)

    async def dead_lettered() -> list[dict[str, bytes]]:
        return [dict(r.headers) for r in await read_all(county_stack.kafka.bootstrap, DISPATCHED + ".dlq")  # type: ignore[union-attr]
                if dict(r.headers).get("x-dlq-service") == b"enforcement" and str(event.id).encode() in r.value]

    dead = await eventually(dead_lettered, what="the task of an unknown town in the dead-letter topic")
    assert b"town 321003999 is not served by this deployment" in dead[0]["x-dlq-error"]


async def visited_by(api: Api, stack: Stack, town: str, officer: tuple[str, str], item_code: str,
                     target: str) -> None:
    """A task of `town` about `target` whose inspection goes out on its own (started)."""
    await send(stack, dispatched(town, item_code, "enforcement", target))

    async def planned() -> dict[str, Any] | None:
        rows = (await api.of_town(town).call("GET", "/v1/inspections", as_=officer,
                                             params={"target": target, "status": "planned"})).json()
        return rows[0] if rows else None

    inspection = await eventually(planned, what=f"a planned inspection of {target} in {town}")
    partner = "s027" if town == QINGHE else "s024"  # a second certified officer (石桥镇 and 白鹭镇: s024)
    started = await api.of_town(town).call("POST", f"/v1/inspections/{inspection['inspection_id']}/start",
                                           as_=officer, json={"officers": [partner]})
    assert started.status_code == 200, started.text


async def test_repeated_inspections_are_kept_to_their_towns(county_stack: Stack) -> None:
    """多头检查 in a county: one target visited separately by two units in 青禾镇 and in 石桥镇, once
    in 白鹭镇. The county's list names each town's own; one town's list and each town's gauge
    only that town's; a new need is proposed to its own town's planned inspection."""
    api = Api(county_stack, "enforcement")
    target = f"91321003MA{uuid.uuid4().hex[:8].upper()}"
    shiqiao_officer = bailu_officer = ("s023", "officer")
    await visited_by(api, county_stack, QINGHE, OFFICER, "E003", target)            # 县应急管理局
    await visited_by(api, county_stack, QINGHE, OFFICER, "E004", target)            # 县市场监督管理局
    await visited_by(api, county_stack, SHIQIAO, shiqiao_officer, "E003", target)   # 县应急管理局
    await visited_by(api, county_stack, SHIQIAO, shiqiao_officer, "E005", target)   # 县生态环境局
    await visited_by(api, county_stack, BAILU, bailu_officer, "E004", target)       # once: no 多头

    async def alerts(staff_of: str | None, who: tuple[str, str], **params: str) -> list[dict[str, Any]]:
        response = await api.of_town(staff_of).call("GET", "/v1/inspections/alerts", as_=who, params=params)
        assert response.status_code == 200, response.text
        return [a for a in response.json() if a["target"] == target]

    every = await alerts(None, COUNTY_READER)
    assert [(a["town_code"], a["units"]) for a in every] == [
        (QINGHE, ["县应急管理局", "县市场监督管理局"]), (SHIQIAO, ["县应急管理局", "县生态环境局"])]
    assert all(len(a["visits"]) == 2 and a["proposed_inspection_id"] is None for a in every)
    assert [a["town_code"] for a in await alerts(None, COUNTY_READER, town=SHIQIAO)] == [SHIQIAO]
    assert [a["town_code"] for a in await alerts(QINGHE, OFFICER)] == [QINGHE]
    assert await alerts(BAILU, bailu_officer) == []

    need = dispatched(SHIQIAO, "E003", "enforcement", target)
    await send(county_stack, need)

    async def proposed() -> list[dict[str, Any]] | None:
        found = await alerts(None, COUNTY_READER)
        return found if any(a["proposed_needs"] for a in found) else None

    found = {a["town_code"]: a for a in await eventually(proposed, what="the need proposed in 石桥镇")}
    assert [n["task_id"] for n in found[SHIQIAO]["proposed_needs"]] == [need.data.task_id]
    assert found[QINGHE]["proposed_inspection_id"] is None and found[QINGHE]["proposed_needs"] == []

    async def gauges_match() -> bool:
        text = (await api.of_town(None).call("GET", "/metrics")).text
        for town, who in ((QINGHE, OFFICER), (SHIQIAO, shiqiao_officer), (BAILU, bailu_officer)):
            listed = (await api.of_town(town).call("GET", "/v1/inspections/alerts", as_=who)).json()
            gauge = re.search(rf'^townflow_enforcement_repeated_inspection_targets\{{town="{town}"\}} (\S+)$', text, re.M)
            if gauge is None or float(gauge[1]) != len(listed):
                return False
        return True

    await eventually(gauges_match, what="each town's repeated-inspection gauge")
