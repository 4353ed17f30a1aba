"""Dispatch's command handlers: each state change is one function `(deps, actor, command)` that
opens a unit of work, reads, asks `rules`, writes, publishes its events and returns a result or
raises a refusal of `refusals.py`. The event handlers (handlers.py) and supervision (scheduled.py)
run the same flows inside their own transaction; the reads the routes answer are at the end."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Literal

import asyncpg

from townflow_shared import attachments as shared_attachments
from townflow_shared import audit_trail, events
from townflow_shared.auth import Principal
from townflow_shared.clock import Clock
from townflow_shared.county import County
from townflow_shared.db import Database
from townflow_shared.deadlines import DueBatch
from townflow_shared.dlq import Rejected
from townflow_shared.events import AttachmentRef, EventData, new_event
from townflow_shared.events import Envelope as _Envelope
from townflow_shared.objects import ObjectStore
from townflow_shared.photos import PhotoLimits
from townflow_shared.privacy import mask_personal_numbers
from townflow_shared.problems import TOWN_REQUIRED, Refusal
from townflow_shared.scope import town_of_event, town_of_new_record, town_of_record, towns_to_read
from townflow_shared.telemetry import current_trace_headers, link_to
from townflow_shared.town import Town, TownConfigError
from townflow_shared.views import in_town_time

from . import attachments, rehearsal, rules, store
from .models import (
    Accepted,
    Board,
    BoardTask,
    CallbackSeen,
    Completed,
    ExtensionAsked,
    ExtensionDecided,
    ExtensionSeen,
    HolderSeen,
    OffPostRegistered,
    PendingExtension,
    PendingSuspension,
    PhotoSeen,
    Returned,
    SupervisionSeen,
    SuspensionAsked,
    SuspensionDecided,
    SuspensionSeen,
    TaskDetail,
    TaskPage,
    TaskQuery,
    TaskView,
    task_view,
)
from .refusals import CODES
from .settings import DispatchSettings
from .store import Row, TaskSearch, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    """What dispatch's handlers are handed, built once by the bootstrap (app.py)."""

    settings: DispatchSettings
    county: County
    clock: Clock
    database: Database  # the reads' pool; changes go through `unit_of_work`
    unit_of_work: UnitOfWorkFactory
    objects: ObjectStore | None = None  # the deployment's bucket (photos); None: photos are refused


# --- commands -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AcceptTask:
    task_id: uuid.UUID


@dataclass(frozen=True)
class CompleteTask:
    task_id: uuid.UUID
    resolution: str
    reply: str  # 答复: the answer to the citizen, what was done or why not
    photos: tuple[bytes, ...] = ()  # 处置后照片: as uploaded, cleaned before they are stored


@dataclass(frozen=True)
class ReturnTask:
    task_id: uuid.UUID
    reason: str


@dataclass(frozen=True)
class RedispatchTask:
    task_id: uuid.UUID
    post: str | None
    assignee: str | None
    return_valid: bool = True


@dataclass(frozen=True)
class RequestExtension:
    task_id: uuid.UUID
    days: int
    reason: str


@dataclass(frozen=True)
class Decide:
    """The command centre's answer to a task's request (an extension, a suspension)."""

    task_id: uuid.UUID
    approve: bool
    note: str | None = None


@dataclass(frozen=True)
class RequestSuspension:
    task_id: uuid.UUID
    category: events.SuspensionCategory
    reason: str


@dataclass(frozen=True)
class ResumeTask:
    task_id: uuid.UUID
    note: str | None = None


@dataclass(frozen=True)
class VerifyTask:
    task_id: uuid.UUID
    passed: bool
    note: str = ""
    photos: tuple[bytes, ...] = ()  # the command centre's own, taken at the check


@dataclass(frozen=True)
class CallBack:
    task_id: uuid.UUID
    reached: bool
    rating: events.Rating | None
    note: str = ""


@dataclass(frozen=True)
class RegisterOffPost:
    staff_id: str
    town: str | None  # the staff member's town, named by a county role
    from_: datetime
    to: datetime
    reason: str


@dataclass(frozen=True)
class Matter:
    request_id: uuid.UUID
    ticket_no: str
    item_code: str
    colour: str
    village: str
    location: str
    target: str | None


class UnknownItem(Rejected):
    """The filed item is not in this town's catalog: the event goes to the DLQ."""


def task_event(town: Town, event_type: type[_Envelope], data: EventData, task_id: Any,
               request_id: Any, now: datetime, causation_id: Any = None) -> _Envelope:
    return new_event(event_type, data, source="dispatch", town_code=town.code,
                     subject=str(task_id), correlation_id=str(request_id), time=now,
                     causation_id=causation_id)


async def _locked_task(uow: UnitOfWork, deps: Deps, actor: Principal, task_id: uuid.UUID) -> tuple[Row, Town]:
    """The locked task and its town, once the caller may act in that town (else 403)."""
    task = await uow.store.task_for_update(task_id)
    if task is None:
        raise CODES["task.not_found"]()
    town = town_of_record(deps.county, actor, task["town_code"], acting=True, not_found=CODES["task.not_found"])
    link_to(task["trace_headers"])  # a person's action: its own trace, linked to the matter's
    return task, town


def _allowed(action: str, task: Row) -> None:
    if refusal := rules.transition_refusal(action, task["status"]):
        raise refusal


async def _task_to_act_on(uow: UnitOfWork, deps: Deps, actor: Principal, task_id: uuid.UUID,
                          action: str) -> tuple[Row, Town]:
    """The locked task and its town, once the caller may act on it (its assignee or module
    leader, as staff of its town) and `action` is allowed from its status."""
    task, town = await _locked_task(uow, deps, actor, task_id)
    if not rules.may_act(actor, task["assignee"], town.posts.get(task["post"]), town):
        raise CODES["task.not_assignee"]()
    _allowed(action, task)
    return task, town


