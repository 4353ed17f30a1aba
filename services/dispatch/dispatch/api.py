"""Dispatch's HTTP API (SPEC §5.3): post holders act on tasks, the command centre redispatches,
approves extensions, checks closures and watches the board."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from townflow_shared.auth import Principal, require, town_to_act, town_to_read
from townflow_shared.checks import present
from townflow_shared.db import transaction
from townflow_shared.events import (
    Colour,
    Rating,
    TaskAccepted,
    TaskAcceptedData,
    TaskCallback,
    TaskCallbackData,
    TaskExtended,
    TaskExtendedData,
    TaskReturned,
    TaskReturnedData,
    TaskVerified,
    TaskVerifiedData,
)
from townflow_shared.http import Runtime, unprocessable
from townflow_shared.outbox import enqueue
from townflow_shared.privacy import mask_personal_numbers
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.telemetry import link_to
from townflow_shared.town import Town

from . import flows, rules, store

router = APIRouter(tags=["tasks"])
POST_HOLDERS = ("staff", "module_leader", "officer", "command_centre")
READERS = (*POST_HOLDERS, "appraisal_admin")
Holder = Annotated[Principal, Depends(require(*POST_HOLDERS))]
CommandCentre = Annotated[Principal, Depends(require("command_centre"))]


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: str = Field(min_length=1, max_length=2000)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


class Redispatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    post: str | None = None
    assignee: str | None = None
    return_valid: bool = True

    @model_validator(mode="after")
    def _one(self) -> Redispatch:
        if (self.post is None) == (self.assignee is None):
            raise ValueError("give exactly one of 'post' or 'assignee'")
        return self


class ExtensionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(ge=1, le=60)
    reason: str = Field(min_length=1, max_length=1000)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=1000)


class Verification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    passed: bool
    note: str = Field(default="", max_length=1000)


class Callback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reached: bool
    rating: Rating | None = None
    note: str = Field(default="", max_length=1000)


class OffPost(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: datetime = Field(alias="from")
    to: datetime
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _order(self) -> OffPost:
        if self.from_.tzinfo is None or self.to.tzinfo is None:
            raise ValueError("'from' and 'to' need a UTC offset")
        if self.to <= self.from_:
            raise ValueError("'to' must be after 'from'")
        return self


def _task_id(task_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(task_id)
    except ValueError as exc:
        raise HTTPException(404, detail="no such task") from exc


def _town(runtime: ServiceRuntime, code: str) -> Town:
    """The town of a stored record; one this deployment no longer serves is not found."""
    town = runtime.county.town(code)
    if town is None:
        raise HTTPException(404, detail=f"town {code} is not served by this deployment")
    return town


def _tz(runtime: ServiceRuntime, code: str) -> tzinfo:
    town = runtime.county.town(code)
    return town.calendar.tz if town else UTC


def _towns_to_read(runtime: ServiceRuntime, principal: Principal, town: str | None) -> list[str]:
    """The towns a list shows: the caller's own; every town, or `town`, for the county roles."""
    if town is not None and runtime.county.town(town) is None:
        raise unprocessable([("town", f"unknown town {town!r}")], where="query")
    if principal.county_wide:
        return [town] if town else list(runtime.county.towns)
    if town is not None:
        town_to_read(principal, town)  # another town's tasks are not found, as its task is (SPEC §8)
    return [present(principal.town, "a town staff member's town")]


async def _locked_task(conn: asyncpg.Connection, runtime: ServiceRuntime, principal: Principal,
                       task_id: str) -> tuple[asyncpg.Record, Town]:
    """The locked task and its town, once the caller may act in that town (else 403)."""
    task = await store.task_for_update(conn, _task_id(task_id))
    if task is None:
        raise HTTPException(404, detail="no such task")
    town_to_act(principal, task["town_code"])
    link_to(task["trace_headers"])  # a person's action: its own trace, linked to the matter's
    return task, _town(runtime, task["town_code"])


def _check(action: str, task: asyncpg.Record) -> None:
    if error := rules.transition_error(action, task["status"]):
        raise HTTPException(409, detail=error)


async def _task_to_act_on(conn: asyncpg.Connection, runtime: ServiceRuntime, principal: Principal,
                          task_id: str, action: str) -> tuple[asyncpg.Record, Town]:
    """The locked task and its town, once the caller may act on it (its assignee or module
    leader, as staff of its town) and `action` is allowed from its status."""
    task, town = await _locked_task(conn, runtime, principal, task_id)
    if not rules.may_act(principal, task["assignee"], town.posts.get(task["post"]), town):
        raise HTTPException(403, detail="only the assignee or the module leader may act on this task")
    _check(action, task)
    return task, town


