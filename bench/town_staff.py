"""Each town's own staff at work while chaos runs (SPEC §8): in every town of the stack's town or
county folder, the post holders accept and complete their service tasks, the command centre checks
the closures, the enforcement team starts and finishes its inspections, and the citizens rate their
completed matters with their access codes. Every call carries that town's own token, never the
county's, so a county run shows that a town's staff can do all of their work in their own town.

An answer of 401, 403 or 404 to one of them is a refusal the town's staff must never get, and is
reported; an outage (5xx, a connection refused) or a state another replica already moved on (409)
is tried again in the next round.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.stack import Stack
from townflow_shared.town import Town

REFUSALS = (401, 403, 404)


@dataclass
class StaffReport:
    """What the towns' staff did, and what they were refused."""

    done: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    tried_again: Counter[str] = field(default_factory=Counter)  # "action status": outages and races
    problems: Counter[str] = field(default_factory=Counter)  # "action status code": the refusal's own code
    to_rate: dict[str, str] = field(default_factory=dict)  # request_id → town, completed but not rated yet
    leave_alone: set[str] = field(default_factory=set)  # targets whose tasks are left to supervision (督办)
    # "action status replica: body" of every 5xx but 503 (which replica, and what it said, is where an
    # SRE starts reading its log)
    server_errors: list[str] = field(default_factory=list)


def problem_code(response: httpx.Response) -> str:
    """The `code` of a problem document (RFC 9457), with its field errors' codes when it has
    several (`request.invalid[inspection.finding_missing,inspection.unit_absent]`); "-" for
    another body."""
    try:
        body = response.json()
    except ValueError:
        return "-"
    if not isinstance(body, dict):
        return "-"
    errors = body.get("errors") if body.get("code") == "request.invalid" else None
    codes = sorted({str(e.get("code")) for e in errors if isinstance(e, dict)}) if isinstance(errors, list) else []
    return str(body.get("code", "-")) + (f"[{','.join(codes)}]" if codes else "")