async def _task_now(uow: UnitOfWork, task_id: uuid.UUID, now: datetime, town: Town) -> TaskView:
    task = await uow.store.task(task_id)
    if task is None:  # it was locked by this transaction a moment ago
        raise CODES["task.not_found"]()
    return TaskView.of(task, now, town.calendar.tz)


async def accept_task(deps: Deps, actor: Principal, command: AcceptTask) -> Accepted:
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _task_to_act_on(uow, deps, actor, command.task_id, "accept")
        await uow.store.update_task(task["task_id"], status="accepted", accepted_at=now)
        await uow.publish(task_event(town, events.TaskAccepted, events.TaskAcceptedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=actor.sub,
            accepted_at=now), task["task_id"], task["request_id"], now))
    return Accepted(task_id=command.task_id, accepted_at=now.astimezone(town.calendar.tz),
                    in_time=now <= task["respond_by"])


async def _photos_stored(deps: Deps, actor: Principal, task_id: uuid.UUID, action: str,
                         photos: tuple[bytes, ...]) -> list[shared_attachments.Stored]:
    """A step's photos (issue #29) put in the bucket before its transaction, once the caller may
    take the step: who may act, the task's status, the item's count. Cleaning and storing take
    seconds, so no lock is held meanwhile; the step's transaction checks all again and records
    them (townflow_shared.attachments: nothing half-stored)."""
    if not photos:
        return []
    async with deps.unit_of_work() as uow:
        if action == "complete":
            task, town = await _task_to_act_on(uow, deps, actor, task_id, action)
        else:
            task, town = await _locked_task(uow, deps, actor, task_id)
            _allowed(action, task)
    return await attachments.stored(deps.objects, PhotoLimits.of(deps.settings), town, task, photos)


async def complete_task(deps: Deps, actor: Principal, command: CompleteTask) -> Completed:
    """办结, with the after photos (处置后照片) where the holder took some, or the item needs them."""
    if refusal := rules.reply_refusal(command.reply):
        raise refusal
    placed = await _photos_stored(deps, actor, command.task_id, "complete", command.photos)
    now = deps.clock.now()
    try:
        async with deps.unit_of_work() as uow:
            task, town = await _task_to_act_on(uow, deps, actor, command.task_id, "complete")
            if refusal := rules.completion_photo_refusal(town, task["item_code"], len(placed)):
                raise refusal
            recorded = attachments.rows(placed, town.code, task, "after", actor.sub, now)
            await uow.store.add_attachments(recorded)
            on_time = await finish_task(uow, town, task, by=actor.sub, resolution=command.resolution,
                                        reply=command.reply, now=now, photos=attachments.references(recorded))
    except Refusal:  # not written: its photos have no record, and never will
        await attachments.forget(deps.objects, placed)
        raise
    return Completed(task_id=command.task_id, on_time=on_time)


async def return_task(deps: Deps, actor: Principal, command: ReturnTask) -> Returned:
    """退回: allowed within the return window after dispatch (default 2 working hours)."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _task_to_act_on(uow, deps, actor, command.task_id, "return")
        closes_at = rules.return_deadline(task["dispatched_at"], town.calendar, town.rules.dispatch)
        if now > closes_at:
            raise CODES["task.return_window_closed"](closes_at=closes_at.astimezone(town.calendar.tz).isoformat())
        await uow.store.update_task(task["task_id"], status="returned", returned_at=now,
                                    return_reason=command.reason)
        await uow.publish(task_event(town, events.TaskReturned, events.TaskReturnedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=actor.sub,
            reason=command.reason, returned_at=now), task["task_id"], task["request_id"], now))
    return Returned(task_id=command.task_id)


async def redispatch_task(deps: Deps, actor: Principal, command: RedispatchTask) -> TaskView:
    """The command centre hands a returned task to another post or a named staff member."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _locked_task(uow, deps, actor, command.task_id)
        # The post or the assignee is one of the task's town.
        if command.post is not None and command.post not in town.posts:
            raise CODES["redispatch.unknown_post"]("post", post=command.post, town=town.code)
        if command.assignee is not None and command.assignee not in town.staff:
            raise CODES["redispatch.unknown_assignee"]("assignee", assignee=command.assignee, town=town.code)
        _allowed("redispatch", task)
        await uow.store.update_task(task["task_id"], status="redispatched")
        matter = Matter(task["request_id"], task["ticket_no"], task["item_code"], task["colour"],
                        task["village"], task["location"], task["target"])
        post = command.post or task["post"]  # an explicit assignee keeps the task's post
        new_id = await dispatch_matter(uow, town, matter, now=now, post_code=post, assignee=command.assignee,
                                       redispatch_of=task["task_id"], invalid_return=not command.return_valid)
        return await _task_now(uow, new_id, now, town)