def _view(task: asyncpg.Record, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """A task as its town reads it: times in the town's time zone."""
    out = {k: (v.astimezone(tz).isoformat() if isinstance(v, datetime)
               else str(v) if isinstance(v, uuid.UUID) else v)
           for k, v in dict(task).items()}
    out.pop("trace_headers", None)
    out["overdue"] = rules.is_overdue(task["status"], task["resolve_by"], now)
    return out


@router.post("/v1/tasks/{task_id}/accept")
async def accept(task_id: str, runtime: Runtime, principal: Holder) -> dict[str, Any]:
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _task_to_act_on(conn, runtime, principal, task_id, "accept")
        await store.update_task(conn, task["task_id"], status="accepted", accepted_at=now)
        await enqueue(conn, flows.task_event(town, TaskAccepted, TaskAcceptedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=principal.sub,
            accepted_at=now), task["task_id"], task["request_id"], now))
    return {"task_id": task_id, "status": "accepted", "accepted_at": now.isoformat(),
            "in_time": now <= task["respond_by"]}


@router.post("/v1/tasks/{task_id}/complete")
async def complete(task_id: str, body: Resolution, runtime: Runtime, principal: Holder) -> dict[str, Any]:
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _task_to_act_on(conn, runtime, principal, task_id, "complete")
        on_time = await flows.complete_task(conn, town, task, by=principal.sub,
                                            resolution=body.resolution, now=now)
    return {"task_id": task_id, "status": "completed", "on_time": on_time}


@router.post("/v1/tasks/{task_id}/return")
async def return_task(task_id: str, body: Reason, runtime: Runtime, principal: Holder) -> dict[str, Any]:
    """退回: allowed within the return window after dispatch (default 2 working hours)."""
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _task_to_act_on(conn, runtime, principal, task_id, "return")
        limit = rules.return_deadline(task["dispatched_at"], town.calendar, town.rules.dispatch)
        if now > limit:
            raise HTTPException(409, detail=f"the return window closed at {limit.isoformat()}")
        await store.update_task(conn, task["task_id"], status="returned", returned_at=now,
                                return_reason=body.reason)
        await enqueue(conn, flows.task_event(town, TaskReturned, TaskReturnedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=principal.sub,
            reason=body.reason, returned_at=now), task["task_id"], task["request_id"], now))
    return {"task_id": task_id, "status": "returned"}


@router.post("/v1/tasks/{task_id}/redispatch", status_code=201)
async def redispatch(task_id: str, body: Redispatch, runtime: Runtime,
                     principal: CommandCentre) -> dict[str, Any]:
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _locked_task(conn, runtime, principal, task_id)
        # The post or the assignee is one of the task's town.
        if body.post is not None and body.post not in town.posts:
            raise unprocessable([("post", f"unknown post {body.post!r} in town {town.code}")])
        if body.assignee is not None and body.assignee not in town.staff:
            raise unprocessable([("assignee", f"unknown staff id {body.assignee!r} in town {town.code}")])
        _check("redispatch", task)
        await store.update_task(conn, task["task_id"], status="redispatched")
        matter = flows.Matter(task["request_id"], task["ticket_no"], task["item_code"], task["colour"],
                              task["village"], task["location"], task["target"])
        post = body.post or task["post"]  # an explicit assignee keeps the task's post
        new_id = await flows.dispatch_matter(conn, town, matter, now=now, post_code=post,
                                             assignee=body.assignee, redispatch_of=task["task_id"],
                                             invalid_return=not body.return_valid)
        new_task = await store.task(conn, new_id)
    return _view(present(new_task, "the redispatched task"), now, town.calendar.tz)


@router.post("/v1/tasks/{task_id}/extend", status_code=202)
async def request_extension(task_id: str, body: ExtensionRequest, runtime: Runtime,
                            principal: Holder) -> dict[str, Any]:
    """延期申请: asked before resolve_by; the command centre approves or refuses it."""
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _task_to_act_on(conn, runtime, principal, task_id, "extend")
        if now > task["resolve_by"]:
            raise HTTPException(409, detail="an extension must be asked before resolve_by "
                                            f"({task['resolve_by'].isoformat()})")
        extension_id = await store.add_extension(conn, town.code, task["task_id"], body.days, body.reason,
                                                 principal.sub, now)
        if extension_id is None:
            raise HTTPException(409, detail="an extension request is already pending for this task")
    return {"task_id": task_id, "extension_id": str(extension_id), "status": "pending"}


