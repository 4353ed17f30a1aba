"""The audit trail on the running stack (issue #28): a staff action, a refusal and a read of a
citizen's personal data each leave a record the auditor finds through the service's API, and a
CloudEvent on the service's audit topic; neither carries the citizen's name or phone. Only an
auditor (and the roles that hold every role) reads the trail; the access matrix holds the towns."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.stack import Stack
from townflow_shared import audit, audit_trail
from townflow_shared.db import create_pool

from .conftest import CLERK, Api, eventually, file_matter, set_clocks, task_of
from .kafka_tools import event_of, wait_for_record

AUDITOR = ("a900", "auditor")
NAME = "审计测试群众"


async def _records(api: Api, **query: str) -> list[dict[str, Any]]:
    response = await api.call("GET", "/v1/audit", as_=AUDITOR, params=query)
    assert response.status_code == 200, response.text
    return list(response.json()["records"])


async def test_a_staff_action_its_refusal_and_a_personal_data_read_are_recorded_and_published(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str) -> None:
    phone = "13912340077"
    ticket = await file_matter(intake, citizen={"name": NAME, "phone": phone})
    task = await task_of(dispatch, ticket["request_id"])
    holder = (task["assignee"], "staff")
    accepted = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/accept", as_=holder,
                                   headers={"X-Forwarded-For": "192.0.2.44"})
    assert accepted.status_code == 200, accepted.text
    again = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/accept", as_=holder)
    assert again.status_code == 409, again.text
    async def citizen_shown() -> dict[str, Any] | None:  # once intake has followed the task's dispatch
        matter = (await intake.call("GET", f"/v1/tasks/{task['task_id']}/matter", as_=holder)).json()
        return matter.get("citizen")

    assert (await eventually(citizen_shown, what="the citizen to the task's holder"))["name"] == NAME

    async def sealed() -> list[dict[str, Any]] | None:  # chained by the services' sealing pass, within a second
        found = await _records(dispatch, target=task["task_id"])
        return found if len(found) == 2 and all(r["hash"] for r in found) else None

    await eventually(sealed, what="the task's records sealed")
    filed = await _records(intake, target=ticket["ticket_no"], action="request.create")
    assert [(r["actor"], r["roles"], r["outcome"]) for r in filed] == [(CLERK[0], ["clerk"], "ok")]
    on_task = await _records(dispatch, target=task["task_id"])
    assert [(r["action"], r["actor"], r["outcome"]) for r in on_task] == [
        ("task.accept", task["assignee"], again.json()["code"]), ("task.accept", task["assignee"], "ok")]
    ok = on_task[1]
    assert ok["forwarded_for"] == "192.0.2.44" and ok["client"] and len(ok["correlation_id"]) == 32
    read = await _records(intake, target=ticket["ticket_no"], action="matter.citizen_read")
    assert [(r["actor"], r["target_type"]) for r in read] == [(task["assignee"], "request")]
    assert await _records(dispatch, actor=task["assignee"], action="task.", target=task["task_id"]) == on_task

    # The same record on dispatch's audit topic, as a CloudEvent, for the county's SIEM.
    record = await wait_for_record(bootstrap, "dispatch.audit.recorded.v1",
                                   lambda r: event_of(r)["data"]["hash"] == ok["hash"])
    headers = {k: v.decode() for k, v in record.headers or ()}
    assert headers["ce_type"] == "dispatch.audit.recorded" and headers["ce_specversion"] == "1.0"
    assert record.key == b"dispatch"
    assert event_of(record)["data"]["seq"] == ok["seq"]
    # No personal data in any record of the matter, stored or published.
    published = await wait_for_record(bootstrap, "intake.audit.recorded.v1", lambda r: (
        event_of(r)["data"]["action"], event_of(r)["data"]["target_id"]) == ("matter.citizen_read", ticket["ticket_no"]))
    for text in (str(filed), str(on_task), str(read), bytes(published.value or b"").decode()):
        assert NAME not in text and phone not in text


async def test_only_an_auditor_reads_the_trail(intake: Api) -> None:
    assert (await intake.call("GET", "/v1/audit")).status_code == 401
    for who in (CLERK, ("s030", "command_centre"), ("s032", "appraisal_admin")):
        assert (await intake.call("GET", "/v1/audit", as_=who)).status_code == 403, who
    # admin holds every role, and the county's reader reads everything (SPEC §6, §8)
    for who in (("s000", "admin"), ("c002", "county_reader")):
        assert (await intake.call("GET", "/v1/audit", as_=who)).status_code == 200, who


async def test_a_creation_is_recorded_with_what_it_made(enforcement: Api) -> None:
    """A POST to a collection names the record it made (the random plan), not the collection."""
    made = await enforcement.call("POST", "/v1/random-plans", as_=("s026", "officer"), json={
        "targets": [f"T{n}-{uuid.uuid4().hex[:6]}" for n in range(4)], "sample_size": 2, "seed": 11})
    assert made.status_code == 201, made.text
    found = await _records(enforcement, target=made.json()["plan_id"])
    assert [(r["action"], r["target_type"], r["actor"], r["outcome"]) for r in found] == [
        ("random_plan.create", "random_plan", "s026", "ok")]


async def test_what_is_past_the_retention_is_pruned_behind_a_checkpoint_and_the_chain_holds(
        stack: Stack, dispatch: Api) -> None:
    """The services prune on their own (hourly, and when the clock jumps): 400 days on, every
    record of before is gone behind a checkpoint, and verify still finds the chain whole."""
    refused = await dispatch.call("POST", f"/v1/tasks/{uuid.uuid4()}/accept", as_=("s014", "staff"))
    assert refused.status_code == 404  # a refusal: a record of this test's own
    later = datetime.now(UTC) + timedelta(days=400)
    await set_clocks(stack, later.isoformat())

    async def checkpoint() -> list[dict[str, Any]] | None:
        # this jump's own prune: tests before this one left the clocks later still (2028), and
        # their prunes' checkpoints stand at those times
        return await _records(dispatch, action="audit.prune", since=(later - timedelta(minutes=1)).isoformat(),
                              until=(later + timedelta(minutes=5)).isoformat()) or None

    [mark] = await eventually(checkpoint, what="dispatch's prune 400 days on")
    assert mark["target_type"] == "audit_log" and mark["actor"] == "dispatch" and mark["hash"]
    assert await _records(dispatch, until=(later - timedelta(days=180)).isoformat()) == []
    assert stack.postgres is not None
    pool = await create_pool(stack.postgres.dsn("dispatch"), 1, 1)  # with the services' JSON codecs
    try:
        async with pool.acquire() as conn:
            assert await audit_trail.verify_chain(conn, "dispatch") is None
    finally:
        await pool.close()


async def test_a_citizens_refused_rating_is_one_record_of_its_refusal(intake: Api) -> None:
    """The wrong code is counted (and committed) before the refusal: that is not the rating's record."""
    ticket = await file_matter(intake)
    wrong = "A" * 6 if ticket["access_code"] != "A" * 6 else "B" * 6
    for code in (wrong, ticket["access_code"]):  # a wrong code; the right one before the matter is done
        await intake.call("POST", f"/v1/requests/{ticket['ticket_no']}/rating", params={"code": code},
                          json={"rating": "satisfied"})
    found = await _records(intake, target=ticket["ticket_no"], action="request.rating")
    assert [(r["actor"], r["outcome"]) for r in found] == [("", "rating.not_completed"), ("", "ticket.not_found")]