async def request_extension(deps: Deps, actor: Principal, command: RequestExtension) -> ExtensionAsked:
    """延期申请: asked before resolve_by; the command centre approves or refuses it."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _task_to_act_on(uow, deps, actor, command.task_id, "extend")
        if now > task["resolve_by"]:
            raise CODES["extension.too_late"](resolve_by=task["resolve_by"].astimezone(town.calendar.tz).isoformat())
        extension_id = await uow.store.add_extension(town.code, task["task_id"], command.days, command.reason,
                                                     actor.sub, now)
        if extension_id is None:
            raise CODES["extension.already_pending"]()
        # Published so that the command centre is told (notify, issue #31), not only shown it on its list.
        await uow.publish(task_event(town, events.ExtensionRequested, events.ExtensionRequestedData(
            extension_id=str(extension_id), task_id=str(task["task_id"]), request_id=str(task["request_id"]),
            days=command.days, reason=mask_personal_numbers(command.reason), requested_by=actor.sub,
            requested_at=now, resolve_by=task["resolve_by"]), task["task_id"], task["request_id"], now))
    return ExtensionAsked(task_id=command.task_id, extension_id=extension_id)


async def decide_extension(deps: Deps, actor: Principal, command: Decide) -> ExtensionDecided:
    """The command centre approves (the deadline moves by working days) or refuses a pending request."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _locked_task(uow, deps, actor, command.task_id)
        if command.approve and (refusal := rules.extension_approval_refusal(task["status"])):
            raise refusal
        pending = await uow.store.pending_extension(task["task_id"])
        if pending is None:
            raise CODES["extension.none_pending"]()
        status = "approved" if command.approve else "refused"
        await uow.store.decide_extension(pending["extension_id"], status, actor.sub, now, command.note)
        if not command.approve:
            return ExtensionDecided(task_id=command.task_id, status="refused")
        resolve_by = rules.extended_resolve_by(task["resolve_by"], pending["days"], town.calendar)
        next_at = await _next_supervision_after_change(uow, town, task["task_id"], task["window_start"], resolve_by)
        await uow.store.update_task(task["task_id"], resolve_by=resolve_by,
                                    extension_count=task["extension_count"] + 1, next_supervision_at=next_at)
        await uow.publish(task_event(town, events.TaskExtended, events.TaskExtendedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), days=pending["days"],
            reason=pending["reason"], approved_by=actor.sub, resolve_by=resolve_by),
            task["task_id"], task["request_id"], now))
    return ExtensionDecided(task_id=command.task_id, status="approved",
                            resolve_by=resolve_by.astimezone(town.calendar.tz))


# --- 挂起: suspension while waiting on the citizen (补正材料) or a third party ----------------------
async def request_suspension(deps: Deps, actor: Principal, command: RequestSuspension) -> SuspensionAsked:
    """挂起申请 by the assignee or the module leader, asked before resolve_by, while the task is
    open; one request pending or in force per task. The command centre approves or refuses it."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _task_to_act_on(uow, deps, actor, command.task_id, "suspend")
        if now > task["resolve_by"]:
            raise CODES["suspension.too_late"](resolve_by=task["resolve_by"].astimezone(town.calendar.tz).isoformat())
        suspension_id = await uow.store.add_suspension(town.code, task["task_id"], command.category,
                                                       command.reason, actor.sub, now)
        if suspension_id is None:
            raise CODES["suspension.already_asked"]()
        await uow.publish(task_event(town, events.SuspensionRequested, events.SuspensionRequestedData(
            suspension_id=str(suspension_id), task_id=str(task["task_id"]), request_id=str(task["request_id"]),
            category=command.category, reason=mask_personal_numbers(command.reason),  # a holder may quote a phone
            requested_by=actor.sub, requested_at=now, resolve_by=task["resolve_by"]),
            task["task_id"], task["request_id"], now))
    return SuspensionAsked(task_id=command.task_id, suspension_id=suspension_id)


async def decide_suspension(deps: Deps, actor: Principal, command: Decide) -> SuspensionDecided:
    """The command centre approves a pending request (the task is suspended: its deadline and
    supervision stop, the working time left is kept) or refuses it (nothing changes)."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _locked_task(uow, deps, actor, command.task_id)
        if command.approve and (refusal := rules.suspension_approval_refusal(task["status"])):
            raise refusal
        pending = await uow.store.open_suspension(task["task_id"], "pending")
        if pending is None:
            raise CODES["suspension.none_pending"]()
        if not command.approve:
            await uow.store.update_suspension(pending["suspension_id"], status="refused", decided_by=actor.sub,
                                              decided_at=now, note=command.note)
            return SuspensionDecided(task_id=command.task_id, status="refused")
        left = rules.working_time_left(now, task["resolve_by"], town.calendar)
        await uow.store.update_suspension(pending["suspension_id"], status="suspended", decided_by=actor.sub,
                                          decided_at=now, note=command.note, from_status=task["status"],
                                          resolve_by_then=task["resolve_by"], working_left=left)
        # Out of the open statuses: supervision, the overdue lists and the load cap leave it alone.
        await uow.store.update_task(task["task_id"], status="suspended", next_supervision_at=None)
        await uow.publish(task_event(town, events.TaskSuspended, events.TaskSuspendedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), category=pending["category"],
            reason=mask_personal_numbers(pending["reason"]),  # a holder may quote the citizen's phone
            requested_by=pending["requested_by"], approved_by=actor.sub, suspended_at=now,
            resolve_by=task["resolve_by"], working_left_seconds=int(left.total_seconds())),
            task["task_id"], task["request_id"], now))
    return SuspensionDecided(task_id=command.task_id, status="suspended")


async def resume_task(deps: Deps, actor: Principal, command: ResumeTask) -> TaskView:
    """恢复办理: by the command centre, or by the assignee or module leader once what was awaited
    arrived (resuming only gives the holder less time, never more). The task takes back its status
    and the working time it had left, counted from now; its supervision ladder moves with it."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _locked_task(uow, deps, actor, command.task_id)
        if "command_centre" not in actor.roles and not rules.may_act(
                actor, task["assignee"], town.posts.get(task["post"]), town):
            raise CODES["suspension.resume_not_permitted"]()
        suspension = await uow.store.open_suspension(task["task_id"], "suspended")
        if task["status"] != "suspended" or suspension is None:
            raise CODES["suspension.not_suspended"](status=task["status"])
        resolve_by = rules.resumed_resolve_by(now, suspension["working_left"], town.calendar)
        window_start = rules.resumed_window_start(task["window_start"], task["resolve_by"], resolve_by)
        await uow.store.update_suspension(suspension["suspension_id"], status="resumed", resumed_by=actor.sub,
                                          resumed_at=now, resolve_by_after=resolve_by)
        next_at = await _next_supervision_after_change(uow, town, task["task_id"], window_start, resolve_by)
        await uow.store.update_task(task["task_id"], status=suspension["from_status"], window_start=window_start,
                                    resolve_by=resolve_by, next_supervision_at=next_at)
        await uow.publish(task_event(town, events.TaskResumed, events.TaskResumedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=actor.sub,
            status=suspension["from_status"], suspended_at=suspension["decided_at"], resumed_at=now,
            resolve_by=resolve_by), task["task_id"], task["request_id"], now))
        return await _task_now(uow, task["task_id"], now, town)


async def pending_suspensions(deps: Deps, actor: Principal, town: str | None, limit: int) -> list[PendingSuspension]:
    """The command centre's pending suspension requests of its town (county roles: every town, or `town`)."""
    towns = [t.code for t in towns_to_read(deps.county, actor, town)]
    return [PendingSuspension.model_validate(in_town_time(r, _tz(deps, r["town_code"])))
            for r in await store.pending_suspensions(deps.database.pool, towns, limit)]


