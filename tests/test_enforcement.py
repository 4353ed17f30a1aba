"""Enforcement on the real stack (SPEC §5.4): combined inspections, the result rules, cases within
their legal limits, transfers, random plans."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from devstack.stack import Stack

from .conftest import Api, eventually, file_matter, set_clocks, task_of
from .kafka_tools import event_of, wait_for_record

OFFICER = ("s026", "officer")
CERTIFIED = ["s026", "s027"]


def new_target() -> str:
    return f"91321003MA{uuid.uuid4().hex[:8].upper()}"


async def inspection_with(enforcement: Api, target: str, needs: int, status: str = "planned") -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        rows = (await enforcement.call("GET", "/v1/inspections", as_=OFFICER,
                                       params={"target": target, "status": status})).json()
        return next((r for r in rows if len(r["needs"]) >= needs), None)

    return await eventually(find, what=f"an inspection of {target} with {needs} needs")


async def file_for(intake: Api, dispatch: Api, item: str, target: str) -> dict[str, Any]:
    ticket = await file_matter(intake, item_code=item, target=target)
    return await task_of(dispatch, ticket["request_id"])


async def test_three_matters_about_one_enterprise_become_one_inspection(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    target = new_target()
    tasks = [await file_for(intake, dispatch, item, target) for item in ("E003", "E007", "E004")]
    inspection = await inspection_with(enforcement, target, 3)
    assert set(inspection["units"]) == {"县应急管理局", "县生态环境局", "县市场监督管理局"}
    assert inspection["visits_saved"] == 2
    assert {n["task_id"] for n in inspection["needs"]} == {t["task_id"] for t in tasks}
    by_unit = (await enforcement.call("GET", "/v1/inspections", as_=OFFICER,
                                      params={"unit": "县生态环境局", "status": "planned"})).json()
    assert inspection["inspection_id"] in [i["inspection_id"] for i in by_unit]

    path = f"/v1/inspections/{inspection['inspection_id']}"
    early = await enforcement.call("POST", f"{path}/result", as_=OFFICER, json={
        "officers": CERTIFIED, "present_units": inspection["units"], "findings": []})
    assert early.status_code == 409 and early.json()["code"] == "inspection.not_started"
    assert early.headers["content-type"].startswith("application/problem+json")
    not_officer = await enforcement.call("POST", f"{path}/start", as_=("s014", "staff"))
    assert not_officer.status_code == 403 and not_officer.json()["code"] == "auth.role_missing"
    alone = await enforcement.call("POST", f"{path}/start", as_=OFFICER)  # a team of one: the starter
    assert alone.status_code == 422 and alone.json()["code"] == "inspection.too_few_certified", alone.text
    assert alone.json()["field"] == "officers" and alone.json()["params"]["certified"] == 1
    assert (await enforcement.call("POST", f"{path}/start", as_=OFFICER, json={"officers": ["s027"]})).status_code == 200
    again = await enforcement.call("POST", f"{path}/start", as_=OFFICER, json={"officers": ["s027"]})
    assert again.status_code == 409 and again.json()["code"] == "inspection.not_planned"
    assert again.json()["params"] == {"status": "started"}

    # A need arriving after the start opens a new inspection.
    late = await file_for(intake, dispatch, "E009", target)
    newer = await inspection_with(enforcement, target, 1)
    assert newer["inspection_id"] != inspection["inspection_id"]
    assert [n["task_id"] for n in newer["needs"]] == [late["task_id"]]

    result = await enforcement.call("POST", f"{path}/result", as_=OFFICER, json={
        "officers": CERTIFIED, "present_units": inspection["units"],
        "findings": [{"task_id": t["task_id"], "outcome": "compliant"} for t in tasks]})
    assert result.status_code == 200, result.text
    record = await wait_for_record(bootstrap, "enforcement.inspection.done.v1",
                                   lambda r: event_of(r)["data"]["inspection_id"] == inspection["inspection_id"])
    done = event_of(record)
    assert record.key == inspection["inspection_id"].encode()
    assert set(done["data"]["task_ids"]) == {t["task_id"] for t in tasks}
    assert done["data"]["officers"] == CERTIFIED
    for task in tasks:
        closed = await task_of(dispatch, task["request_id"], status="closed")
        assert closed["inspection_id"] == inspection["inspection_id"]


async def test_joint_house_building_visit_needs_every_unit_and_two_certified_officers(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    site = f"SITE-{uuid.uuid4().hex[:6]}"
    task = await file_for(intake, dispatch, "J001", site)
    assert task["kind"] == "joint_visit"
    inspection = await inspection_with(enforcement, site, 1)
    assert inspection["units"] == ["land", "planning", "agri"]
    path = f"/v1/inspections/{inspection['inspection_id']}"
    started = await enforcement.call("POST", f"{path}/start", as_=OFFICER, json={"officers": ["s040", "s041"]})
    assert started.json()["assigned_officers"] == ["s026", "s040", "s041"], started.text  # the starter goes too
    finding = [{"task_id": task["task_id"], "outcome": "compliant", "note": "选址符合规划"}]
    land_officer = ("s040", "officer")  # on the team started

    absent = await enforcement.call("POST", f"{path}/result", as_=land_officer, json={
        "officers": ["s040", "s041"], "present_units": ["land", "planning"], "findings": finding})
    assert absent.status_code == 422
    assert absent.json()["code"] == "inspection.unit_absent" and absent.json()["field"] == "present_units"
    assert absent.json()["params"] == {"units": ["agri"]}

    one_officer = await enforcement.call("POST", f"{path}/result", as_=land_officer, json={
        "officers": ["s040", "s029"], "present_units": ["land", "planning", "agri"], "findings": finding})
    assert one_officer.status_code == 422
    assert one_officer.json()["code"] == "inspection.too_few_certified" and one_officer.json()["field"] == "officers"
    assert one_officer.json()["params"]["uncertified"] == ["s029"]

    no_finding = await enforcement.call("POST", f"{path}/result", as_=land_officer, json={
        "officers": ["s040", "s041"], "present_units": ["land", "planning", "agri"], "findings": []})
    assert no_finding.status_code == 422
    assert no_finding.json()["code"] == "inspection.finding_missing" and no_finding.json()["field"] == "findings"
    assert no_finding.json()["params"] == {"tasks": [task["task_id"]]}

    ok = await enforcement.call("POST", f"{path}/result", as_=land_officer, json={
        "officers": ["s040", "s041"], "present_units": ["land", "planning", "agri"], "findings": finding})
    assert ok.status_code == 200, ok.text
    await task_of(dispatch, task["request_id"], status="closed")


async def _inspect(enforcement: Api, inspection: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    path = f"/v1/inspections/{inspection['inspection_id']}"
    assert (await enforcement.call("POST", f"{path}/start", as_=OFFICER,
                                   json={"officers": CERTIFIED})).status_code == 200
    result = await enforcement.call("POST", f"{path}/result", as_=OFFICER, json={
        "officers": CERTIFIED, "present_units": inspection["units"], "findings": findings})
    assert result.status_code == 200, result.text
    return dict(result.json())


async def test_rectify_creates_a_re_inspection(stack: Stack, intake: Api, dispatch: Api, enforcement: Api) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    target = new_target()
    task = await file_for(intake, dispatch, "E003", target)
    inspection = await inspection_with(enforcement, target, 1)
    bad = await enforcement.call("POST", f"/v1/inspections/{inspection['inspection_id']}/start", as_=OFFICER,
                                 json={"officers": CERTIFIED})
    assert bad.status_code == 200
    missing_date = await enforcement.call(
        "POST", f"/v1/inspections/{inspection['inspection_id']}/result", as_=OFFICER,
        json={"officers": CERTIFIED, "present_units": inspection["units"],
              "findings": [{"task_id": task["task_id"], "outcome": "rectify"}]})
    assert missing_date.status_code == 422 and missing_date.json()["code"] == "inspection.rectify_by_missing"
    assert missing_date.json()["field"] == "findings"
    ok = await enforcement.call(
        "POST", f"/v1/inspections/{inspection['inspection_id']}/result", as_=OFFICER,
        json={"officers": CERTIFIED, "present_units": inspection["units"],
              "findings": [{"task_id": task["task_id"], "outcome": "rectify", "rectify_by": "2026-12-10",
                            "note": "灭火器过期，限期更换"}]})
    assert ok.status_code == 200, ok.text
    again = await inspection_with(enforcement, target, 1)
    assert again["inspection_id"] != inspection["inspection_id"]
    need = again["needs"][0]
    assert need["source"] == "rectify" and need["task_id"] == task["task_id"]
    assert need["due"].startswith("2026-12-10T17:30")


async def _case_for(enforcement: Api, inspection_id: str) -> dict[str, Any]:
    rows = (await enforcement.call("GET", "/v1/cases", as_=OFFICER, params={"inspection_id": inspection_id})).json()
    assert len(rows) == 1
    return dict(rows[0])


async def test_a_case_walks_every_step_in_order_within_its_limits(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-03-02T09:00:00+08:00")
    cases = []
    for _ in range(2):
        target = new_target()
        task = await file_for(intake, dispatch, "E001", target)
        inspection = await inspection_with(enforcement, target, 1)
        await _inspect(enforcement, inspection, [{"task_id": task["task_id"], "outcome": "violation"}])
        cases.append(await _case_for(enforcement, inspection["inspection_id"]))
    walked, idle = cases
    assert walked["step"] == "filed" and walked["flag"] == "ok"
    steps = f"/v1/cases/{walked['case_id']}/steps"

    out_of_order = await enforcement.call("POST", steps, as_=OFFICER, json={"step": "decided", "decision": "罚款"})
    assert out_of_order.status_code == 409 and out_of_order.json()["code"] == "case.step_out_of_order"
    assert out_of_order.json()["params"] == {"current": "filed", "expected": "investigated", "requested": "decided"}
    for step in ("investigated", "reviewed"):
        assert (await enforcement.call("POST", steps, as_=OFFICER, json={"step": step})).status_code == 200
    no_decision = await enforcement.call("POST", steps, as_=OFFICER, json={"step": "decided"})
    assert no_decision.status_code == 422 and no_decision.json()["code"] == "case.decision_missing"
    assert no_decision.json()["field"] == "decision"

    # Day 61: both undecided cases are warned; the walked one records its one extension.
    await set_clocks(stack, "2026-05-02T09:00:00+08:00")
    async def warned(case_id: str) -> bool:
        return (await enforcement.call("GET", f"/v1/cases/{case_id}", as_=OFFICER)).json()["warned_at"] is not None

    await eventually(lambda: warned(idle["case_id"]), what="the day-60 warning")
    assert (await enforcement.call("GET", f"/v1/cases/{idle['case_id']}", as_=OFFICER)).json()["flag"] == "warning"
    extension = await enforcement.call("POST", f"/v1/cases/{walked['case_id']}/extension", as_=OFFICER,
                                       json={"reason": "案情复杂，经负责人批准延长"})
    assert extension.status_code == 200, extension.text
    # Warned in the same pass as the idle one, its next check is the first instant past the longer limit.
    extended = extension.json()
    assert extended["warned_at"] is not None
    assert datetime.fromisoformat(extended["next_flag_at"]) == \
        datetime.fromisoformat(extended["decision_due"]) + timedelta(microseconds=1)
    again = await enforcement.call("POST", f"/v1/cases/{walked['case_id']}/extension", as_=OFFICER,
                                   json={"reason": "again"})
    assert again.status_code == 409 and again.json()["code"] == "case.already_extended"

    # Day 95: the idle case is overdue; the extended one is not.
    await set_clocks(stack, "2026-06-05T09:00:00+08:00")

    async def overdue(case_id: str) -> bool:
        return (await enforcement.call("GET", f"/v1/cases/{case_id}", as_=OFFICER)).json()["overdue_at"] is not None

    await eventually(lambda: overdue(idle["case_id"]), what="the overdue flag")
    flagged = (await enforcement.call("GET", "/v1/cases", as_=OFFICER, params={"overdue": "true"})).json()
    assert idle["case_id"] in [c["case_id"] for c in flagged]
    assert walked["case_id"] not in [c["case_id"] for c in flagged]
    late_extension = await enforcement.call("POST", f"/v1/cases/{idle['case_id']}/extension", as_=OFFICER,
                                            json={"reason": "too late"})
    assert late_extension.status_code == 409 and late_extension.json()["code"] == "case.extension_too_late"
    assert late_extension.json()["params"] == {"day": 90}

    decided = await enforcement.call("POST", steps, as_=OFFICER, json={"step": "decided", "decision": "罚款500元"})
    assert decided.status_code == 200 and decided.json()["next_flag_at"] is None
    closed = await enforcement.call("POST", steps, as_=OFFICER, json={"step": "closed"})
    assert [s["step"] for s in closed.json()["steps"]] == ["filed", "investigated", "reviewed", "decided", "closed"]
    closed_again = await enforcement.call("POST", steps, as_=OFFICER, json={"step": "closed"})
    assert closed_again.status_code == 409 and closed_again.json()["code"] == "case.closed"

    async def published() -> list[str] | None:
        from .kafka_tools import read_all
        got = [event_of(r)["data"]["step"] for r in await read_all(bootstrap, "enforcement.case.updated.v1")
               if event_of(r)["data"]["case_id"] == walked["case_id"]]
        return got if len(got) == 5 else None

    assert await eventually(published, what="five case events") == \
        ["filed", "investigated", "reviewed", "decided", "closed"]


async def test_not_delegated_and_criminal_findings_are_transferred(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    target = new_target()
    pollution = await file_for(intake, dispatch, "E006", target)
    fire = await file_for(intake, dispatch, "E003", target)
    inspection = await inspection_with(enforcement, target, 2)
    await _inspect(enforcement, inspection, [
        {"task_id": pollution["task_id"], "outcome": "not_delegated", "note": "超标排放，权限在县局"},
        {"task_id": fire["task_id"], "outcome": "criminal", "note": "涉嫌重大责任事故"}])
    rows = (await enforcement.call("GET", "/v1/cases", as_=OFFICER,
                                   params={"inspection_id": inspection["inspection_id"]})).json()
    destinations = {r["task_id"]: r["transferred_to"] for r in rows}
    assert destinations[pollution["task_id"]] == "县生态环境局"
    assert "公安机关" in destinations[fire["task_id"]]
    assert {r["step"] for r in rows} == {"transferred"}
    record = await wait_for_record(
        bootstrap, "enforcement.case.updated.v1",
        lambda r: event_of(r)["data"]["task_id"] == pollution["task_id"] and event_of(r)["data"]["step"] == "transferred")
    assert event_of(record)["data"]["transferred_to"] == "县生态环境局"
    case_id = rows[0]["case_id"]
    refused = await enforcement.call("POST", f"/v1/cases/{case_id}/steps", as_=OFFICER, json={"step": "investigated"})
    assert refused.status_code == 409 and refused.json()["code"] == "case.transferred"


async def test_the_same_seed_draws_the_same_random_plan(enforcement: Api, bootstrap: str) -> None:
    targets = [f"91321003MA{n:08d}" for n in range(30)]
    body = {"targets": targets, "sample_size": 6, "seed": 20261123}
    first = await enforcement.call("POST", "/v1/random-plans", as_=OFFICER, json=body)
    second = await enforcement.call("POST", "/v1/random-plans", as_=OFFICER,
                                    json={**body, "targets": list(reversed(targets))})
    other = await enforcement.call("POST", "/v1/random-plans", as_=OFFICER, json={**body, "seed": 7})
    assert first.status_code == second.status_code == 201, first.text
    assert first.json()["targets"] == second.json()["targets"]
    assert first.json()["targets"] != other.json()["targets"]
    for entry in first.json()["targets"]:
        assert len(set(entry["officers"])) == 2
    record = await wait_for_record(bootstrap, "enforcement.plan.published.v1",
                                   lambda r: event_of(r)["data"]["plan_id"] == first.json()["plan_id"])
    assert event_of(record)["data"]["targets"] == first.json()["targets"]
    too_many = await enforcement.call("POST", "/v1/random-plans", as_=OFFICER,
                                      json={**body, "sample_size": 31})
    assert too_many.status_code == 422 and too_many.json()["code"] == "plan.sample_too_large"
    assert too_many.json()["field"] == "sample_size" and too_many.json()["params"] == {"sample_size": 31, "targets": 30}
    assert (await enforcement.call("GET", f"/v1/plans/{first.json()['plan_id']}", as_=OFFICER)).status_code == 200


async def test_only_an_officer_on_the_inspection_or_the_enforcement_leader_posts_its_result(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api) -> None:
    """SPEC §6.1 who may act: the team named at the start (with its starter) are the inspection's
    officers; the 执法队长 (leader of the enforcement module) may always post. (An inspection the
    previous release started without a team, whose result's named officers post it, is a unit
    test's: this release starts none.)"""
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    outsider = ("s028", "officer")  # certified, in the enforcement module, but not on these visits
    leader = ("s006", "module_leader", "officer")

    async def started(team: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        target = new_target()
        task = await file_for(intake, dispatch, "E003", target)
        inspection = await inspection_with(enforcement, target, 1)
        path = f"/v1/inspections/{inspection['inspection_id']}"
        response = await enforcement.call("POST", f"{path}/start", as_=OFFICER, json={"officers": team})
        assert response.status_code == 200, response.text
        assert response.json()["assigned_officers"] == team
        return path, inspection, task

    def result(inspection: dict[str, Any], task: dict[str, Any], officers: list[str]) -> dict[str, Any]:
        return {"officers": officers, "present_units": inspection["units"],
                "findings": [{"task_id": task["task_id"], "outcome": "compliant"}]}

    # A team named at the start: naming oneself in the result does not join it.
    path, inspection, task = await started(CERTIFIED)
    refused = await enforcement.call("POST", f"{path}/result", as_=outsider,
                                     json=result(inspection, task, ["s028", "s026"]))
    assert refused.status_code == 403 and refused.json()["code"] == "inspection.not_officer"
    assert refused.json()["params"] == {"officer": "s028", "officers": "s026, s027"}
    unchanged = (await enforcement.call("GET", path, as_=OFFICER)).json()
    assert unchanged["status"] == "started"
    on_it = await enforcement.call("POST", f"{path}/result", as_=("s027", "officer"),
                                   json=result(inspection, task, CERTIFIED))
    assert on_it.status_code == 200, on_it.text
    await task_of(dispatch, task["request_id"], status="closed")

    # The enforcement module's leader posts for a team he is not on; another module's leader may not.
    path, inspection, task = await started(["s026", "s027"])
    other_leader = await enforcement.call("POST", f"{path}/result", as_=("s040", "module_leader", "officer"),
                                          json=result(inspection, task, CERTIFIED))
    assert other_leader.status_code == 403 and other_leader.json()["code"] == "inspection.not_officer"
    by_leader = await enforcement.call("POST", f"{path}/result", as_=leader, json=result(inspection, task, CERTIFIED))
    assert by_leader.status_code == 200, by_leader.text

    # A team of unknown staff is refused at the start.
    target = new_target()
    await file_for(intake, dispatch, "E003", target)
    fresh = await inspection_with(enforcement, target, 1)
    unknown = await enforcement.call("POST", f"/v1/inspections/{fresh['inspection_id']}/start", as_=OFFICER,
                                     json={"officers": ["s026", "nobody"]})
    assert unknown.status_code == 422 and unknown.json()["code"] == "inspection.unknown_staff"
    assert unknown.json()["field"] == "officers" and unknown.json()["params"] == {"staff": ["nobody"]}