async def test_every_state_changing_route_of_every_service_is_recorded(stack: Stack) -> None:
    """Walk each service's OpenAPI document: every POST, PUT, PATCH and DELETE, called without a
    token and with made-up ids, leaves its record (the refusal: 401, or 404/422 for the id) under
    the action its route names — no route can be added unrecorded."""
    checked = 0
    for service in ("intake", "dispatch", "enforcement", "appraisal"):
        api = Api(stack, service)
        spec = (await api.call("GET", "/openapi.json")).json()
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if method.upper() not in audit.STATE_CHANGING:
                    continue
                action = audit.action_of(method.upper(), path, operation.get("x-audit-action"))
                marker = f"t{uuid.uuid4().hex[:12]}"  # every path parameter: this call's own
                called = "".join(marker if part.startswith("{") else part for part in re.split(r"(\{[^}]+\})", path))
                # A route of no id: its record is the newest of its action (written before the answer).
                newest = await _records(api, action=action.code, limit="1")
                answer = await api.call(method.upper(), called, json={})  # 401, or 404/422 for the made-up id
                assert 400 <= answer.status_code < 500, (service, method, path, answer.status_code)
                found = await _records(api, action=action.code, limit="1",
                                       **({"target": marker} if action.target_param else {}))
                assert found and found != newest, (service, method, path)
                assert (found[0]["outcome"], found[0]["actor"]) == (answer.json()["code"], ""), (service, path)
                checked += 1
    assert checked >= 25


async def test_a_read_only_post_is_recorded_once_it_is_answered(appraisal: Api) -> None:
    """A what-if changes nothing (a read-only transaction): its record is the middleware's."""
    answer = await appraisal.call("POST", "/v1/what-if", as_=("s032", "appraisal_admin"),
                                  json={"period": "2026-11", "rules": {"weights": {"response": 0.6}}})
    assert answer.status_code == 200, answer.text
    found = await _records(appraisal, action="what_if.run", actor="s032", limit="1")
    assert [(r["target_type"], r["outcome"]) for r in found] == [("what_if", "ok")]