async def verify_task(deps: Deps, actor: Principal, command: VerifyTask) -> TaskView:
    """核查结案: passed closes the task; failed sends it back to the same assignee as rework. The
    command centre's own photos of the check (issue #29) are kept with it, whichever way it went."""
    placed = await _photos_stored(deps, actor, command.task_id, "verify", command.photos)
    try:
        return await _verify(deps, actor, command, placed)
    except Refusal:  # not written: its photos have no record, and never will
        await attachments.forget(deps.objects, placed)
        raise


async def _verify(deps: Deps, actor: Principal, command: VerifyTask,
                  placed: list[shared_attachments.Stored]) -> TaskView:
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _locked_task(uow, deps, actor, command.task_id)
        _allowed("verify", task)
        recorded = attachments.rows(placed, town.code, task, "check", actor.sub, now)
        await uow.store.add_attachments(recorded)
        resolve_by = None
        if command.passed:
            await uow.store.update_task(task["task_id"], status="closed")
        else:
            await uow.store.forget_supervisions(task["task_id"])
            resolve_by = rules.rework_resolve_by(now, task["window_start"], task["resolve_by"])
            await uow.store.update_task(
                task["task_id"], status="rework", window_start=now, resolve_by=resolve_by,
                rework_count=task["rework_count"] + 1, completed_at=None, on_time=None,
                next_supervision_at=await _next_supervision_after_change(uow, town, task["task_id"], now, resolve_by))
        await uow.publish(task_event(town, events.TaskVerified, events.TaskVerifiedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), passed=command.passed,
            note=command.note, by=actor.sub, at=now, resolve_by=resolve_by,
            attachments=attachments.references(recorded)), task["task_id"], task["request_id"], now))
        return await _task_now(uow, task["task_id"], now, town)


async def call_back(deps: Deps, actor: Principal, command: CallBack) -> TaskView:
    """回访 after closure: the rating counts as the citizen's when they gave none (appraisal
    decides that from both topics); `unsatisfied` reopens the task (重办) for the same assignee
    with a new window of the original length."""
    if refusal := rules.callback_rating_refusal(command.reached, command.rating):
        raise refusal
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        task, town = await _locked_task(uow, deps, actor, command.task_id)
        if refusal := rules.callback_refusal(task["status"], task["called_back"]):
            raise refusal
        reopened = rules.callback_reopens(command.reached, command.rating)
        await uow.store.add_callback(town.code, task["task_id"], command.reached, command.rating, command.note,
                                     actor.sub, now, reopened)
        resolve_by = None
        if reopened:
            resolve_by, next_at = await _reopen_window(uow, town, task, now)
            await uow.store.update_task(task["task_id"], status="rework", window_start=now, resolve_by=resolve_by,
                                        reopen_count=task["reopen_count"] + 1, completed_at=None, on_time=None,
                                        next_supervision_at=next_at)
        else:
            await uow.store.update_task(task["task_id"], called_back=True)
        await uow.publish(task_event(town, events.TaskCallback, events.TaskCallbackData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), reached=command.reached,
            rating=command.rating, note=mask_personal_numbers(command.note),  # the citizen's words may hold a phone
            by=actor.sub, at=now, reopened=reopened, resolve_by=resolve_by),
            task["task_id"], task["request_id"], now))
        return await _task_now(uow, task["task_id"], now, town)


async def register_off_post(deps: Deps, actor: Principal, command: RegisterOffPost) -> OffPostRegistered:
    """离岗登记 by the person, their module leader or the command centre; dispatch honours it from
    then on. For a staff member of the caller's town (staff ids repeat across towns); a county
    role names the town."""
    town = town_of_new_record(deps.county, actor, command.town, field="town")
    staff = town.staff.get(command.staff_id)
    if staff is None:
        raise CODES["staff.not_found"](staff_id=command.staff_id, town=town.code)
    leader = town.modules[staff.module].leader
    if actor.sub not in (command.staff_id, leader) and not actor.has_any(["command_centre"]):
        raise CODES["off_post.not_permitted"]()
    async with deps.unit_of_work() as uow:
        entry = await uow.store.add_off_post(town.code, command.staff_id, command.from_, command.to,
                                             command.reason, actor.sub)
    return OffPostRegistered.model_validate({"id": entry, "town_code": town.code, "staff_id": command.staff_id,
                                             "from": command.from_, "to": command.to})


