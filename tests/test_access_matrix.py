"""The role-and-town matrix of issue #15 (SPEC §8) on the demo county: every HTTP route of the four
services × the roles that use it, a role that must not, county_reader and county_admin × a record
of the caller's own town (青禾镇) and one of another town (白鹭镇).

The rule it holds the services to: a town's staff reading another town's record (or list) get 404,
as if it did not exist; acting on it, 403; county_reader reads every town and acts nowhere (403);
county_admin reads and acts everywhere. A route the services serve that the matrix does not list
fails `test_the_matrix_lists_every_route`, so a new route cannot ship without its rows.

Every record a row reads or acts on is made by the module's fixture, once, through the services'
own HTTP APIs and by each town's own staff. An action that succeeds changes its record, so each
row that expects a success gets a record of its own; a refused action changes nothing, so those
rows share one record per town.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image

from devstack.stack import Stack
from dispatch.rules import OPEN_STATUSES

from .conftest import BAILU, QINGHE, eventually, filing, http_client

NOW = "2026-12-08T09:00:00+08:00"  # a Tuesday in both towns; no other county test files on it
PERIOD = "2026-12"
OWN, OTHER = QINGHE, BAILU  # the callers are 青禾镇's staff: their own town, and another
NOT_SERVED_BY_THE_MATRIX = {"/healthz", "/readyz", "/metrics"}  # health and metrics: no town, no token


# --- who calls ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Caller:
    """A caller with the roles of their entry in the town's (or county's) staff.yaml. A town's
    staff carry the town claim of 青禾镇; `sub` in braces is the record's own (its assignee…)."""

    label: str
    sub: str = ""
    roles: tuple[str, ...] = ()
    county: bool = False  # county staff: no town claim
    token: bool = True
    code: str | None = None  # the citizen's access code: "right" or "wrong"


CLERK = Caller("clerk", "s010", ("staff", "clerk"))
STATION = Caller("village station", "s036", ("village_station",))  # a role none of the staff routes admit
COMMAND = Caller("command_centre", "s030", ("staff", "command_centre"))
TOWN_ADMIN = Caller("town admin", "s000", ("staff", "admin", "command_centre"))
ASSIGNEE = Caller("assignee", "{assignee}", ("staff",))
POST_LEADER = Caller("post's module leader", "s048", ("staff", "module_leader"))  # 派出所, post household
PERSON = Caller("the person off post", "{person}", ("staff",))
STAFF = Caller("other staff", "s014", ("staff",))  # neither assignee nor leader of the task
MODULE_LEADER = Caller("module leader", "s002", ("staff", "module_leader"))
OFFICER = Caller("officer on the team", "s026", ("staff", "officer"))
OFF_TEAM = Caller("officer off the team", "s028", ("staff", "officer"))
ENF_LEADER = Caller("enforcement leader", "s006", ("staff", "module_leader", "officer"))
APPRAISER = Caller("appraisal office", "s032", ("staff", "appraisal_admin"))
READER = Caller("county_reader", "c002", ("county_reader",), county=True)
COUNTY_ADMIN = Caller("county_admin", "c001", ("county_admin",), county=True)
TOWN_AUDITOR = Caller("town auditor", "a104", ("auditor",))  # 等保's 审计管理员 of 青禾镇
COUNTY_AUDITOR = Caller("county auditor", "a100", ("auditor",), county=True)
NO_TOKEN = Caller("no token", token=False)
CITIZEN = Caller("citizen with the code", token=False, code="right")
STRANGER = Caller("a wrong code", token=False, code="wrong")

# --- the matrix ----------------------------------------------------------------------------------
# (service, method, route as the OpenAPI document names it) → {caller: status}. A pair is (own town's
# record, another town's record); one number is for a route about no town's record. Every route
# that takes a token also answers 401 without one (added below).
Route = tuple[str, str, str]
Expected = tuple[int, int] | int
# The audit trail (issue #28): every service's, for its auditors; ?town= (a town's auditor its own).
AUDIT_READERS: dict[Caller, Expected] = {
    TOWN_AUDITOR: (200, 404), COUNTY_AUDITOR: (200, 200), COMMAND: (403, 403), APPRAISER: (403, 403),
    READER: (200, 200), COUNTY_ADMIN: (200, 200)}
