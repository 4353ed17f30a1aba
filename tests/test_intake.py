"""Intake on the real stack (SPEC §5.2): channels, validation, colours, tickets, the timeline,
rating, and who sees what."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from devstack.stack import Stack
from townflow_shared.events import Finding, InspectionDone, InspectionDoneData, TaskDispatched, new_event

from .conftest import CLERK, COMMAND, Api, eventually, file_matter, filing, set_clocks, status_of, task_of
from .kafka_tools import about, event_of, produce, wait_for_record

CHANNEL_EXTRAS = {
    "window": {}, "hotline": {}, "online": {}, "self_service": {},
    "proxy": {"proxy_agent_id": "s035"},
    "village_station": {"village_record_id": "QH-2026-001"},
}


async def test_every_channel_files_and_reaches_dispatch(stack: Stack, intake: Api, dispatch: Api,
                                                        bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    for channel, extras in CHANNEL_EXTRAS.items():
        ticket = await file_matter(intake, channel=channel, item_code="S002", **extras)
        record = await wait_for_record(bootstrap, "intake.request.filed.v1", about(ticket["request_id"]))
        data = event_of(record)["data"]
        assert data["channel"] == channel
        for field, value in extras.items():
            assert data[field] == value
        task = await task_of(dispatch, ticket["request_id"])
        assert task["post"] == "social-security"


async def test_channel_specific_fields_are_required_and_named(intake: Api) -> None:
    for channel, field in (("proxy", "proxy_agent_id"), ("village_station", "village_record_id")):
        response = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(channel=channel))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert (problem["code"], problem["field"]) == ("filing.channel_field_missing", field), problem
        assert problem["params"] == {"channel": channel}


async def test_every_invalid_field_is_named(intake: Api) -> None:
    cases = [
        (filing(channel="fax"), "channel", "value.not_allowed"),
        (filing(colour="purple"), "colour", "value.not_allowed"),
        (filing(description=""), "description", "value.too_short"),
        (filing(citizen={"name": "某人", "phone": "abc"}), "citizen.phone", "citizen.phone_malformed"),
        (filing(citizen={"name": "某人", "id_number": "123"}), "citizen.id_number", "citizen.id_number_malformed"),
        (filing(citizen={"name": "某人"}), "citizen", "citizen.contact_missing"),
        (filing(item_code="E003", target="9132\u200b0100MA1X"), "target", "value.invisible_character"),
        (filing(unexpected=1), "unexpected", "value.unexpected"),
    ]
    for body, field, code in cases:
        response = await intake.call("POST", "/v1/requests", as_=CLERK, json=body)
        assert response.status_code == 422, (body, response.text)
        errors = response.json()["errors"]
        assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in errors], errors
        assert "^" not in response.text and "pattern" not in response.text  # no regex reaches a person


async def test_a_filing_as_documented_that_the_town_refuses_is_a_409_naming_every_field(intake: Api) -> None:
    """What the OpenAPI document allows is never a 422: what the town does not have (a village,
    a proxy agent) and what the item needs (a target) is a 409, every field at fault named."""
    body = filing(item_code="E003", channel="proxy", proxy_agent_id="s999", village="V99")
    response = await intake.call("POST", "/v1/requests", as_=CLERK, json=body)
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["code"], response.json()["field"]) == ("filing.village_unknown", "village")
    assert {(e["field"], e["code"]) for e in response.json()["errors"]} == {
        ("village", "filing.village_unknown"), ("proxy_agent_id", "filing.proxy_agent_unknown"),
        ("target", "filing.target_missing")}


async def test_unknown_item_answers_with_the_closest_items(intake: Api) -> None:
    response = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(item_code="农村建房"))
    assert response.status_code == 409
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("item.unknown", "item_code")
    assert "J001" in problem["params"]["suggestions"]
    assert len(problem["params"]["suggestion_names"]) == len(problem["params"]["suggestions"])
    response = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(item_code="S0O1"))
    assert "S001" in response.json()["params"]["suggestions"]


async def test_third_filing_of_the_same_item_by_the_same_citizen_is_raised_one_colour(
        stack: Stack, intake: Api) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    citizen = {"name": "重复来访", "id_number": f"3210031990{uuid.uuid4().int % 10**7:07d}X"}
    colours = [(await file_matter(intake, item_code="S007", citizen=citizen))["colour"] for _ in range(3)]
    assert colours == ["yellow", "yellow", "orange"]
    other_item = await file_matter(intake, item_code="S006", citizen=citizen)
    assert other_item["colour"] == "yellow"


async def test_ticket_numbers_never_repeat_under_concurrent_filing(stack: Stack, intake: Api) -> None:
    await set_clocks(stack, "2026-12-01T09:00:00+08:00")
    tickets = await asyncio.gather(*(file_matter(intake, item_code="S010") for _ in range(20)))
    numbers = [t["ticket_no"] for t in tickets]
    assert len(set(numbers)) == 20
    assert all(n.startswith("321003104-20261201-") for n in numbers)
    sequences = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert sequences == list(range(sequences[0], sequences[0] + 20))


async def test_filings_arriving_together_are_written_together_and_keep_every_rule(
        stack: Stack, intake: Api, databases: dict[str, asyncpg.Pool]) -> None:
    """Concurrent filings share transactions (group commit); within one, the repeat rule, the
    gap-free tickets and a retried Idempotency-Key must hold as they do one at a time."""
    await set_clocks(stack, "2026-12-02T09:00:00+08:00")
    citizen = {"name": "同时来访", "id_number": f"3210031991{uuid.uuid4().int % 10**7:07d}X"}
    key, body = f"burst-{uuid.uuid4()}", filing(item_code="S010")
    used_key, used_body = f"used-{uuid.uuid4()}", filing(item_code="S010")

    def post(json: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return intake.call("POST", "/v1/requests", as_=CLERK, json=json, headers=headers or {})

    # Which of concurrent requests comes first is not defined: a key reused with another body
    # is one filed before the burst, so only the retries of `key` race each other.
    assert (await post(used_body, {"Idempotency-Key": used_key})).status_code == 201
    answers = await asyncio.gather(
        *(post(filing(item_code="S007", citizen=citizen)) for _ in range(3)),
        *(post(body, {"Idempotency-Key": key}) for _ in range(3)),
        post({**used_body, "description": "另一件事"}, {"Idempotency-Key": used_key}),
        *(post(filing(item_code="S001")) for _ in range(25)))
    repeats, retried, reused, others = answers[:3], answers[3:6], answers[6], answers[7:]
    assert all(a.status_code == 201 for a in [*repeats, *retried, *others]), [a.text for a in answers]
    assert sorted(a.json()["colour"] for a in repeats) == ["orange", "yellow", "yellow"]
    assert len({a.json()["request_id"] for a in retried}) == 1
    assert reused.status_code == 409
    assert (reused.json()["code"], reused.json()["field"]) == ("idempotency.key_reused", "Idempotency-Key")

    filed = [a.json() for a in [*repeats, retried[0], *others]]
    sequences = sorted(int(f["ticket_no"].rsplit("-", 1)[1]) for f in filed)
    assert sequences == list(range(sequences[0], sequences[0] + len(filed)))  # no gap, none twice
    rows = await databases["intake"].fetch(
        "SELECT request_id::text, ticket_no, colour FROM requests WHERE ticket_no = ANY($1)",
        [f["ticket_no"] for f in filed])
    assert sorted((r["request_id"], r["ticket_no"], r["colour"]) for r in rows) == sorted(
        (f["request_id"], f["ticket_no"], f["colour"]) for f in filed)
    batches = await databases["intake"].fetchval(
        "SELECT count(DISTINCT xmin::text) FROM requests WHERE ticket_no = ANY($1)", [f["ticket_no"] for f in filed])
    assert batches < len(filed)  # some of them did share a transaction


async def test_status_needs_the_access_code_and_hides_personal_data(stack: Stack, intake: Api,
                                                                    dispatch: Api) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    ticket = await file_matter(intake)
    path = f"/v1/requests/{ticket['ticket_no']}"
    wrong = ("2" if ticket["access_code"][0] != "2" else "3") + ticket["access_code"][1:]
    unknown = "/v1/requests/321003104-20261123-99999"
    for refused in (await intake.call("GET", path), await intake.call("GET", path, params={"code": wrong}),
                    await intake.call("GET", unknown, params={"code": ticket["access_code"]})):
        # One answer for all three: nothing tells a wrong code from a ticket that does not exist.
        assert refused.status_code == 404 and refused.json()["code"] == "ticket.not_found", refused.text
    malformed = await intake.call("GET", path, params={"code": "WRONG1"})  # O and 1 are never issued
    assert malformed.status_code == 422
    assert (malformed.json()["code"], malformed.json()["field"]) == ("ticket.code_malformed", "code")
    view = await status_of(intake, ticket, "dispatched")
    assert "citizen" not in view and "测试群众" not in str(view)
    assert [s["step"] for s in view["timeline"]][:2] == ["filed", "dispatched"]
    clerk_view = (await intake.call("GET", path, as_=CLERK)).json()
    assert clerk_view["citizen"]["name"] == "测试群众"


async def test_rating_only_after_completion_and_only_once(stack: Stack, intake: Api, dispatch: Api,
                                                          bootstrap: str) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    ticket = await file_matter(intake, item_code="S002")
    rate = f"/v1/requests/{ticket['ticket_no']}/rating"
    code = {"code": ticket["access_code"]}
    task = await task_of(dispatch, ticket["request_id"])
    early = await intake.call("POST", rate, params=code, json={"rating": "satisfied"})
    assert early.status_code == 409 and early.json()["code"] == "rating.not_completed", early.text
    assert early.json()["params"]["status"] in ("filed", "dispatched")

    assignee = (task["assignee"], "staff")
    assert (await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/accept", as_=assignee)).status_code == 200
    complete = f"/v1/tasks/{task['task_id']}/complete"
    blank = await dispatch.call("POST", complete, as_=assignee, json={"resolution": "已参保", "reply": " \u3000"})
    assert blank.status_code == 422 and (blank.json()["code"], blank.json()["field"]) == ("task.reply_blank", "reply")
    missing = await dispatch.call("POST", complete, as_=assignee, json={"resolution": "已参保"})
    assert missing.status_code == 422 and (missing.json()["code"], missing.json()["field"]) == ("value.missing", "reply")
    done = await dispatch.call("POST", complete, as_=assignee,
                               json={"resolution": "已参保", "reply": "已为您办理医保参保，咨询电话 139 1234 5678。"})
    assert done.status_code == 200, done.text
    # Issue #27: the answer reaches the citizen's status read (masked as it crossed the topic), with
    # the department handling it and the date promised; now it may be rated.
    view = await status_of(intake, ticket, "completed")
    assert view["reply"] == "已为您办理医保参保，咨询电话 139****5678。"
    assert (view["stage"], view["may_rate"], view["department"]) == ("answered", True, "便民服务中心")
    assert datetime.fromisoformat(view["promised_by"]) == datetime.fromisoformat(task["resolve_by"])
    detail = (await dispatch.call("GET", f"/v1/tasks/{task['task_id']}", as_=COMMAND)).json()
    assert detail["reply"] == "已为您办理医保参保，咨询电话 139 1234 5678。"  # the closure check reads it whole

    wrong_code = await intake.call("POST", rate, params={"code": "ZZZZZZ"}, json={"rating": "satisfied"})
    assert wrong_code.status_code == 404 and wrong_code.json()["code"] == "ticket.not_found"
    great = await intake.call("POST", rate, params=code, json={"rating": "great"})
    assert great.status_code == 422
    assert (great.json()["code"], great.json()["field"]) == ("value.not_allowed", "rating")
    first = await intake.call("POST", rate, params=code, json={"rating": "basically_satisfied"})
    assert first.status_code == 200, first.text
    again = await intake.call("POST", rate, params=code, json={"rating": "satisfied"})
    assert again.status_code == 409 and again.json()["code"] == "rating.already_given", again.text
    record = await wait_for_record(bootstrap, "intake.request.rated.v1", about(ticket["request_id"]))
    assert event_of(record)["data"]["rating"] == "basically_satisfied"
    view = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}", params=code)).json()
    assert [s["step"] for s in view["timeline"]] == ["filed", "dispatched", "accepted", "completed", "rated"]


async def test_catalog_lists_items_to_any_signed_in_caller(intake: Api) -> None:
    assert (await intake.call("GET", "/v1/catalog")).status_code == 401
    items = (await intake.call("GET", "/v1/catalog", as_=COMMAND)).json()
    assert {"S001", "J001", "E006"} <= {i["code"] for i in items}


async def test_an_inspection_arriving_before_the_dispatch_it_covers_still_reaches_the_timeline(
        stack: Stack, intake: Api, bootstrap: str, databases: dict[str, asyncpg.Pool]) -> None:
    """inspection.done and task.dispatched travel on different topics, with no order between them."""
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    ticket = await file_matter(intake, item_code="S002")
    dispatched = event_of(await wait_for_record(
        bootstrap, TaskDispatched.topic, lambda r: event_of(r)["data"]["request_id"] == ticket["request_id"]))
    # A second task of the same matter (as after a redispatch) whose inspection arrives first.
    late = dict(dispatched, id=str(uuid.uuid4()), data=dict(dispatched["data"], task_id=str(uuid.uuid4())))
    now = datetime.fromisoformat("2026-11-23T11:00:00+08:00")
    inspection_id = str(uuid.uuid4())
    early = new_event(InspectionDone, InspectionDoneData(
        inspection_id=inspection_id, target="site-1", task_ids=[late["data"]["task_id"]], units=["enforcement"],
        officers=["s026"], findings=[Finding(task_id=late["data"]["task_id"], outcome="compliant")],
        started_at=now, finished_at=now), source="enforcement", town_code="321003104", subject=inspection_id,
        correlation_id=ticket["request_id"], time=now)
    await produce(bootstrap, InspectionDone.topic, early.model_dump_json().encode(), key=early.key.encode())
    await eventually(lambda: databases["intake"].fetchval(  # handled while the task is still unknown
        "SELECT true FROM early_inspection_steps WHERE task_id = $1", late["data"]["task_id"]),
        what="the inspection waiting for its task")
    await produce(bootstrap, TaskDispatched.topic, json.dumps(late).encode(), key=ticket["request_id"].encode())

    async def inspected() -> list[dict[str, Any]]:
        view = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}",
                                  params={"code": ticket["access_code"]})).json()
        return [s for s in view["timeline"] if s["step"] == "inspected"]

    steps = await eventually(inspected, what="the early inspection on the timeline")
    assert len(steps) == 1


async def test_the_matter_shows_its_citizen_to_the_assignee_only_and_the_read_is_recorded(
        stack: Stack, intake: Api, dispatch: Api) -> None:
    """Issue #27: intake follows the task's dispatch from its topic and answers the matter with its
    citizen to the assignee (recorded, for the appraisal office), without it to other staff."""
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    ticket = await file_matter(intake, description="户口登记，回电 13912345678")
    task = await task_of(dispatch, ticket["request_id"])
    path = f"/v1/tasks/{task['task_id']}/matter"
    assignee = (task["assignee"], "staff")

    async def seen_by_the_assignee() -> dict[str, Any] | None:
        response = await intake.call("GET", path, as_=assignee)
        assert response.status_code in (200, 404), response.text  # 404: the dispatch not followed yet
        return dict(response.json()) if response.status_code == 200 and response.json()["citizen"] else None
    seen = await eventually(seen_by_the_assignee, what="intake to follow the task's dispatch")
    assert seen["citizen"]["name"] == "测试群众" and seen["citizen_seen_as"] == "assignee"
    assert (seen["item_name"], seen["village_name"], seen["filed_at"][-6:]) == ("新生儿落户", "青禾村", "+08:00")
    other = (await intake.call("GET", path, as_=("s014", "staff"))).json()
    assert other["citizen"] is None and "13912345678" not in other["description"]
    record = await intake.call("GET", "/v1/personal-data-reads", as_=("s032", "appraisal_admin"),
                               params={"period": "2026-11", "staff": task["assignee"]})
    assert record.status_code == 200, record.text
    mine = [r for r in record.json()["reads"] if r["ticket_no"] == ticket["ticket_no"]]
    assert [(r["seen_as"], r["task_id"]) for r in mine] == [("assignee", task["task_id"])]
    assert "测试群众" not in record.text