# --- the flows every side shares, inside the caller's unit of work ------------------------------
async def dispatch_matter(uow: UnitOfWork, town: Town, matter: Matter, *,
                          now: datetime, post_code: str | None = None, assignee: str | None = None,
                          redispatch_of: uuid.UUID | None = None, invalid_return: bool | None = None,
                          causation_id: Any = None) -> uuid.UUID:
    """Create one task of the town for the matter and announce it: the town's post, staff, load
    cap, calendar and rules."""
    item = town.catalog[matter.item_code]
    post = town.posts[post_code or item.post]
    if assignee is not None:
        assignment = rules.Assignment(assignee, "command_centre")
    else:
        caps = {post.a_holder: town.load_cap(post), post.b_holder: town.load_cap(post)}
        assignment = rules.assign(post, town, await uow.store.unavailable_staff(town.code, caps, now))
    due = rules.deadlines(matter.colour, item, now, town.calendar, town.rules.dispatch)  # type: ignore[arg-type]
    task_id = uuid.uuid4()
    row = {
        "task_id": task_id, "town_code": town.code, "request_id": matter.request_id, "ticket_no": matter.ticket_no,
        "item_code": item.code, "kind": item.task_kind, "colour": matter.colour,
        "village": matter.village, "location": matter.location, "target": matter.target,
        "lead_module": item.lead_module, "cooperating_modules": item.cooperating_modules,
        "post": post.code, "assignee": assignment.assignee, "assigned_via": assignment.via,
        "status": "dispatched", "dispatched_at": now, "window_start": now,
        "respond_by": due.respond_by, "resolve_by": due.resolve_by, "redispatch_of": redispatch_of,
        "next_supervision_at": rules.next_supervision_at(now, due.resolve_by, (), town.rules.dispatch),
        "trace_headers": current_trace_headers(),
    }
    await uow.store.insert_task(row)
    data = events.TaskDispatchedData(
        task_id=str(task_id), request_id=str(matter.request_id), item_code=item.code,
        kind=item.task_kind, colour=matter.colour, village=matter.village,  # type: ignore[arg-type]
        location=matter.location, target=matter.target, lead_module=item.lead_module,
        cooperating_modules=item.cooperating_modules, post=post.code,
        assignee=assignment.assignee, assigned_via=assignment.via, respond_by=due.respond_by,
        resolve_by=due.resolve_by, dispatched_at=now,
        redispatch_of=str(redispatch_of) if redispatch_of else None, invalid_return=invalid_return)
    await uow.publish(task_event(town, events.TaskDispatched, data, task_id, matter.request_id, now, causation_id))
    return task_id


async def finish_task(uow: UnitOfWork, town: Town, task: Row, *, by: str, resolution: str, reply: str,
                      now: datetime, inspection_id: str | None = None, causation_id: Any = None,
                      photos: Sequence[AttachmentRef] = ()) -> bool:
    """The task completed (办结) by its assignee or by an inspection, with its answer to the
    citizen (kept whole here, masked on the topic) and its after photos by reference; whether it
    was on time."""
    on_time = rules.is_on_time(now, task["resolve_by"])
    await uow.store.save_reply(town.code, task["task_id"], reply, now)
    # An inspection's result is its own closure check (核查): such tasks close at once.
    status = "closed" if inspection_id else "completed"
    await uow.store.update_task(task["task_id"], status=status, completed_at=now, completed_by=by,
                                resolution=resolution, on_time=on_time, inspection_id=inspection_id,
                                next_supervision_at=None)
    outgoing = [task_event(town, events.TaskCompleted, events.TaskCompletedData(
        task_id=str(task["task_id"]), request_id=str(task["request_id"]), by=by,
        # Free text leaves dispatch masked, as the filing's description leaves intake: a phone
        # typed into the resolution or repeated in the answer must not reach subscribers.
        resolution=mask_personal_numbers(resolution), completed_at=now, on_time=on_time,
        inspection_id=inspection_id, reply=mask_personal_numbers(reply), attachments=list(photos)),
        task["task_id"], task["request_id"], now, causation_id)]
    if inspection_id:
        outgoing.append(task_event(town, events.TaskVerified, events.TaskVerifiedData(
            task_id=str(task["task_id"]), request_id=str(task["request_id"]), passed=True,
            note=f"verified by inspection {inspection_id}", by=by, at=now),
            task["task_id"], task["request_id"], now, causation_id))
    await uow.publish(*outgoing)
    return on_time


async def supervise_due(uow: UnitOfWork, towns: Mapping[str, Town], now: datetime, limit: int) -> DueBatch:
    """Publish the supervision levels due by `now` of up to `limit` tasks of every town, earliest
    due first, each by its own town's rules and staff, and move each task's next due moment on.
    Each level once per task: the claim locks the rows (another replica skips them) and the
    (task, level) key refuses a second insert."""
    claimed = await uow.store.claim_due_supervisions(list(towns), now, limit)
    levels: list[tuple[uuid.UUID, str, str, list[str]]] = []
    nexts: list[tuple[uuid.UUID, datetime | None]] = []
    failed = 0
    for task in claimed:
        try:
            town = towns[task["town_code"]]  # a town gone from the county's files: that row fails
            due = rules.supervision_due(task["window_start"], task["resolve_by"], set(task["sent"]), now,
                                        town.rules.dispatch)
            post = town.posts.get(task["post"])
            mine = [(task["task_id"], town.code, level, rules.notified_for(level, task["assignee"], post, town))
                    for level in due]
            next_at = rules.next_supervision_at(task["window_start"], task["resolve_by"], {*task["sent"], *due},
                                                town.rules.dispatch)
        except Exception:  # one bad row (e.g. a post gone from the town's files) never stops the rest
            log.exception("supervision of task %s failed; it is tried again next pass", task["task_id"])
            failed += 1
            continue
        levels += mine
        nexts.append((task["task_id"], next_at))
    new = await uow.store.add_supervisions(levels, now) if levels else set()
    by_task = {task["task_id"]: task for task in claimed}
    await uow.publish(*(
        task_event(towns[town_code], events.TaskSupervised, events.TaskSupervisedData(
            task_id=str(task_id), request_id=str(by_task[task_id]["request_id"]), level=level,  # type: ignore[arg-type]
            notified=notified, at=now), task_id, by_task[task_id]["request_id"], now)
        for task_id, town_code, level, notified in levels if (task_id, level) in new))
    if nexts:
        await uow.store.set_next_supervisions(nexts)
    return DueBatch(len(claimed), len(new), failed)