async def _decide(task_id: str, approve: bool, body: Decision, runtime: ServiceRuntime,
                  principal: Principal) -> dict[str, Any]:
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _locked_task(conn, runtime, principal, task_id)
        if approve and (error := rules.extension_approval_error(task["status"])):
            raise HTTPException(409, detail=error)
        pending = await store.pending_extension(conn, task["task_id"])
        if pending is None:
            raise HTTPException(409, detail="no extension request is pending for this task")
        await store.decide_extension(conn, pending["extension_id"], "approved" if approve else "refused",
                                     principal.sub, now, body.note)
        result: dict[str, Any] = {"task_id": task_id, "status": "approved" if approve else "refused"}
        if approve:
            resolve_by = rules.extended_resolve_by(task["resolve_by"], pending["days"], town.calendar)
            next_at = await flows.next_supervision_after_change(conn, town, task["task_id"],
                                                                task["window_start"], resolve_by)
            await store.update_task(conn, task["task_id"], resolve_by=resolve_by,
                                    extension_count=task["extension_count"] + 1, next_supervision_at=next_at)
            await enqueue(conn, flows.task_event(town, TaskExtended, TaskExtendedData(
                task_id=str(task["task_id"]), request_id=str(task["request_id"]), days=pending["days"],
                reason=pending["reason"], approved_by=principal.sub, resolve_by=resolve_by),
                task["task_id"], task["request_id"], now))
            result["resolve_by"] = resolve_by.isoformat()
    return result


@router.post("/v1/tasks/{task_id}/extension/approve")
async def approve_extension(task_id: str, runtime: Runtime, principal: CommandCentre,
                            body: Decision | None = None) -> dict[str, Any]:
    return await _decide(task_id, True, body or Decision(), runtime, principal)


@router.post("/v1/tasks/{task_id}/extension/refuse")
async def refuse_extension(task_id: str, runtime: Runtime, principal: CommandCentre,
                           body: Decision | None = None) -> dict[str, Any]:
    return await _decide(task_id, False, body or Decision(), runtime, principal)


@router.post("/v1/tasks/{task_id}/verify")
async def verify(task_id: str, body: Verification, runtime: Runtime,
                 principal: CommandCentre) -> dict[str, Any]:
    """核查结案: passed closes the task; failed sends it back to the same assignee as rework."""
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _locked_task(conn, runtime, principal, task_id)
        _check("verify", task)
        if body.passed:
            await store.update_task(conn, task["task_id"], status="closed")
        else:
            await store.forget_supervisions(conn, task["task_id"])
            resolve_by = rules.rework_resolve_by(now, task["window_start"], task["resolve_by"])
            await store.update_task(
                conn, task["task_id"], status="rework", window_start=now, resolve_by=resolve_by,
                rework_count=task["rework_count"] + 1, completed_at=None, on_time=None,
                next_supervision_at=await flows.next_supervision_after_change(
                    conn, town, task["task_id"], now, resolve_by))
        await enqueue(conn, flows.task_event(town, TaskVerified, TaskVerifiedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), passed=body.passed,
            note=body.note, by=principal.sub, at=now), task["task_id"], task["request_id"], now))
        updated = await store.task(conn, task["task_id"])
    return _view(present(updated, "the verified task"), now, town.calendar.tz)


@router.post("/v1/tasks/{task_id}/callback", responses={
    409: {"description": "the task is not closed, or this closure has its callback"},
    422: {"description": "a rating without reaching the citizen, or none after reaching them"}})
async def callback(task_id: str, body: Callback, runtime: Runtime, principal: CommandCentre) -> dict[str, Any]:
    """回访 after closure: the rating counts as the citizen's when they gave none (appraisal
    decides that from both topics); `unsatisfied` reopens the task (重办) for the same assignee
    with a new window of the original length."""
    if problems := rules.callback_problems(body.reached, body.rating):
        raise unprocessable(problems)
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        task, town = await _locked_task(conn, runtime, principal, task_id)
        if error := rules.callback_error(task["status"], task["called_back"]):
            raise HTTPException(409, detail=error)
        reopened = rules.callback_reopens(body.reached, body.rating)
        await store.add_callback(conn, town.code, task["task_id"], body.reached, body.rating, body.note,
                                 principal.sub, now, reopened)
        resolve_by = None
        if reopened:
            resolve_by, next_at = await flows.reopen_window(conn, town, task, now)
            await store.update_task(conn, task["task_id"], status="rework", window_start=now, resolve_by=resolve_by,
                                    reopen_count=task["reopen_count"] + 1, completed_at=None, on_time=None,
                                    next_supervision_at=next_at)
        else:
            await store.update_task(conn, task["task_id"], called_back=True)
        await enqueue(conn, flows.task_event(town, TaskCallback, TaskCallbackData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), reached=body.reached,
            rating=body.rating, note=mask_personal_numbers(body.note),  # the citizen's words may hold a phone
            by=principal.sub, at=now, reopened=reopened, resolve_by=resolve_by),
            task["task_id"], task["request_id"], now))
        updated = await store.task(conn, task["task_id"])
    return _view(present(updated, "the called-back task"), now, town.calendar.tz)