class TownDesk:
    """One town's staff, with their own tokens, calling the replicas of each service in turn."""

    def __init__(self, stack: Stack, town: Town, client: httpx.AsyncClient, report: StaffReport) -> None:
        self.stack, self.town, self.client, self.report = stack, town, client, report
        self.command = town.info.command_centre_duty[0]
        self.leader = town.modules[next(m.code for m in town.modules.values() if m.kind == "enforcement")].leader
        team = [s.id for s in town.staff.values() if s.enforcement_certificate and s.module == "enforcement"]
        self.team = team[:2]
        self._turn = itertools.count()

    def _headers(self, service: str, sub: str) -> dict[str, str]:
        roles = self.town.staff[sub].roles  # the roles of their own entry in staff.yaml
        return {"Authorization": f"Bearer {self.stack.token(service, sub, roles, town=self.town.code)}"}

    async def call(self, action: str, service: str, method: str, path: str, sub: str | None = None,
                   done_by: str | None = None, older_json: Any = None, **kwargs: Any) -> Any | None:
        """The answer's JSON on success; None when refused (reported), after an outage or a 409 (a
        409 naming `done_by`, e.g. an earlier try that succeeded unseen, counts as done: `{}`).
        `older_json`: the body the previous release takes, sent at once to a replica of it that
        refuses a member this release added (422 `value.unexpected`), as every client of both
        releases does while they run side by side."""
        replicas = self.stack.replicas[service]
        url = replicas[next(self._turn) % len(replicas)].url + path
        headers = self._headers(service, sub) if sub else {}
        try:
            response = await self.client.request(method, url, headers=headers, **kwargs)
            if older_json is not None and response.status_code == 422 and problem_code(response) == "value.unexpected":
                response = await self.client.request(method, url, headers=headers, **{**kwargs, "json": older_json})
        except httpx.HTTPError as exc:
            self.report.tried_again[f"{action} {type(exc).__name__}"] += 1
            return None  # a replica killed or restarting: the next round tries again
        if response.status_code in REFUSALS:
            self.report.refused.append(f"{self.town.code} {action} {path}: {response.status_code} {response.text[:200]}")
            return None
        if response.status_code == 409 and done_by and done_by in response.text:
            return {}
        if response.status_code >= 500 and response.status_code != 503:
            self.report.server_errors.append(f"{action} {response.status_code} {url}: {response.text[:200]}")
        if response.status_code >= 300:
            self.report.tried_again[f"{action} {response.status_code}"] += 1
            self.report.problems[f"{action} {response.status_code} {problem_code(response)}"] += 1
            return None
        self.report.done[action] += 1
        return response.json()

    async def tasks(self, status: str) -> list[dict[str, Any]]:
        found = await self.call("list tasks", "dispatch", "GET", "/v1/tasks", self.command,
                                params={"status": status, "limit": 200})
        return list(found or [])

    async def one_round(self, receipts: dict[str, tuple[str, str]]) -> int:
        """Every piece of work there is now; how many were found."""
        work = 0
        # A step that failed (an outage) is taken up again from the status it left the record in.
        for task in await self.tasks("dispatched") + await self.tasks("accepted"):
            if task["kind"] != "service" or task.get("target") in self.report.leave_alone:
                continue  # the inspection that covers it completes it (or chaos watches it go overdue)
            work += 1
            path = f"/v1/tasks/{task['task_id']}"
            if task["status"] == "dispatched" and await self.call(
                    "accept", "dispatch", "POST", f"{path}/accept", task["assignee"]) is None:
                continue
            # 办结 with the answer to the citizen (v1.1.0 takes the resolution alone).
            await self.call("complete", "dispatch", "POST", f"{path}/complete", task["assignee"],
                            json={"resolution": "已办结", "reply": "已为您办理完毕。"},
                            older_json={"resolution": "已办结"})
        for task in await self.tasks("completed"):
            work += 1
            if await self.call("verify", "dispatch", "POST", f"/v1/tasks/{task['task_id']}/verify", self.command,
                               json={"passed": True, "note": "核查通过"}) is not None:
                self.report.to_rate[task["request_id"]] = self.town.code
        for request_id in [r for r, t in self.report.to_rate.items() if t == self.town.code]:
            if request_id not in receipts:  # filed by a try whose answer never came: no code to rate with
                del self.report.to_rate[request_id]
                continue
            work += 1
            ticket_no, code = receipts[request_id]
            rated = await self.call("rate", "intake", "POST", f"/v1/requests/{ticket_no}/rating",
                                    params={"code": code}, json={"rating": "satisfied"}, done_by="already been rated")
            if rated is not None:
                del self.report.to_rate[request_id]
        open_inspections = [i for status in ("planned", "started") for i in await self.call(
            "list inspections", "enforcement", "GET", "/v1/inspections", self.leader,
            params={"status": status, "limit": 200}) or []]
        for inspection in open_inspections:
            work += 1
            path = f"/v1/inspections/{inspection['inspection_id']}"
            if inspection["status"] == "planned" and await self.call(
                    "start", "enforcement", "POST", f"{path}/start", self.leader, json={"officers": self.team}) is None:
                continue
            await self.call("result", "enforcement", "POST", f"{path}/result", self.team[0], json={
                "officers": self.team, "present_units": inspection["units"],
                "findings": [{"task_id": n["task_id"], "outcome": "compliant"}
                             for n in inspection["needs"] if n["task_id"]]})
        return work


async def staff_at_work(stack: Stack, towns: list[Town], receipts: dict[str, tuple[str, str]],
                        load_done: asyncio.Event, report: StaffReport, drain_seconds: float = 180.0) -> None:
    """Rounds of every town's work until the load is done and a round finds nothing left to do
    (or `drain_seconds` after the load)."""
    async with httpx.AsyncClient(timeout=10) as client:
        desks = [TownDesk(stack, town, client, report) for town in towns]
        deadline: float | None = None
        while True:
            work = 0
            for desk in desks:
                work += await desk.one_round(receipts)
            if load_done.is_set():
                deadline = deadline or time.monotonic() + drain_seconds
                if work == 0 or time.monotonic() > deadline:
                    return
            await asyncio.sleep(1.0)