async def _next_supervision_after_change(uow: UnitOfWork, town: Town, task_id: uuid.UUID,
                                         window_start: datetime, resolve_by: datetime) -> datetime | None:
    """The task's next supervision moment once its window changed (an extension, a rework)."""
    sent = await uow.store.supervisions_sent(task_id)
    return rules.next_supervision_at(window_start, resolve_by, sent, town.rules.dispatch)


async def _reopen_window(uow: UnitOfWork, town: Town, task: Row, now: datetime) -> tuple[datetime, datetime | None]:
    """A new window of the original length from now, its supervision ladder started again:
    (resolve_by, next supervision moment)."""
    window_start, resolve_by = rules.reopened_window(now, task["window_start"], task["resolve_by"])
    await uow.store.forget_supervisions(task["task_id"])
    return resolve_by, rules.next_supervision_at(window_start, resolve_by, (), town.rules.dispatch)


async def follow_merge(uow: UnitOfWork, town: Town, task: Row, *, merged: bool,
                       into_request_id: uuid.UUID, now: datetime, causation_id: Any = None) -> bool:
    """重复件: close the matter's task as `merged` (no points, out of rates), or, when the merge
    is undone, give it back the status it had with a new window of the original length (the
    time it spent merged is not the assignee's). False when there is nothing to change: a task
    already done when the merge came stays done."""
    if merged:
        if task["status"] not in rules.MERGEABLE_STATUSES:
            return False
        await uow.store.update_task(task["task_id"], status="merged", merged_from_status=task["status"],
                                    merged_into=into_request_id, merged_at=now, next_supervision_at=None)
        status, resolve_by = "merged", task["resolve_by"]
    else:
        if task["status"] != "merged":
            return False
        status, resolve_by = task["merged_from_status"], task["resolve_by"]
        fields: dict[str, Any] = {"status": status, "merged_from_status": None, "merged_into": None,
                                  "merged_at": None}
        if status in rules.OPEN_STATUSES:  # a returned task waits for its redispatch instead
            resolve_by, next_at = await _reopen_window(uow, town, task, now)
            fields |= {"window_start": now, "resolve_by": resolve_by, "next_supervision_at": next_at}
        await uow.store.update_task(task["task_id"], **fields)
    await uow.publish(task_event(town, events.TaskMerged, events.TaskMergedData(
        task_id=str(task["task_id"]), request_id=str(task["request_id"]), into_request_id=str(into_request_id),
        reversed=not merged, status=status, respond_by=task["respond_by"], resolve_by=resolve_by, at=now),
        task["task_id"], task["request_id"], now, causation_id))
    return True


# --- what the events ask (handlers.py runs these in the consumer's transaction) ------------------
async def dispatch_filed(deps: Deps, uow: UnitOfWork, event: events.RequestFiled) -> None:
    """A filed matter becomes a task of its town; a merge that came first closes it at once."""
    town = town_of_event(deps.county, event.town_code)  # a town this deployment does not serve: poison
    d = event.data
    if d.item_code not in town.catalog:
        raise UnknownItem(f"item {d.item_code!r} is not in the catalog of town {town.code}")
    now = deps.clock.now()
    await uow.store.record_matter(town.code, d, event.id, now)
    matter = Matter(uuid.UUID(d.request_id), d.ticket_no, d.item_code, d.colour, d.village, d.location, d.target)
    post = rules.post_of_matter(town, town.catalog[d.item_code], d.grid_cell)
    task_id = await dispatch_matter(uow, town, matter, now=now, post_code=post.code, causation_id=event.id)
    merge = await uow.store.merge_state(matter.request_id)
    if merge is not None and merge["merged"]:  # the merge reached us before the filing did
        task = await uow.store.task_for_update(task_id)
        if task is None:
            raise RuntimeError(f"the task {task_id} just dispatched is not there")
        await follow_merge(uow, town, task, merged=True, into_request_id=merge["into_request_id"],
                           now=now, causation_id=merge["event_id"])


async def follow_request_merged(deps: Deps, uow: UnitOfWork, event: events.RequestMerged) -> None:
    """重复件: the merged matter's task closes as `merged`, or reopens when the merge is undone.
    The state is kept per matter, so a task dispatched later (its filing still on the way) follows it."""
    town = town_of_event(deps.county, event.town_code)
    d = event.data
    request_id, into = uuid.UUID(d.request_id), uuid.UUID(d.into_request_id)
    await uow.store.save_merge_state(town.code, request_id, into, not d.reversed, d.at, event.id)
    task = await uow.store.current_task_for_update(town.code, request_id)
    if task is not None:
        await follow_merge(uow, town, task, merged=not d.reversed, into_request_id=into,
                           now=deps.clock.now(), causation_id=event.id)


async def complete_inspected(deps: Deps, uow: UnitOfWork, event: events.InspectionDone) -> None:
    """The tasks of the town an inspection covered are completed with its outcome (and verified by it)."""
    town = town_of_event(deps.county, event.town_code)
    d = event.data
    outcomes = {f.task_id: f for f in d.findings}
    now = deps.clock.now()
    for task in await uow.store.tasks_for_update(town.code, [uuid.UUID(t) for t in d.task_ids]):
        if task["status"] not in rules.OPEN_STATUSES:
            continue  # already completed or handed back: the inspection does not reopen it
        finding = outcomes.get(str(task["task_id"]))
        outcome = finding.outcome if finding else "inspected"
        note = f" — {finding.note}" if finding and finding.note else ""
        await finish_task(uow, town, task, by=",".join(d.officers),
                          resolution=f"inspection {d.inspection_id}: {outcome}{note}",
                          reply=rules.inspection_reply(outcome),
                          now=now, inspection_id=d.inspection_id, causation_id=event.id)