MATRIX: dict[Route, dict[Caller, Expected]] = {
    **{(service, "GET", "/v1/audit"): AUDIT_READERS for service in ("intake", "dispatch", "enforcement", "appraisal")},
    # intake
    ("intake", "POST", "/v1/requests"): {  # the body names the town filed in
        CLERK: (201, 403), COMMAND: (201, 403), OFFICER: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (201, 201)},
    ("intake", "POST", "/v1/filings"): {  # a filing with photos (issue #29): as /v1/requests
        CLERK: (201, 403), COMMAND: (201, 403), OFFICER: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (201, 201)},
    # A photo of the matter (here its task's after photo, known from dispatch's event): the town's
    # staff who read matters or file them; the citizen's code where the town shows photos (青禾镇
    # does, 白鹭镇 does not); anyone else 404, as for a photo that does not exist.
    ("intake", "GET", "/v1/requests/{ticket_no}/photos/{attachment_id}"): {
        CLERK: (200, 404), COMMAND: (200, 404), STAFF: (200, 404), STATION: (200, 404), READER: (200, 200),
        COUNTY_ADMIN: (200, 200), CITIZEN: (200, 404), STRANGER: (404, 404), NO_TOKEN: (404, 404)},
    ("intake", "GET", "/v1/requests/{ticket_no}"): {  # by token, without the code
        CLERK: (200, 404), COMMAND: (200, 404), OFFICER: (404, 404), READER: (200, 200),
        COUNTY_ADMIN: (200, 200), CITIZEN: (200, 200), STRANGER: (404, 404)},
    ("intake", "POST", "/v1/requests/{ticket_no}/rating"): {  # only the citizen's code rates
        CITIZEN: (200, 200), STRANGER: (404, 404), CLERK: (422, 422), COUNTY_ADMIN: (422, 422)},
    ("intake", "POST", "/v1/requests/{ticket_no}/merge"): {  # 重复件: the command centre merges
        COMMAND: (200, 403), CLERK: (403, 403), STATION: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (200, 200)},
    ("intake", "POST", "/v1/requests/{ticket_no}/unmerge"): {
        COMMAND: (200, 403), CLERK: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    # The matter for the town's staff (its citizen only to the task's people, recorded); the
    # appraisal office reads that record (?town=).
    ("intake", "GET", "/v1/tasks/{task_id}/matter"): {
        COMMAND: (200, 404), ASSIGNEE: (200, 404), POST_LEADER: (200, 404), STAFF: (200, 404),
        STATION: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("intake", "GET", "/v1/personal-data-reads"): {
        APPRAISER: (200, 404), COMMAND: (403, 403), STAFF: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    # The SMS sent to a matter's citizen (issue #31): what and when, never the phone; the town's
    # clerks and command centre, another town's matter not found.
    ("intake", "GET", "/v1/requests/{ticket_no}/sms"): {
        CLERK: (200, 404), COMMAND: (200, 404), STAFF: (403, 403), OFFICER: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("intake", "GET", "/v1/catalog"): {
        CLERK: (200, 404), OFFICER: (200, 404), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    # dispatch: a task's assignee or its post's module leader acts on it; the command centre steers
    ("dispatch", "POST", "/v1/tasks/{task_id}/accept"): {
        ASSIGNEE: (200, 403), POST_LEADER: (200, 403), STAFF: (403, 403), COMMAND: (403, 403),
        STATION: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/complete"): {
        ASSIGNEE: (200, 403), POST_LEADER: (200, 403), STAFF: (403, 403), STATION: (403, 403),
        READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/completions"): {  # /complete with after photos (issue #29)
        ASSIGNEE: (200, 403), POST_LEADER: (200, 403), STAFF: (403, 403), STATION: (403, 403),
        READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/return"): {
        ASSIGNEE: (200, 403), STAFF: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/extend"): {
        ASSIGNEE: (202, 403), POST_LEADER: (202, 403), STAFF: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (202, 202)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/redispatch"): {
        COMMAND: (201, 403), TOWN_ADMIN: (201, 403), ASSIGNEE: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (201, 201)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/extension/approve"): {
        COMMAND: (200, 403), POST_LEADER: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/extension/refuse"): {
        COMMAND: (200, 403), STAFF: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/verify"): {
        COMMAND: (200, 403), ASSIGNEE: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/verifications"): {  # /verify with the check's photos
        COMMAND: (200, 403), ASSIGNEE: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/callback"): {  # 回访 after closure: the command centre
        COMMAND: (200, 403), ASSIGNEE: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/staff/{staff_id}/off-post"): {  # of the post's A holder, in ?town=
        PERSON: (201, 403), POST_LEADER: (201, 403), COMMAND: (201, 403), STAFF: (403, 403),
        STATION: (403, 403), READER: (403, 403), COUNTY_ADMIN: (201, 201)},
    ("dispatch", "GET", "/v1/tasks"): {  # ?town=
        STAFF: (200, 404), APPRAISER: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("dispatch", "GET", "/v1/task-search"): {  # ?town=: the task lists' search (issue #27)
        STAFF: (200, 404), APPRAISER: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("dispatch", "GET", "/v1/extensions"): {  # ?town=: the extension requests waiting
        COMMAND: (200, 404), STAFF: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "GET", "/v1/holders"): {  # ?town=: the redispatch picker's holders and loads
        COMMAND: (200, 404), STAFF: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/rehearsals"): {  # ?town=: read-only; the appraisal office and the party secretary
        APPRAISER: (200, 404), COMMAND: (403, 404), STAFF: (403, 404), READER: (403, 403),
        COUNTY_ADMIN: (200, 200)},
    ("dispatch", "GET", "/v1/tasks/{task_id}"): {
        COMMAND: (200, 404), STAFF: (200, 404), APPRAISER: (200, 404), TOWN_ADMIN: (200, 404),
        STATION: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "GET", "/v1/tasks/{task_id}/photos/{attachment_id}"): {  # whoever reads the task
        COMMAND: (200, 404), STAFF: (200, 404), APPRAISER: (200, 404), TOWN_ADMIN: (200, 404),
        STATION: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "GET", "/v1/board"): {  # ?town=
        COMMAND: (200, 404), STAFF: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    # 挂起: the holder asks, the command centre decides; the command centre or the holder resumes
    ("dispatch", "POST", "/v1/tasks/{task_id}/suspend"): {
        ASSIGNEE: (202, 403), POST_LEADER: (202, 403), STAFF: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (202, 202)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/suspension/approve"): {
        COMMAND: (200, 403), POST_LEADER: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/suspension/refuse"): {
        COMMAND: (200, 403), STAFF: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("dispatch", "POST", "/v1/tasks/{task_id}/resume"): {
        COMMAND: (200, 403), ASSIGNEE: (200, 403), STAFF: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (200, 200)},
    ("dispatch", "GET", "/v1/suspensions"): {  # ?town=
        COMMAND: (200, 404), STAFF: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    # enforcement: officers and module leaders act; an inspection's result only its team or 执法队长
    ("enforcement", "GET", "/v1/inspections"): {
        OFFICER: (200, 404), COMMAND: (200, 404), APPRAISER: (200, 404), STATION: (403, 403),
        READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("enforcement", "GET", "/v1/inspections/alerts"): {  # 多头检查, ?town=
        OFFICER: (200, 404), COMMAND: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "GET", "/v1/inspections/{inspection_id}"): {
        OFFICER: (200, 404), COMMAND: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "POST", "/v1/inspections/{inspection_id}/start"): {
        OFFICER: (200, 403), ENF_LEADER: (200, 403), COMMAND: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "POST", "/v1/inspections/{inspection_id}/result"): {
        OFFICER: (200, 403), ENF_LEADER: (200, 403), OFF_TEAM: (403, 403), COMMAND: (403, 403),
        READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    # evidence (执法全过程记录): recorded by the team (or 执法队长) on a started inspection, by whoever takes
    # a case's steps on a case; read by whoever reads the record
    ("enforcement", "POST", "/v1/inspections/{inspection_id}/evidence"): {
        OFFICER: (201, 403), ENF_LEADER: (201, 403), OFF_TEAM: (403, 403), COMMAND: (403, 403),
        READER: (403, 403), COUNTY_ADMIN: (201, 201)},
    ("enforcement", "GET", "/v1/inspections/{inspection_id}/evidence/{attachment_id}"): {
        OFFICER: (200, 404), COMMAND: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "POST", "/v1/cases/{case_id}/evidence"): {
        OFFICER: (201, 403), ENF_LEADER: (201, 403), COMMAND: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (201, 201)},
    ("enforcement", "GET", "/v1/cases/{case_id}/evidence/{attachment_id}"): {
        OFFICER: (200, 404), COMMAND: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "GET", "/v1/cases"): {
        OFFICER: (200, 404), APPRAISER: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "GET", "/v1/cases/{case_id}"): {
        OFFICER: (200, 404), COMMAND: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "POST", "/v1/cases/{case_id}/steps"): {
        OFFICER: (200, 403), ENF_LEADER: (200, 403), COMMAND: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "POST", "/v1/cases/{case_id}/extension"): {
        OFFICER: (200, 403), STATION: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("enforcement", "POST", "/v1/random-plans"): {  # the body names the town
        OFFICER: (201, 403), ENF_LEADER: (201, 403), COMMAND: (403, 403), READER: (403, 403),
        COUNTY_ADMIN: (201, 201)},
    ("enforcement", "GET", "/v1/plans"): {
        OFFICER: (200, 404), APPRAISER: (200, 404), STATION: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("enforcement", "GET", "/v1/plans/{plan_id}"): {
        OFFICER: (200, 404), STATION: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    # appraisal: a town's figures in ?town=; the county's ranking for the county roles only
    ("appraisal", "GET", "/v1/scores"): {
        APPRAISER: (200, 404), COMMAND: (200, 404), MODULE_LEADER: (200, 404), STAFF: (403, 403),
        READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("appraisal", "GET", "/v1/rates"): {
        APPRAISER: (200, 404), MODULE_LEADER: (200, 404), STAFF: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("appraisal", "GET", "/v1/rankings"): {
        COMMAND: (200, 404), STATION: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("appraisal", "GET", "/v1/county/rankings"): {
        READER: 200, COUNTY_ADMIN: 200, APPRAISER: 403, TOWN_ADMIN: 403},
    ("appraisal", "GET", "/v1/bonus"): {
        APPRAISER: (200, 404), COMMAND: (403, 403), READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("appraisal", "GET", "/v1/alerts"): {
        APPRAISER: (200, 404), MODULE_LEADER: (200, 404), STAFF: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("appraisal", "GET", "/v1/scores/{subject_type}/{subject_id}/{period}/ledger"): {
        APPRAISER: (200, 404), COMMAND: (200, 404), STAFF: (403, 403), READER: (200, 200),
        COUNTY_ADMIN: (200, 200)},
    ("appraisal", "POST", "/v1/what-if"): {  # read-only, but the appraisal office's tool
        APPRAISER: (200, 404), COMMAND: (403, 403), READER: (403, 403), COUNTY_ADMIN: (200, 200)},
    ("appraisal", "GET", "/v1/bulletin"): {
        APPRAISER: (200, 404), COMMAND: (200, 404), MODULE_LEADER: (200, 404), STAFF: (403, 403),
        READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("appraisal", "GET", "/v1/hotspots"): {  # as the bulletin, whose sheet 热点网格 it is (issue #30)
        APPRAISER: (200, 404), COMMAND: (200, 404), MODULE_LEADER: (200, 404), STAFF: (403, 403),
        READER: (200, 200), COUNTY_ADMIN: (200, 200)},
    ("appraisal", "POST", "/v1/seconded-scores"): {
        APPRAISER: (201, 403), COMMAND: (403, 403), READER: (403, 403), COUNTY_ADMIN: (201, 201)},
    # the test clock (mounted with TOWNFLOW_TEST_CLOCK=1 only): admin
    **{(service, "POST", "/v1/admin/clock"): {
        TOWN_ADMIN: 200, COUNTY_ADMIN: 200, CLERK: 403, READER: 403}
       for service in ("intake", "dispatch", "enforcement", "appraisal")},
}
PUBLIC = {("intake", "GET", "/v1/requests/{ticket_no}"), ("intake", "POST", "/v1/requests/{ticket_no}/rating"),
          ("intake", "GET", "/v1/requests/{ticket_no}/photos/{attachment_id}")}
for _route, _row in MATRIX.items():
    if _route not in PUBLIC:
        _row.setdefault(NO_TOKEN, (401, 401) if any(isinstance(e, tuple) for e in _row.values()) else 401)


@dataclass(frozen=True)
class Row:
    route: Route
    caller: Caller
    town: str | None  # whose record: OWN, OTHER, or None for a route about no town's record
    expected: int

    @property
    def id(self) -> str:
        whose = {OWN: "own town", OTHER: "other town", None: "-"}[self.town]
        return f"{self.route[0]} {self.route[1]} {self.route[2]} | {self.caller.label} | {whose} -> {self.expected}"


ROWS = [Row(route, caller, town, status)
        for route, callers in MATRIX.items() for caller, expected in callers.items()
        for town, status in (zip((OWN, OTHER), expected, strict=True) if isinstance(expected, tuple)
                             else [(None, expected)])]


# --- the records the rows need -----------------------------------------------------------------
@dataclass(frozen=True)
class TownStaff:
    """Who of a town's own staff makes its records."""

    clerk: str
    command: str
    post_leader: str  # the leader of the module of S001's post (household, 派出所)
    enforcement_leader: str
    team: tuple[str, str]  # two certified officers


STAFF_OF = {QINGHE: TownStaff("s010", "s030", "s048", "s006", ("s026", "s027")),
            BAILU: TownStaff("s010", "s026", "s038", "s006", ("s023", "s024"))}


@dataclass(frozen=True)
class Call:
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    who: dict[str, str] = field(default_factory=dict)  # the record's own people, for `{assignee}`
    code: str | None = None  # the ticket's access code, for the citizen
    data: dict[str, str] | None = None  # a multipart form's fields (with `files`: its photos)
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None


def _photo() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((64, 48)).convert("RGB").save(out, "JPEG")
    return out.getvalue()


PHOTOS = [("photos", ("p.jpg", _photo(), "image/jpeg"))]
DONE = {"resolution": "已办结", "reply": "已为您办理完毕。"}


SUSPENSION = {"category": "awaiting_citizen", "reason": "等待群众补正材料"}
# The record a route acts on, by kind: a success changes it, so a row expecting one gets its own.
KIND_OF: dict[Route, str] = {
    ("intake", "POST", "/v1/requests/{ticket_no}/rating"): "completed_matter",
    ("intake", "POST", "/v1/requests/{ticket_no}/merge"): "duplicate",
    ("intake", "POST", "/v1/requests/{ticket_no}/unmerge"): "merged",
    ("dispatch", "POST", "/v1/tasks/{task_id}/callback"): "closed_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/accept"): "task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/complete"): "task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/completions"): "task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/return"): "task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/extend"): "task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/redispatch"): "returned_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/extension/approve"): "extending_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/extension/refuse"): "extending_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/verify"): "completed_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/verifications"): "completed_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/suspend"): "task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/suspension/approve"): "suspending_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/suspension/refuse"): "suspending_task",
    ("dispatch", "POST", "/v1/tasks/{task_id}/resume"): "suspended_task",
    ("enforcement", "POST", "/v1/inspections/{inspection_id}/start"): "planned",
    ("enforcement", "POST", "/v1/inspections/{inspection_id}/result"): "started",
    ("enforcement", "POST", "/v1/cases/{case_id}/steps"): "case",
    ("enforcement", "POST", "/v1/cases/{case_id}/extension"): "case",
}
FRESH = Counter((KIND_OF[r.route], r.town) for r in ROWS if r.route in KIND_OF and r.expected < 300)


@dataclass
class TownRecords:
    """One town's shared records (read, or refused) and the fresh ones rows act on, by kind."""

    code: str
    matter: dict[str, Any]
    task: dict[str, Any]
    planned: dict[str, Any]
    started: dict[str, Any]
    case: dict[str, Any]
    plan: dict[str, Any]
    fresh: dict[str, list[dict[str, Any]]]
    others: dict[str, dict[str, Any]]  # one record of each other kind, for the rows refused
    # A piece of evidence on `started` and on `case`: {"inspection": attachment id, "case": …}.
    evidence: dict[str, str] = field(default_factory=dict)


    def record(self, kind: str, fresh: bool) -> dict[str, Any]:
        if fresh:
            return self.fresh[kind].pop()
        shared = {"completed_matter": self.matter, "planned": self.planned, "started": self.started,
                  "case": self.case, **self.others}
        return shared.get(kind, self.task)


def _request(route: Route, town: TownRecords | None, record: dict[str, Any] | None) -> Call:
    """The call a row makes: valid in every field, so the answer is about who calls."""
    r = record or {}
    code = town.code if town else None
    by_town = {"town": code} if code else {}
    match route[2]:
        case "/v1/requests":
            return Call("/v1/requests", json=filing(town_code=code))
        case "/v1/requests/{ticket_no}":
            return Call(f"/v1/requests/{r['ticket_no']}", code=r["access_code"])
        case "/v1/requests/{ticket_no}/sms":
            return Call(f"/v1/requests/{r['ticket_no']}/sms")
        case "/v1/filings":
            return Call("/v1/filings", data={"filing": json.dumps(filing(town_code=code), ensure_ascii=False)},
                        files=PHOTOS)
        case "/v1/requests/{ticket_no}/photos/{attachment_id}":
            photo = r["photographed"]
            return Call(f"/v1/requests/{photo['ticket_no']}/photos/{photo['attachment_id']}", code=photo["access_code"])
        case "/v1/tasks/{task_id}/photos/{attachment_id}":
            photo = r["photographed"]
            return Call(f"/v1/tasks/{photo['task_id']}/photos/{photo['attachment_id']}",
                        params={"variant": "thumbnail"})
        case "/v1/tasks/{task_id}/completions":
            return Call(f"/v1/tasks/{r['task_id']}/completions", data={"completion": json.dumps(DONE, ensure_ascii=False)},
                        files=PHOTOS, who={"assignee": r["assignee"]})
        case "/v1/tasks/{task_id}/verifications":
            return Call(f"/v1/tasks/{r['task_id']}/verifications", files=PHOTOS, who={"assignee": r["assignee"]},
                        data={"verification": json.dumps({"passed": True, "note": "核查通过"}, ensure_ascii=False)})
        case "/v1/requests/{ticket_no}/rating":
            return Call(f"/v1/requests/{r['ticket_no']}/rating", json={"rating": "satisfied"}, code=r["access_code"])
        case "/v1/tasks/{task_id}/matter":
            return Call(f"/v1/tasks/{r['task_id']}/matter", who={"assignee": r["assignee"]})
        case "/v1/personal-data-reads":
            return Call(route[2], params={**by_town, "period": PERIOD})
        case "/v1/audit":
            return Call(route[2], params=by_town)
        case "/v1/requests/{ticket_no}/merge":
            return Call(f"/v1/requests/{r['ticket_no']}/merge", json={"into": r["into"]})
        case "/v1/requests/{ticket_no}/unmerge":
            return Call(f"/v1/requests/{r['ticket_no']}/unmerge")
        case "/v1/tasks/{task_id}/callback":
            return Call(f"/v1/tasks/{r['task_id']}/callback", json={"reached": True, "rating": "satisfied",
                                                                     "note": "回访满意"},
                        who={"assignee": r["assignee"]})
        case "/v1/catalog" | "/v1/tasks" | "/v1/board" | "/v1/inspections" | "/v1/cases" | "/v1/plans" \
                | "/v1/inspections/alerts" | "/v1/task-search" | "/v1/extensions" \
                | "/v1/holders" | "/v1/suspensions":
            return Call(route[2], params=by_town)
        case "/v1/tasks/{task_id}" | "/v1/tasks/{task_id}/accept" | "/v1/tasks/{task_id}/extension/approve" \
                | "/v1/tasks/{task_id}/extension/refuse" | "/v1/tasks/{task_id}/suspension/approve" \
                | "/v1/tasks/{task_id}/suspension/refuse" | "/v1/tasks/{task_id}/resume":
            return Call(route[2].replace("{task_id}", r["task_id"]), who={"assignee": r["assignee"]})
        case "/v1/tasks/{task_id}/complete":
            return Call(f"/v1/tasks/{r['task_id']}/complete", json={"resolution": "已办结", "reply": "已为您办理完毕。"},
                        who={"assignee": r["assignee"]})
        case "/v1/tasks/{task_id}/return":
            return Call(f"/v1/tasks/{r['task_id']}/return", json={"reason": "不属本岗职责"},
                        who={"assignee": r["assignee"]})
        case "/v1/tasks/{task_id}/extend":
            return Call(f"/v1/tasks/{r['task_id']}/extend", json={"days": 2, "reason": "需补充材料"},
                        who={"assignee": r["assignee"]})
        case "/v1/tasks/{task_id}/suspend":
            return Call(f"/v1/tasks/{r['task_id']}/suspend", json=SUSPENSION, who={"assignee": r["assignee"]})
        case "/v1/tasks/{task_id}/redispatch":
            return Call(f"/v1/tasks/{r['task_id']}/redispatch", json={"post": "household"},
                        who={"assignee": r["assignee"]})
        case "/v1/tasks/{task_id}/verify":
            return Call(f"/v1/tasks/{r['task_id']}/verify", json={"passed": True, "note": "核查通过"},
                        who={"assignee": r["assignee"]})
        case "/v1/staff/{staff_id}/off-post":
            person = r["assignee"]  # far in the future: no dispatch of this module is changed by it
            return Call(f"/v1/staff/{person}/off-post", params=by_town, who={"person": person}, json={
                "from": "2031-01-06T08:30:00+08:00", "to": "2031-01-06T17:30:00+08:00", "reason": "培训"})
        case "/v1/inspections/{inspection_id}":
            return Call(f"/v1/inspections/{r['inspection_id']}")
        case "/v1/inspections/{inspection_id}/start":
            # A team the town's rules accept (two certified officers), whoever sends it.
            return Call(f"/v1/inspections/{r['inspection_id']}/start",
                        json={"officers": list(STAFF_OF[code].team)} if code else {})
        case "/v1/inspections/{inspection_id}/result":
            return Call(f"/v1/inspections/{r['inspection_id']}/result", json=_violation(r))
        case "/v1/cases/{case_id}":
            return Call(f"/v1/cases/{r['case_id']}")
        case "/v1/inspections/{inspection_id}/evidence":
            # The town's started inspection (its team s026, s027): evidence leaves it started.
            return Call(f"/v1/inspections/{r['started_id']}/evidence", data={"note": "现场照片"}, files=[PHOTO_PART])
        case "/v1/cases/{case_id}/evidence":
            return Call(f"/v1/cases/{r['case_id']}/evidence", data={"note": "调查取证照片"}, files=[PHOTO_PART])
        case "/v1/inspections/{inspection_id}/evidence/{attachment_id}":
            return Call(f"/v1/inspections/{r['started_id']}/evidence/{r['inspection_evidence']}")
        case "/v1/cases/{case_id}/evidence/{attachment_id}":
            return Call(f"/v1/cases/{r['case_id']}/evidence/{r['case_evidence']}")
        case "/v1/cases/{case_id}/steps":
            return Call(f"/v1/cases/{r['case_id']}/steps", json={"step": "investigated", "note": "已调查取证"})
        case "/v1/cases/{case_id}/extension":
            return Call(f"/v1/cases/{r['case_id']}/extension", json={"reason": "案情复杂，需鉴定"})
        case "/v1/random-plans":
            return Call("/v1/random-plans", json={"targets": [f"T{n}" for n in range(6)], "sample_size": 2,
                                                  "seed": 7, "town_code": code})
        case "/v1/plans/{plan_id}":
            return Call(f"/v1/plans/{r['plan_id']}")
        case "/v1/scores" | "/v1/rates" | "/v1/rankings" | "/v1/alerts" | "/v1/hotspots":
            return Call(route[2], params={**by_town, "period": PERIOD})
        case "/v1/rehearsals":  # a day of the town on another load cap
            return Call("/v1/rehearsals", params=by_town, json={"from": f"{PERIOD}-01", "to": f"{PERIOD}-01",
                                                                "files": {"rules.yaml": "dispatch: {default_load_cap: 5}"}})
        case "/v1/what-if":
            return Call("/v1/what-if", params=by_town, json={"period": PERIOD, "rules": {"weights": {"response": 0.6}}})
        case "/v1/bulletin":
            return Call("/v1/bulletin", params={**by_town, "period": PERIOD, "format": "csv"})
        case "/v1/bonus":
            return Call("/v1/bonus", params={**by_town, "period": PERIOD, "pool": "1000.00"})
        case "/v1/scores/{subject_type}/{subject_id}/{period}/ledger":
            return Call(f"/v1/scores/staff/{r['assignee']}/{PERIOD}/ledger", params=by_town)
        case "/v1/seconded-scores":
            return Call("/v1/seconded-scores", params=by_town, json={"unit": "land", "period": PERIOD, "score": 88})
        case "/v1/county/rankings":
            return Call("/v1/county/rankings", params={"period": PERIOD})
        case "/v1/admin/clock":
            return Call("/v1/admin/clock", json={"advance": "PT0S"})
    raise AssertionError(f"no request for {route}: add one")


PHOTO_PART = PHOTOS[0]


def _violation(inspection: dict[str, Any]) -> dict[str, Any]:
    """A valid result: its team, every unit present, a violation for every covered task (a case)."""
    return {"officers": inspection.get("assigned_officers") or ["s026", "s027"],
            "present_units": inspection.get("units", []),
            "findings": [{"task_id": n["task_id"], "outcome": "violation", "note": "占道经营属实"}
                         for n in inspection.get("needs", []) if n.get("task_id")]}


# --- calling the county --------------------------------------------------------------------------
class County:
    """HTTP calls to the demo county's services, as a town's staff or the county's."""

    def __init__(self, stack: Stack, client: httpx.AsyncClient) -> None:
        self.stack, self.client = stack, client

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one per module, tokens reused within it
    def _token(self, service: str, sub: str, roles: tuple[str, ...], town: str | None) -> str:
        return self.stack.token(service, sub, roles, town=town)

    async def call(self, service: str, method: str, path: str, *, sub: str | None = None,
                   roles: tuple[str, ...] = (), town: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token(service, sub, roles, town)}"} if sub else {}
        return await self.client.request(method, self.stack.services[service].url + path, headers=headers,
                                         **kwargs)

    async def ok(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(service, method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()


async def _make_town(county: County, code: str) -> TownRecords:
    """A town's records, made by its own staff: matters of S001 (a task of the household post) and
    E001 (占道经营: an inspection of its target), each in the state a row needs."""
    staff = STAFF_OF[code]

    def as_(sub: str, *roles: str) -> dict[str, Any]:
        return {"sub": sub, "roles": ("staff", *roles), "town": code}

    clerk, command = as_(staff.clerk, "clerk"), as_(staff.command, "command_centre")
    leader, enforcer = as_(staff.post_leader, "module_leader"), as_(staff.enforcement_leader, "module_leader", "officer")
    fresh = {kind: n for (kind, town), n in FRESH.items() if town == code}

    async def file(item: str, target: str | None = None) -> dict[str, Any]:
        body = filing(item_code=item, town_code=code, **({"target": target} if target else {}))
        return dict(await county.ok("intake", "POST", "/v1/requests", json=body, **clerk))

    async def task_of(matter: dict[str, Any]) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            tasks = await county.ok("dispatch", "GET", "/v1/tasks", params={"request_id": matter["request_id"]},
                                    **command)
            return dict(tasks[0]) if tasks else None
        return {**matter, **await eventually(found, what=f"the task of {matter['ticket_no']}")}

    async def task(then: str | None = None) -> dict[str, Any]:
        t = await task_of(await file("S001"))
        if then is not None:
            body = {"complete": {"resolution": "已办结", "reply": "已为您办理完毕。"}, "return": {"reason": "不属本岗职责"},
                    "extend": {"days": 2, "reason": "需补充材料"},
                    "suspend": SUSPENSION}[then]
            await county.ok("dispatch", "POST", f"/v1/tasks/{t['task_id']}/{then}", json=body, **leader)
        return t

    async def suspended_task() -> dict[str, Any]:
        t = await task("suspend")
        await county.ok("dispatch", "POST", f"/v1/tasks/{t['task_id']}/suspension/approve", **command)
        return t

    async def completed_matter() -> dict[str, Any]:
        t = await task("complete")

        async def completed() -> bool:
            view = await county.ok("intake", "GET", f"/v1/requests/{t['ticket_no']}", **clerk)
            return bool(view["status"] == "completed")
        await eventually(completed, what=f"intake to show {t['ticket_no']} completed")
        return t

    async def duplicate() -> dict[str, Any]:
        """A matter and the one it may be merged into, both open."""
        primary, merged = await asyncio.gather(file("S001"), file("S001"))
        return {**merged, "into": primary["ticket_no"]}

    async def merged() -> dict[str, Any]:
        pair = await duplicate()
        await county.ok("intake", "POST", f"/v1/requests/{pair['ticket_no']}/merge", json={"into": pair["into"]},
                        **command)
        return pair

    async def photographed() -> dict[str, Any]:
        """A task completed with an after photo (issue #29), once intake shows the photo too."""
        t = await task()
        await county.ok("dispatch", "POST", f"/v1/tasks/{t['task_id']}/completions", files=PHOTOS,
                        data={"completion": json.dumps(DONE, ensure_ascii=False)}, **leader)

        async def shown() -> str | None:
            view = await county.ok("intake", "GET", f"/v1/requests/{t['ticket_no']}", **clerk)
            return next((p["attachment_id"] for p in view.get("photos") or [] if p["stage"] == "after"), None)
        return {**t, "attachment_id": await eventually(shown, what=f"intake to show {t['ticket_no']}'s after photo")}

    async def closed_task() -> dict[str, Any]:
        t = await task("complete")
        await county.ok("dispatch", "POST", f"/v1/tasks/{t['task_id']}/verify", json={"passed": True, "note": "核查通过"},
                        **command)
        return t

    async def planned() -> dict[str, Any]:
        target = f"91321003MA{uuid.uuid4().hex[:8].upper()}"  # one matter, one inspection
        await task_of(await file("E001", target))

        async def found() -> dict[str, Any] | None:
            rows = await county.ok("enforcement", "GET", "/v1/inspections", params={"target": target},
                                   **as_(staff.team[0], "officer"))
            return dict(rows[0]) if rows and rows[0]["needs"] else None
        return await eventually(found, what=f"the inspection of {target}")

    async def started() -> dict[str, Any]:
        inspection = await planned()
        return dict(await county.ok("enforcement", "POST", f"/v1/inspections/{inspection['inspection_id']}/start",
                                    json={"officers": list(staff.team)}, **enforcer))

    async def case() -> dict[str, Any]:
        inspection = await started()
        done = await county.ok("enforcement", "POST", f"/v1/inspections/{inspection['inspection_id']}/result",
                               json=_violation(inspection), **enforcer)
        return {"case_id": done["cases"][0]}

    makers: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "task": task, "returned_task": functools.partial(task, "return"),
        "extending_task": functools.partial(task, "extend"), "completed_task": functools.partial(task, "complete"),
        "completed_matter": completed_matter, "planned": planned, "started": started, "case": case,
        "duplicate": duplicate, "merged": merged, "closed_task": closed_task,
        "suspending_task": functools.partial(task, "suspend"), "suspended_task": suspended_task,
        "photographed": photographed}
    gate = asyncio.Semaphore(6)  # the machine is small: a few matters in flight per town

    async def one(kind: str) -> dict[str, Any]:
        async with gate:
            return await makers[kind]()

    shared = ["task", "planned", "started", "case"]
    others = ["duplicate", "merged", "closed_task", "photographed"]
    made = await asyncio.gather(*(one(k) for k in shared + others),
                                *(one(k) for k, n in fresh.items() for _ in range(n)))
    shared_task, shared_planned, shared_started, shared_case = made[:4]
    other_records = dict(zip(others, made[4:4 + len(others)], strict=True))
    rest = iter(made[4 + len(others):])
    plan = await county.ok("enforcement", "POST", "/v1/random-plans", json={
        "targets": ["A", "B", "C"], "sample_size": 1, "seed": 1, "town_code": code}, **enforcer)
    on_inspection = await county.ok("enforcement", "POST", f"/v1/inspections/{shared_started['inspection_id']}/evidence",
                                    data={"note": "现场照片"}, files=[PHOTO_PART], **enforcer)
    on_case = await county.ok("enforcement", "POST", f"/v1/cases/{shared_case['case_id']}/evidence",
                              data={"note": "调查取证照片"}, files=[PHOTO_PART], **enforcer)
    return TownRecords(code, matter=shared_task, task=shared_task, planned=shared_planned, started=shared_started,
                       case=shared_case, plan=plan,
                       fresh={kind: [next(rest) for _ in range(n)] for kind, n in fresh.items()},
                       others=other_records, evidence={"inspection": on_inspection["evidence"][0]["attachment_id"],
                                                       "case": on_case["evidence"][0]["attachment_id"]})


@pytest.fixture(scope="module")
async def county(county_stack: Stack) -> AsyncIterator[County]:
    async with http_client(timeout=30) as client:
        yield County(county_stack, client)


@pytest.fixture(scope="module")
async def towns(county: County) -> AsyncIterator[dict[str, TownRecords]]:
    for service in county.stack.services:
        await county.ok(service, "POST", "/v1/admin/clock", json={"now": NOW}, sub="c001", roles=("county_admin",))
    made = dict(zip((OWN, OTHER), await asyncio.gather(_make_town(county, OWN), _make_town(county, OTHER)),
                    strict=True))

    async def scored(code: str) -> bool:  # the period's scores exist, with points to split a bonus by
        rows = await county.ok("appraisal", "GET", "/v1/scores", sub="c002", roles=("county_reader",),
                               params={"town": code, "period": PERIOD, "subject_type": "staff"})
        return any(r["points"] > 0 for r in rows)
    for code in made:
        await eventually(functools.partial(scored, code), what=f"{PERIOD}'s scores in {code}")
    yield made
    await _complete_what_is_left_open(county)
    for service in county.stack.services:  # the clocks back to the system's, as the module found them
        await county.ok(service, "POST", "/v1/admin/clock", json={"release": True}, sub="c001", roles=("county_admin",))


async def _complete_what_is_left_open(county: County) -> None:
    """The matrix made dozens of open tasks on the same A posts of the session's county stack: it
    completes them, leaving the posts' A holders under their load caps as it found them."""
    admin = {"sub": "c001", "roles": ("county_admin",)}
    for code in (OWN, OTHER):
        for status in OPEN_STATUSES:
            for task in await county.ok("dispatch", "GET", "/v1/tasks", params={"town": code, "status": status,
                                                                                 "limit": 1000}, **admin):
                await county.ok("dispatch", "POST", f"/v1/tasks/{task['task_id']}/complete",
                                json={"resolution": "已办结", "reply": "已为您办理完毕。"}, **admin)


# --- the tests ---------------------------------------------------------------------------------
async def test_the_matrix_lists_every_route(county_stack: Stack, county: County) -> None:
    """Every route of every service (read from its OpenAPI document) has its rows, and no row is
    for a route that does not exist."""
    served: set[Route] = set()
    for service in county_stack.services:
        document = await county.ok(service, "GET", "/openapi.json")
        served |= {(service, method.upper(), path) for path, operations in document["paths"].items()
                   if path not in NOT_SERVED_BY_THE_MATRIX for method in operations}
    assert served - set(MATRIX) == set(), "routes without rows in the matrix"
    assert set(MATRIX) - served == set(), "rows for routes no service serves"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_role_and_town_matrix(county: County, towns: dict[str, TownRecords], row: Row) -> None:
    town = towns[row.town] if row.town else None
    kind = KIND_OF.get(row.route)
    if town is None:
        record = None
    elif kind is not None:
        record = town.record(kind, fresh=row.expected < 300)
    else:  # a read, or an action that makes a record of its own
        record = {**town.task, "inspection_id": town.planned["inspection_id"], "case_id": town.case["case_id"],
                  "plan_id": town.plan["plan_id"], "photographed": town.others["photographed"],
                  "started_id": town.started["inspection_id"],
                  "inspection_evidence": town.evidence["inspection"], "case_evidence": town.evidence["case"]}
    call = _request(row.route, town, record)
    caller = row.caller
    params = dict(call.params)
    if caller.code is not None:
        assert call.code is not None
        params["code"] = call.code if caller.code == "right" else _another(call.code)
    sub = call.who[caller.sub[1:-1]] if caller.sub.startswith("{") else caller.sub
    response = await county.call(row.route[0], row.route[1], call.path, params=params, json=call.json,
                                 data=call.data, files=call.files,
                                 sub=sub if caller.token else None, roles=caller.roles,
                                 town=None if caller.county else OWN)
    assert response.status_code == row.expected, response.text
    if response.status_code == 200 and town is not None and response.headers["content-type"] == "application/json":
        _assert_of_town(response.json(), town.code)


def _another(code: str) -> str:
    """A well-formed code that is not `code`."""
    return code[:-1] + ("2" if code[-1] != "2" else "3")


def _assert_of_town(body: Any, code: str) -> None:
    """What a read answers is the asked town's: the record, or every row of a list."""
    items = body if isinstance(body, list) else [body]
    for item in items:
        if isinstance(item, dict) and "town_code" in item:
            assert item["town_code"] == code, item