@router.post("/v1/staff/{staff_id}/off-post", status_code=201)
async def register_off_post(staff_id: str, body: OffPost, runtime: Runtime, principal: Holder,
                            town: str | None = None) -> dict[str, Any]:
    """离岗登记 by the person, their module leader or the command centre; dispatch honours it from
    then on. For a staff member of the caller's town (staff ids repeat across towns); the
    county's admin names the town (`?town=`)."""
    code = town or principal.town
    if code is None:
        raise unprocessable([("town", "name the town of the staff member")], where="query")
    where = runtime.county.town(code)
    if where is None:
        raise unprocessable([("town", f"unknown town {code!r}")], where="query")
    town_to_act(principal, code)
    staff = where.staff.get(staff_id)
    if staff is None:
        raise HTTPException(404, detail="no such staff member")
    leader = where.modules[staff.module].leader
    if principal.sub not in (staff_id, leader) and not principal.has_any(["command_centre"]):
        raise HTTPException(403, detail="only the person, their module leader or the command centre may register this")
    async with transaction(runtime.pool) as conn:
        entry = await store.add_off_post(conn, code, staff_id, body.from_, body.to, body.reason, principal.sub)
    return {"id": entry, "town_code": code, "staff_id": staff_id, "from": body.from_.isoformat(),
            "to": body.to.isoformat()}


@router.get("/v1/tasks")
async def list_tasks(
    runtime: Runtime,
    principal: Annotated[Principal, Depends(require(*READERS))],
    town: str | None = None,
    assignee: str | None = None,
    module: str | None = None,
    status: str | None = None,
    colour: Colour | None = None,
    overdue: bool | None = None,
    request_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """The caller's town's tasks; the county roles see every town's, or `town`'s."""
    towns = _towns_to_read(runtime, principal, town)
    now = runtime.clock.now()
    rows = await store.list_tasks(runtime.pool, towns, now=now, assignee=assignee, module=module, status=status,
                                  colour=colour, overdue=overdue, request_id=request_id, limit=limit)
    return [_view(r, now, _tz(runtime, r["town_code"])) for r in rows]


@router.get("/v1/tasks/{task_id}")
async def get_task(task_id: str, runtime: Runtime,
                   principal: Annotated[Principal, Depends(require(*READERS))]) -> dict[str, Any]:
    task = await store.task(runtime.pool, _task_id(task_id))
    if task is None:
        raise HTTPException(404, detail="no such task")
    town_to_read(principal, task["town_code"])  # another town's task is not found
    now = runtime.clock.now()
    view = _view(task, now, _tz(runtime, task["town_code"]))
    view["supervisions"] = [{"level": s["level"], "at": s["at"].isoformat(), "notified": s["notified"]}
                            for s in await store.supervision_levels(runtime.pool, task["task_id"])]
    view["extensions"] = [{"days": e["days"], "status": e["status"], "reason": e["reason"]}
                          for e in await store.extensions_of(runtime.pool, task["task_id"])]
    view["callbacks"] = [{"reached": c["reached"], "rating": c["rating"], "note": c["note"], "by": c["by"],
                          "at": c["at"].isoformat(), "reopened": c["reopened"]}
                         for c in await store.callbacks_of(runtime.pool, task["task_id"])]
    return view


@router.get("/v1/board")
async def board(runtime: Runtime, principal: CommandCentre, town: str | None = None) -> dict[str, Any]:
    """The command centre's live board of its town (the county roles: every town, or `town`):
    counts by colour × status, overdue, escalated, returned."""
    towns = _towns_to_read(runtime, principal, town)
    now = runtime.clock.now()
    counts: dict[str, dict[str, int]] = {c: {} for c in ("red", "orange", "yellow")}
    for row in await store.board_counts(runtime.pool, towns):
        counts.setdefault(row["colour"], {})[row["status"]] = row["n"]

    def brief(t: asyncpg.Record) -> dict[str, Any]:
        return {"task_id": str(t["task_id"]), "town_code": t["town_code"], "ticket_no": t["ticket_no"],
                "colour": t["colour"], "assignee": t["assignee"], "status": t["status"],
                "resolve_by": t["resolve_by"].astimezone(_tz(runtime, t["town_code"])).isoformat()}

    return {
        "at": now.isoformat(),
        "counts": counts,
        "overdue": [brief(t) for t in await store.overdue_tasks(runtime.pool, towns, now)],
        "escalated": [brief(t) for t in await store.escalated_tasks(runtime.pool, towns)],
        "returned": [brief(t) for t in await store.returned_queue(runtime.pool, towns)],
    }