# --- reads (queries): what the routes answer, straight from the pool ------------------------------
# A task list's page: a day's work of a busy town by default; at most what one answer carries
# in well under a second (each task is about 1 kB of JSON).
PAGE_DEFAULT, PAGE_MAX = 200, 1000


def _tz(deps: Deps, code: str) -> tzinfo:
    town = deps.county.town(code)
    return town.calendar.tz if town else UTC


async def list_tasks(deps: Deps, actor: Principal, town: str | None, search: TaskSearch,
                     limit: int = PAGE_DEFAULT) -> list[TaskView]:
    """The caller's town's newest tasks that `search` finds; the county roles see every town's, or
    `town`'s."""
    towns = [t.code for t in towns_to_read(deps.county, actor, town)]
    now = deps.clock.now()
    rows = await store.list_tasks(deps.database.pool, towns, search, now=now, limit=limit)
    return [TaskView.of(r, now, _tz(deps, r["town_code"])) for r in rows]


async def get_task(deps: Deps, actor: Principal, task_id: uuid.UUID) -> TaskDetail:
    """One task with its supervisions, extension requests and callbacks; another town's is not found."""
    pool = deps.database.pool
    task = await store.task(pool, task_id)
    if task is None:
        raise CODES["task.not_found"]()
    town = town_of_record(deps.county, actor, task["town_code"], acting=False, not_found=CODES["task.not_found"])
    tz = town.calendar.tz
    return TaskDetail.model_validate(task_view(task, deps.clock.now(), tz) | {
        "reply": await store.reply_of(pool, task_id),
        "grid_cell": await store.grid_cell_of(pool, task["request_id"]),
        "supervisions": [SupervisionSeen(level=s["level"], at=s["at"].astimezone(tz), notified=s["notified"])
                         for s in await store.supervision_levels(pool, task_id)],
        "extensions": [ExtensionSeen(days=e["days"], status=e["status"], reason=e["reason"])
                       for e in await store.extensions_of(pool, task_id)],
        "suspensions": [SuspensionSeen.model_validate(in_town_time(_suspension_seen(x), tz))
                        for x in await store.suspensions_of(pool, task_id)],
        "callbacks": [CallbackSeen(reached=c["reached"], rating=c["rating"], note=c["note"], by=c["by"],
                                   at=c["at"].astimezone(tz), reopened=c["reopened"])
                      for c in await store.callbacks_of(pool, task_id)],
        "photos": [PhotoSeen(attachment_id=p["attachment_id"], stage=p["stage"], content_type=p["content_type"],
                             size=p["bytes"], width=p["width"], height=p["height"], sha256=p["sha256"],
                             uploaded_by=p["uploaded_by"], uploaded_at=p["uploaded_at"].astimezone(tz))
                   for p in await store.attachments_of(pool, task_id)],
        "photos_max": rules.task_photos_max(town, task["item_code"]),
        "completion_photo_required": rules.completion_photo_required(town, task["item_code"]),
    })


@dataclass(frozen=True)
class ReadPhoto:
    task_id: uuid.UUID
    attachment_id: uuid.UUID
    variant: Literal["photo", "thumbnail"]


async def read_photo(deps: Deps, actor: Principal, command: ReadPhoto) -> tuple[bytes, str]:
    """A task's photo (or its thumbnail) and its content type, for whoever reads the task; another
    town's is `task.not_found`, as for a task that does not exist. Each read is recorded."""
    pool = deps.database.pool
    task = await store.task(pool, command.task_id)
    if task is None:
        raise CODES["task.not_found"]()
    town_of_record(deps.county, actor, task["town_code"], acting=False, not_found=CODES["task.not_found"])
    row = await store.attachment_of(pool, command.task_id, command.attachment_id)
    if row is None:
        raise attachments.NOT_FOUND()
    audit_trail.note_read("attachment.read", "attachment", str(command.attachment_id))
    key = row["thumbnail_key"] if command.variant == "thumbnail" else row["stored_key"]
    return await shared_attachments.read(deps.objects, key, command.attachment_id), row["content_type"]


def _suspension_seen(row: Row) -> dict[str, Any]:
    seen = {k: row[k] for k in SuspensionSeen.model_fields if k != "working_left_hours"}
    left = row["working_left"]
    return seen | {"working_left_hours": round(left.total_seconds() / 3600, 2) if left is not None else None}


async def board(deps: Deps, actor: Principal, town: str | None) -> Board:
    """The command centre's live board of its town (the county roles: every town, or `town`):
    counts by colour × status, overdue, escalated, returned."""
    pool = deps.database.pool
    towns = [t.code for t in towns_to_read(deps.county, actor, town)]
    now = deps.clock.now()
    counts: dict[str, dict[str, int]] = {c: {} for c in ("red", "orange", "yellow")}
    for row in await store.board_counts(pool, towns):
        counts.setdefault(row["colour"], {})[row["status"]] = row["n"]

    def brief(rows: Sequence[Row]) -> list[BoardTask]:
        return [BoardTask(task_id=t["task_id"], town_code=t["town_code"], ticket_no=t["ticket_no"],
                          colour=t["colour"], assignee=t["assignee"], status=t["status"],
                          resolve_by=t["resolve_by"].astimezone(_tz(deps, t["town_code"])),
                          filed_photo=t["filed_photo"], after_photo=t["after_photo"]) for t in rows]

    return Board(at=now, counts=counts, overdue=brief(await store.overdue_tasks(pool, towns, now)),
                 escalated=brief(await store.escalated_tasks(pool, towns)),
                 returned=brief(await store.returned_queue(pool, towns)))


# --- 演练: a past period on another layout (issue #32) ---------------------------------------------
@dataclass(frozen=True)
class Rehearse:
    town: str | None
    first: date  # the period's first and last days, in the town's time zone
    last: date
    files: Mapping[str, str]  # the layout's files that change (name → YAML text); the others stay the town's
    times: rehearsal.Times = "drawn"
    seed: int = 0


