"""Every endpoint × every role: 401 without a token, 403 with a role the endpoint does not admit,
and neither with one it does (the documented matrix below, also in the README). Then who may act
beyond the role (SPEC §6.1): an inspection's result, an extension's approval."""

from __future__ import annotations

import uuid

import pytest

from devstack.stack import Stack

from .conftest import COMMAND, Api, file_matter, set_clocks, task_of
from .test_enforcement import file_for, inspection_with, new_target

ROLES = ("clerk", "proxy_agent", "village_station", "command_centre", "staff", "module_leader",
         "officer", "appraisal_admin", "auditor")
ANY = frozenset(ROLES)
HOLDERS = frozenset({"staff", "module_leader", "officer", "command_centre"})
READ_TASKS = HOLDERS | {"appraisal_admin"}
ENF = frozenset({"officer", "module_leader"})
ENF_READ = ENF | {"command_centre", "appraisal_admin"}
APPRAISAL_READ = frozenset({"appraisal_admin", "command_centre", "module_leader"})
FAKE = str(uuid.uuid4())
TICKET = "321003104-20200101-99999"  # the demo town's, never issued

# (service, method, path, roles admitted; None = public with the ticket's access code)
MATRIX: list[tuple[str, str, str, frozenset[str] | None]] = [
    ("intake", "POST", "/v1/requests", frozenset({"clerk", "proxy_agent", "village_station", "command_centre"})),
    ("intake", "POST", "/v1/filings", frozenset({"clerk", "proxy_agent", "village_station", "command_centre"})),
    ("intake", "GET", "/v1/catalog", ANY),
    ("intake", "POST", f"/v1/requests/{TICKET}/merge", frozenset({"command_centre"})),
    ("intake", "POST", f"/v1/requests/{TICKET}/unmerge", frozenset({"command_centre"})),
    ("intake", "GET", f"/v1/tasks/{FAKE}/matter", HOLDERS | {"clerk", "appraisal_admin"}),
    ("intake", "GET", "/v1/personal-data-reads", frozenset({"appraisal_admin"})),
    ("intake", "GET", f"/v1/requests/{TICKET}/sms", frozenset({"clerk", "command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/accept", HOLDERS),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/complete", HOLDERS),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/completions", HOLDERS),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/verifications", frozenset({"command_centre"})),
    ("dispatch", "GET", f"/v1/tasks/{FAKE}/photos/{FAKE}", READ_TASKS),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/return", HOLDERS),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/extend", HOLDERS),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/redispatch", frozenset({"command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/extension/approve", frozenset({"command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/extension/refuse", frozenset({"command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/verify", frozenset({"command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/callback", frozenset({"command_centre"})),
    ("dispatch", "POST", "/v1/staff/s999/off-post", HOLDERS),
    ("dispatch", "GET", "/v1/tasks", READ_TASKS),
    ("dispatch", "GET", f"/v1/tasks/{FAKE}", READ_TASKS),
    ("dispatch", "GET", "/v1/board", frozenset({"command_centre"})),
    ("dispatch", "GET", "/v1/task-search", READ_TASKS),
    ("dispatch", "GET", "/v1/extensions", frozenset({"command_centre"})),
    ("dispatch", "GET", "/v1/holders", frozenset({"command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/suspend", HOLDERS),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/suspension/approve", frozenset({"command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/suspension/refuse", frozenset({"command_centre"})),
    ("dispatch", "POST", f"/v1/tasks/{FAKE}/resume", HOLDERS),
    ("dispatch", "GET", "/v1/suspensions", frozenset({"command_centre"})),
    ("dispatch", "POST", "/v1/rehearsals", READ_TASKS),  # the party secretary is a staff member: flows decide
    ("enforcement", "GET", "/v1/inspections", ENF_READ),
    ("enforcement", "GET", "/v1/inspections/alerts", ENF_READ),
    ("enforcement", "GET", f"/v1/inspections/{FAKE}", ENF_READ),
    ("enforcement", "POST", f"/v1/inspections/{FAKE}/start", ENF),
    ("enforcement", "POST", f"/v1/inspections/{FAKE}/result", ENF),
    ("enforcement", "POST", f"/v1/inspections/{FAKE}/evidence", ENF),
    ("enforcement", "GET", f"/v1/inspections/{FAKE}/evidence/{FAKE}", ENF_READ),
    ("enforcement", "POST", f"/v1/cases/{FAKE}/evidence", ENF),
    ("enforcement", "GET", f"/v1/cases/{FAKE}/evidence/{FAKE}", ENF_READ),
    ("enforcement", "GET", "/v1/cases", ENF_READ),
    ("enforcement", "GET", f"/v1/cases/{FAKE}", ENF_READ),
    ("enforcement", "POST", f"/v1/cases/{FAKE}/steps", ENF),
    ("enforcement", "POST", f"/v1/cases/{FAKE}/extension", ENF),
    ("enforcement", "POST", "/v1/random-plans", ENF),
    ("enforcement", "GET", "/v1/plans", ENF_READ),
    ("appraisal", "GET", "/v1/scores", APPRAISAL_READ),
    ("appraisal", "GET", "/v1/rates", APPRAISAL_READ),
    ("appraisal", "GET", "/v1/rankings", APPRAISAL_READ),
    ("appraisal", "GET", "/v1/alerts", APPRAISAL_READ),
    ("appraisal", "GET", "/v1/scores/staff/s010/2026-11/ledger", APPRAISAL_READ),
    ("appraisal", "GET", "/v1/bonus?pool=100", frozenset({"appraisal_admin"})),
    ("appraisal", "POST", "/v1/seconded-scores", frozenset({"appraisal_admin"})),
    ("appraisal", "POST", "/v1/what-if", frozenset({"appraisal_admin"})),
    ("appraisal", "GET", "/v1/bulletin", APPRAISAL_READ),  # and the county's roles, in a county
    ("appraisal", "GET", "/v1/hotspots", APPRAISAL_READ),  # as the bulletin (issue #30)
    # the audit trail (issue #28): its auditor's
    *((service, "GET", "/v1/audit", frozenset({"auditor"})) for service in ("intake", "dispatch", "enforcement", "appraisal")),
]


@pytest.mark.parametrize(("service", "method", "path", "admitted"), MATRIX,
                         ids=[f"{s}:{m} {p.split('?')[0]}" for s, m, p, _ in MATRIX])
async def test_role_matrix(stack: Stack, service: str, method: str, path: str,
                           admitted: frozenset[str]) -> None:
    api = Api(stack, service)
    body = {} if method == "POST" else None
    assert (await api.call(method, path, json=body)).status_code == 401
    for role in ROLES:
        status = (await api.call(method, path, as_=("s999", role), json=body)).status_code
        if role in admitted:
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)
    # admin holds every role
    assert (await api.call(method, path, as_=("s000", "admin"), json=body)).status_code not in (401, 403)


async def test_every_route_of_every_service_is_in_the_matrix(stack: Stack) -> None:
    listed = {(s, m, p.split("?")[0].replace(FAKE, "{}").replace(TICKET, "{}").replace("s999", "{}"))
              for s, m, p, _ in MATRIX}
    public = {"/healthz", "/readyz", "/metrics", "/v1/admin/clock", "/v1/requests/{}", "/v1/requests/{}/rating",
              "/v1/plans/{}", "/v1/requests/{}/photos/{}"}  # a photo: a token of the town, or the ticket's code
    for service in stack.services:
        spec = (await Api(stack, service).call("GET", "/openapi.json")).json()
        for path, operations in spec["paths"].items():
            generic = path
            for part in path.split("/"):
                if part.startswith("{"):
                    generic = generic.replace(part, "{}")
            generic = generic.replace("/staff/{}/{}/ledger", "/staff/{}/2026-11/ledger")
            for method in operations:
                if generic in public or generic.startswith("/v1/scores/{}"):
                    continue
                assert (service, method.upper(), generic) in listed, (service, method, path)


# (caller, status of POST /v1/inspections/{id}/result on an inspection started with the team s026, s027)
RESULT_POSTERS: list[tuple[tuple[str, ...], int]] = [
    (("s028", "officer"), 403),  # an officer not on the inspection
    (("s040", "module_leader", "officer"), 403),  # another module's leader
    (("s027", "officer"), 200),  # an officer on it
    (("s006", "module_leader", "officer"), 200),  # the enforcement module's leader
    (("s000", "admin"), 200),
]


@pytest.mark.parametrize(("caller", "expected"), RESULT_POSTERS, ids=[c[0] for c, _ in RESULT_POSTERS])
async def test_who_may_post_an_inspection_result(stack: Stack, intake: Api, dispatch: Api, enforcement: Api,
                                                 caller: tuple[str, ...], expected: int) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    target = new_target()
    task = await file_for(intake, dispatch, "E003", target)
    inspection = await inspection_with(enforcement, target, 1)
    path = f"/v1/inspections/{inspection['inspection_id']}"
    started = await enforcement.call("POST", f"{path}/start", as_=("s026", "officer"),
                                     json={"officers": ["s026", "s027"]})
    assert started.status_code == 200, started.text
    posted = await enforcement.call("POST", f"{path}/result", as_=caller, json={
        "officers": ["s026", "s027", *caller[:1]], "present_units": inspection["units"],
        "findings": [{"task_id": task["task_id"], "outcome": "compliant"}]})
    assert posted.status_code == expected, posted.text


async def test_an_extension_of_a_completed_task_is_not_approved(stack: Stack, intake: Api, dispatch: Api) -> None:
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    task = await task_of(dispatch, (await file_matter(intake, item_code="S002"))["request_id"])
    assignee = (task["assignee"], "staff")
    path = f"/v1/tasks/{task['task_id']}"
    assert (await dispatch.call("POST", f"{path}/extend", as_=assignee,
                                json={"days": 1, "reason": "需补充材料"})).status_code == 202
    assert (await dispatch.call("POST", f"{path}/complete", as_=assignee,
                                json={"resolution": "已办结", "reply": "已为您办理完毕。"})).status_code == 200
    approve = await dispatch.call("POST", f"{path}/extension/approve", as_=COMMAND, json={})
    assert approve.status_code == 409 and "completed" in approve.json()["detail"]