REHEARSAL_DAYS_MAX = 62  # two months: what the console waits for stays a few seconds


async def rehearse(deps: Deps, actor: Principal, command: Rehearse) -> rehearsal.Comparison:
    """The town's period replayed on its own layout and on the one `files` make, side by side; for
    the appraisal office and the town's party secretary. Reads only (rehearsal_of)."""
    towns = towns_to_read(deps.county, actor, command.town)
    if len(towns) != 1:
        raise TOWN_REQUIRED("town", towns=sorted(t.code for t in towns))
    town = towns[0]
    if not rehearsal.may_rehearse(actor, town):
        raise CODES["rehearsal.not_permitted"]()
    if not command.first <= command.last or (command.last - command.first).days >= REHEARSAL_DAYS_MAX:
        raise CODES["rehearsal.period_invalid"]("to")
    try:
        layout = rehearsal.alternative_town(town, command.files)
    except TownConfigError as exc:
        name, _, rest = str(exc).partition(": ")
        # The field within the file (`posts.3.b_holder`) for the console; "" when the file is no YAML.
        at = rest.removeprefix("field ").partition(": ")[0] if rest.startswith("field ") else ""
        raise CODES["rehearsal.layout_invalid"](f"files.{name}", problem=str(exc), at=at) from None
    start, end = rehearsal.period_of_days(command.first, command.last, town)
    return await rehearsal_of(deps.database.pool, town, layout, start, end, deps.clock.now(),
                              times=command.times, seed=command.seed)


async def rehearsal_of(pool: asyncpg.Pool, town: Town, layout: Town, start: datetime, end: datetime, as_of: datetime,
                       *, times: rehearsal.Times, seed: int) -> rehearsal.Comparison:
    """The rehearsal of [start, end) as stored by `as_of`: one read-only snapshot, then the replay
    in a worker thread (a town-month is about a second of CPU the event loop must not wait on)."""
    async with pool.acquire() as conn:
        rows = await store.period_rows(conn, town.code, start, end, as_of)
    history = rehearsal.history_of(rows, town.code, start, end, as_of)
    return await asyncio.to_thread(rehearsal.compare, history, town, layout, times=times, seed=seed)


async def county_rehearsal(pool: asyncpg.Pool, layouts: Mapping[str, tuple[Town, Town]], first: date, last: date,
                           as_of: datetime, *, times: rehearsal.Times,
                           seed: int) -> list[tuple[rehearsal.Comparison, float]]:
    """Every town of `layouts` (code → (town, layout)) rehearsed over the days `first` to `last`,
    one after the other, each with the seconds it took (its read and its two rehearsals). Towns
    are independent — a county's rehearsal is its towns' — so they are not mixed: each reads its
    own snapshot, which is what a town's own rehearsal reads."""
    done = []
    for code in sorted(layouts):
        town, layout = layouts[code]
        start, end = rehearsal.period_of_days(first, last, town)
        began = time.perf_counter()
        comparison = await rehearsal_of(pool, town, layout, start, end, as_of, times=times, seed=seed)
        done.append((comparison, time.perf_counter() - began))
    return done


# --- the task lists (issue #27) ------------------------------------------------------------------
PENDING_EXTENSIONS_MAX = 200


async def search_tasks(deps: Deps, actor: Principal, query: TaskQuery) -> TaskPage:
    """A page of the tasks of the caller's town (a county role's: every town's, or `town`'s) that
    the search and filters find, with the total."""
    towns = [t.code for t in towns_to_read(deps.county, actor, query.town)]
    now = deps.clock.now()
    search = TaskSearch(q=query.q, item=query.item, village=query.village, assignee=query.assignee,
                        module=query.module, status=query.status, colour=query.colour, phase=query.phase,
                        overdue=query.overdue, reopened=query.reopened)
    rows, total = await store.search_tasks(deps.database.pool, towns, search, now=now, offset=query.offset,
                                           limit=query.limit)
    return TaskPage(total=total, offset=query.offset, limit=query.limit,
                    tasks=[TaskView.of(r, now, _tz(deps, r["town_code"])) for r in rows])


async def pending_extensions(deps: Deps, actor: Principal, town: str | None) -> list[PendingExtension]:
    """The extension requests waiting for the command centre's decision, oldest first."""
    towns = [t.code for t in towns_to_read(deps.county, actor, town)]
    rows = await store.pending_extensions(deps.database.pool, towns, PENDING_EXTENSIONS_MAX)
    return [PendingExtension.model_validate(in_town_time(r, _tz(deps, r["town_code"]))) for r in rows]


async def holders(deps: Deps, actor: Principal, town: str | None) -> list[HolderSeen]:
    """Every post's eligible holders (rules.eligible_holders) in the caller's town (the county
    roles: every town, or `town`), each with the open tasks they hold and whether they are off
    post now: what the command centre picks from to redispatch."""
    pool = deps.database.pool
    towns = towns_to_read(deps.county, actor, town)
    codes = [t.code for t in towns]
    now = deps.clock.now()
    loads = await store.open_task_loads(pool, codes)
    away = await store.off_post_now(pool, codes, now)
    seen = []
    for each in towns:
        mine = {staff: n for (code, staff), n in loads.items() if code == each.code}
        off = {staff for code, staff in away if code == each.code}
        eligible = rules.eligible_holders(each)
        next_of = {post: rules.takes_next(eligible, post, mine, off) for post in each.posts}
        seen += [HolderSeen(town_code=each.code, post=h.post, slot=h.slot, staff_id=h.staff_id,  # type: ignore[arg-type]
                            open_tasks=mine.get(h.staff_id, 0), cap=h.cap, off_post=h.staff_id in off,
                            takes_next=next_of[h.post] == h)
                 for h in eligible]
    return seen
