"""Dispatch's HTTP API (SPEC §5.3): post holders act on tasks, the command centre redispatches,
approves extensions, checks closures and watches the board. Each route adapts: the request model
in, one command handler (or read) of flows.py, its response model out."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile
from fastapi.responses import Response

from townflow_shared import attachments as shared_attachments
from townflow_shared import problems
from townflow_shared.auth import Principal, require
from townflow_shared.events import Colour
from townflow_shared.http import form_json, json_form_field, read_files
from townflow_shared.problems import responses
from townflow_shared.types import NO_NUL_PATTERN, TOWN_CODE_PATTERN
from townflow_shared.views import record_id

from . import attachments, flows, rehearsal
from .flows import PAGE_DEFAULT, PAGE_MAX, Deps
from .models import (
    Accepted,
    Board,
    Callback,
    Completed,
    Decision,
    ExtensionAsked,
    ExtensionDecided,
    ExtensionRequest,
    HolderSeen,
    OffPost,
    OffPostRegistered,
    PendingExtension,
    PendingSuspension,
    Redispatch,
    Rehearsal,
    RehearsalRequest,
    Resolution,
    Returned,
    ReturnReason,
    SuspensionAsked,
    SuspensionDecided,
    SuspensionRequest,
    TaskDetail,
    TaskPage,
    TaskQuery,
    TaskView,
    Verification,
)
from .refusals import CODES

router = APIRouter(tags=["tasks"])
POST_HOLDERS = ("staff", "module_leader", "officer", "command_centre")
READERS = (*POST_HOLDERS, "appraisal_admin")
Holder = Annotated[Principal, Depends(require(*POST_HOLDERS))]
CommandCentre = Annotated[Principal, Depends(require("command_centre"))]
Reader = Annotated[Principal, Depends(require(*READERS))]
# A rehearsal's callers: the appraisal office, or the party secretary (a staff member the town's
# files name, whatever their roles: flows.rehearse checks which).
Rehearser = Annotated[Principal, Depends(require("appraisal_admin", "staff", "module_leader", "officer",
                                                 "command_centre"))]


async def _deps(request: Request) -> Deps:
    """`async` although it never waits: FastAPI would run a plain `def` in a worker thread."""
    return request.app.state.deps  # type: ignore[no-any-return]


async def _task_id(task_id: Annotated[str, Path(
        json_schema_extra={"format": "uuid"}, description="a task's id; any other text is no task (404)")]) -> uuid.UUID:
    return record_id(task_id, CODES["task.not_found"])


def _note(body: Decision | None) -> str | None:
    """The note of a decision or a resumption, whose body is optional as a whole."""
    return body.note if body else None


Dependencies = Annotated[Deps, Depends(_deps)]
TaskId = Annotated[uuid.UUID, Depends(_task_id)]
# The town a county role names (`?town=`): documented as a town's code; any other value names a
# town this deployment does not serve (404 `town.not_served`).
Town = Annotated[str | None, Query(json_schema_extra={"pattern": TOWN_CODE_PATTERN})]
# A filter of free text (an assignee, a module, a status): anything but NUL, which the edge refuses.
Filter = Annotated[str | None, Query(pattern=NO_NUL_PATTERN)]

BOX_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(,-?[0-9]+(\.[0-9]+)?){3}$"


def _box(bbox: str | None) -> tuple[float, float, float, float] | None:
    """`west,south,east,north` (the pattern checked it) as a box in WGS 84's range: corners given
    the other way round are taken as meant, degrees beyond the world's edge are at its edge. A box
    of half the world or more in either direction is refused (422 `value.out_of_range`, `bbox`): its
    sides would join antipodal points (pole to pole, or 180° along the equator), which a geography
    envelope cannot hold (PostGIS fails the query) — and no town's map asks for one."""
    if bbox is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in bbox.split(","))
    def lon(x: float) -> float:
        return min(max(x, -180.0), 180.0)
    def lat(y: float) -> float:
        return min(max(y, -90.0), 90.0)
    west, south, east, north = lon(min(x1, x2)), lat(min(y1, y2)), lon(max(x1, x2)), lat(max(y1, y2))
    if east - west >= 180 or north - south >= 180:
        raise problems.OUT_OF_RANGE("bbox", min=0, max=180,
                                    detail="a box less than 180 degrees wide and tall: west,south,east,north")
    return west, south, east, north


# What every route may answer about its caller, and every route on one task about the task.
CALLER = problems.AUTHENTICATED  # the refusals of any route that reads a token
ON_TASK = (*CALLER, CODES["task.not_found"], problems.TOWN_NOT_YOURS)
AS_ASSIGNEE = (*ON_TASK, CODES["task.not_assignee"], CODES["task.status_forbids"])
TOWNS_READ = (*CALLER, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_FOUND, problems.TOWN_REQUIRED, problems.INVALID)


@router.post("/v1/tasks/{task_id}/accept", response_model=Accepted, responses=responses(*AS_ASSIGNEE))
async def accept(task_id: TaskId, deps: Dependencies, principal: Holder) -> Accepted:
    return await flows.accept_task(deps, principal, flows.AcceptTask(task_id))


@router.post("/v1/tasks/{task_id}/complete", response_model=Completed,
             responses=responses(*AS_ASSIGNEE, CODES["task.reply_blank"], CODES["task.completion_photo_required"],
                                 problems.INVALID))
async def complete(task_id: TaskId, body: Resolution, deps: Dependencies, principal: Holder) -> Completed:
    """办结 with the answer to the citizen (`reply`), which intake shows on the citizen's status page.
    An item that needs the work seen done is completed with photos, at `/completions`
    (`task.completion_photo_required` here)."""
    return await flows.complete_task(deps, principal, flows.CompleteTask(task_id, body.resolution, body.reply))


# Photos of a step (issue #29), as multipart/form-data: the step's JSON in a field, one `photos`
# part per photo. Refused as the step's JSON route refuses (fields under the form field's name),
# and as every service refuses photos (townflow_shared.photos, townflow_shared.attachments).
PHOTO_REFUSALS = shared_attachments.PHOTO_REFUSALS
PHOTO_FILE = (shared_attachments.PHOTO_FILE + "; up to the item's `photos_max` (the task's read says it, 3 by default)")


COMPLETION_REFUSALS = (*AS_ASSIGNEE, CODES["task.reply_blank"], CODES["task.completion_photo_required"], problems.INVALID)


@router.post("/v1/tasks/{task_id}/completions", response_model=Completed,
             responses=responses(*COMPLETION_REFUSALS, *PHOTO_REFUSALS),
             openapi_extra={"x-audit-action": "task.complete"})
async def complete_with_photos(
    task_id: TaskId,
    deps: Dependencies,
    principal: Holder,
    completion: Annotated[str, json_form_field("the completion", "POST /v1/tasks/{task_id}/complete")],
    # Optional here, so an item that needs an after photo refuses its absence with its own code.
    photos: Annotated[list[UploadFile] | None, File(description=PHOTO_FILE + "; 处置后照片")] = None,
) -> Completed:
    """办结 with the after photos (处置后照片, issue #29), as multipart/form-data: `completion` and
    one `photos` part per photo. Answered as `POST /v1/tasks/{task_id}/complete`; a photo at fault
    is a 422 naming it (`photos[1]`). The photos are stored cleaned, listed on the task's read, and
    `dispatch.task.completed` carries their references and digests, never their bytes."""
    body = await form_json(deps.settings, Resolution, "completion", completion)
    return await flows.complete_task(deps, principal, flows.CompleteTask(
        task_id, body.resolution, body.reply, await read_files(photos)))


@router.post("/v1/tasks/{task_id}/return", response_model=Returned,
             responses=responses(*AS_ASSIGNEE, CODES["task.return_window_closed"], problems.INVALID))
async def return_task(task_id: TaskId, body: ReturnReason, deps: Dependencies, principal: Holder) -> Returned:
    """退回: allowed within the return window after dispatch (default 2 working hours)."""
    return await flows.return_task(deps, principal, flows.ReturnTask(task_id, body.reason))


@router.post("/v1/tasks/{task_id}/redispatch", status_code=201, response_model=TaskView, responses=responses(
    *ON_TASK, CODES["task.status_forbids"], CODES["redispatch.one_target"], CODES["redispatch.unknown_post"], CODES["redispatch.unknown_assignee"]))
async def redispatch(task_id: TaskId, body: Redispatch, deps: Dependencies, principal: CommandCentre) -> TaskView:
    return await flows.redispatch_task(deps, principal, flows.RedispatchTask(
        task_id, body.post, body.assignee, body.return_valid))


@router.post("/v1/tasks/{task_id}/extend", status_code=202, response_model=ExtensionAsked, responses=responses(
    *AS_ASSIGNEE, CODES["extension.too_late"], CODES["extension.already_pending"], problems.INVALID))
async def request_extension(task_id: TaskId, body: ExtensionRequest, deps: Dependencies,
                            principal: Holder) -> ExtensionAsked:
    """延期申请: asked before resolve_by; the command centre approves or refuses it."""
    return await flows.request_extension(deps, principal, flows.RequestExtension(task_id, body.days, body.reason))


@router.post("/v1/tasks/{task_id}/extension/approve", response_model=ExtensionDecided,
             response_model_exclude_none=True,
             responses=responses(*ON_TASK, CODES["extension.task_not_open"], CODES["extension.none_pending"], problems.INVALID))
async def approve_extension(task_id: TaskId, deps: Dependencies, principal: CommandCentre,
                            body: Decision | None = None) -> ExtensionDecided:
    return await flows.decide_extension(deps, principal, flows.Decide(task_id, True, _note(body)))


@router.post("/v1/tasks/{task_id}/extension/refuse", response_model=ExtensionDecided,
             response_model_exclude_none=True, responses=responses(*ON_TASK, CODES["extension.none_pending"], problems.INVALID))
async def refuse_extension(task_id: TaskId, deps: Dependencies, principal: CommandCentre,
                           body: Decision | None = None) -> ExtensionDecided:
    return await flows.decide_extension(deps, principal, flows.Decide(task_id, False, _note(body)))


@router.post("/v1/tasks/{task_id}/suspend", status_code=202, response_model=SuspensionAsked, responses=responses(
    *AS_ASSIGNEE, CODES["suspension.too_late"], CODES["suspension.already_asked"], problems.INVALID))
async def request_suspension(task_id: TaskId, body: SuspensionRequest, deps: Dependencies,
                             principal: Holder) -> SuspensionAsked:
    """挂起申请 while waiting on the citizen (补正材料) or a third party; the command centre decides."""
    return await flows.request_suspension(deps, principal, flows.RequestSuspension(task_id, body.category, body.reason))


@router.post("/v1/tasks/{task_id}/suspension/approve", response_model=SuspensionDecided,
             responses=responses(*ON_TASK, CODES["suspension.task_not_open"], CODES["suspension.none_pending"], problems.INVALID))
async def approve_suspension(task_id: TaskId, deps: Dependencies, principal: CommandCentre,
                             body: Decision | None = None) -> SuspensionDecided:
    """The task is suspended: its deadline and supervision stop, the working time left is kept."""
    return await flows.decide_suspension(deps, principal, flows.Decide(task_id, True, _note(body)))


@router.post("/v1/tasks/{task_id}/suspension/refuse", response_model=SuspensionDecided,
             responses=responses(*ON_TASK, CODES["suspension.none_pending"], problems.INVALID))
async def refuse_suspension(task_id: TaskId, deps: Dependencies, principal: CommandCentre,
                            body: Decision | None = None) -> SuspensionDecided:
    return await flows.decide_suspension(deps, principal, flows.Decide(task_id, False, _note(body)))


@router.post("/v1/tasks/{task_id}/resume", response_model=TaskView, responses=responses(
    *ON_TASK, CODES["suspension.resume_not_permitted"], CODES["suspension.not_suspended"], problems.INVALID))
async def resume(task_id: TaskId, deps: Dependencies, principal: Holder, body: Decision | None = None) -> TaskView:
    """恢复办理 by the command centre, or by the assignee or module leader once what was awaited
    arrived: the task gets back the working time it had left, counted from now."""
    return await flows.resume_task(deps, principal, flows.ResumeTask(task_id, _note(body)))


@router.get("/v1/suspensions", response_model=list[PendingSuspension], responses=responses(*TOWNS_READ))
async def pending_suspensions(deps: Dependencies, principal: CommandCentre, town: Town = None,
                              limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT) -> list[PendingSuspension]:
    """The pending suspension requests of the caller's town, oldest first (county roles: every town, or `town`)."""
    return await flows.pending_suspensions(deps, principal, town, limit)


@router.post("/v1/tasks/{task_id}/verify", response_model=TaskView,
             responses=responses(*ON_TASK, CODES["task.status_forbids"], problems.INVALID))
async def verify(task_id: TaskId, body: Verification, deps: Dependencies, principal: CommandCentre) -> TaskView:
    """核查结案: passed closes the task; failed sends it back to the same assignee as rework."""
    return await flows.verify_task(deps, principal, flows.VerifyTask(task_id, body.passed, body.note))


@router.post("/v1/tasks/{task_id}/verifications", response_model=TaskView,
             responses=responses(*ON_TASK, CODES["task.status_forbids"], problems.INVALID, *PHOTO_REFUSALS),
             openapi_extra={"x-audit-action": "task.verify"})
async def verify_with_photos(
    task_id: TaskId,
    deps: Dependencies,
    principal: CommandCentre,
    verification: Annotated[str, json_form_field("the check", "POST /v1/tasks/{task_id}/verify")],
    photos: Annotated[list[UploadFile] | None, File(description=PHOTO_FILE + "; the command centre's own, at the check")] = None,
) -> TaskView:
    """核查结案 with the command centre's own photos of the check (issue #29), as
    multipart/form-data: `verification` and one `photos` part per photo. Answered as
    `POST /v1/tasks/{task_id}/verify`; `dispatch.task.verified` carries the photos' references."""
    body = await form_json(deps.settings, Verification, "verification", verification)
    return await flows.verify_task(deps, principal, flows.VerifyTask(
        task_id, body.passed, body.note, await read_files(photos)))


@router.post("/v1/tasks/{task_id}/callback", response_model=TaskView, responses=responses(
    *ON_TASK, CODES["callback.task_not_closed"], CODES["callback.already_given"], CODES["callback.rating_required"], CODES["callback.rating_unexpected"]))
async def callback(task_id: TaskId, body: Callback, deps: Dependencies, principal: CommandCentre) -> TaskView:
    """回访 after closure: `unsatisfied` reopens the task (重办) for the same assignee with a new
    window of the original length."""
    return await flows.call_back(deps, principal, flows.CallBack(task_id, body.reached, body.rating, body.note))


@router.post("/v1/staff/{staff_id}/off-post", status_code=201, response_model=OffPostRegistered, responses=responses(
    *CALLER, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_YOURS, problems.TOWN_REQUIRED, CODES["staff.not_found"], CODES["off_post.not_permitted"],
    CODES["off_post.ends_before_start"]))
async def register_off_post(staff_id: Annotated[str, Path(pattern=NO_NUL_PATTERN)], body: OffPost,
                            deps: Dependencies, principal: Holder, town: Town = None) -> OffPostRegistered:
    """离岗登记 by the person, their module leader or the command centre. For a staff member of the
    caller's town (staff ids repeat across towns); the county's admin names the town (`?town=`)."""
    return await flows.register_off_post(deps, principal, flows.RegisterOffPost(
        staff_id, town, body.from_, body.to, body.reason))


@router.get("/v1/tasks", response_model=list[TaskView], responses=responses(*TOWNS_READ))
async def list_tasks(
    deps: Dependencies,
    principal: Reader,
    town: Town = None,
    assignee: Filter = None,
    module: Filter = None,
    status: Filter = None,
    colour: Colour | None = None,
    overdue: bool | None = None,
    request_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
    item: Filter = None,
    village: Filter = None,
    phase: Annotated[Literal["open", "ended"] | None, Query(
        description="open (在办) or ended (已结), as the task search's")] = None,
    cell: Annotated[str | None, Query(pattern=r"^[0-9]{15}$", description=(
        "the tasks of matters in this grid cell (单元网格, 15 digits; issue #30)"))] = None,
    bbox: Annotated[str | None, Query(pattern=BOX_PATTERN, description="the tasks of matters whose point is in this box: west,south,east,north (WGS 84 degrees)")] = None,
    located: Annotated[bool | None, Query(description="with a point (or without)")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, pattern=NO_NUL_PATTERN, description=(
        "as the task search's: a ticket number's beginning or part, else text of the location or target"))] = None,
    reopened: bool | None = None,
) -> list[TaskView]:
    """The caller's town's tasks, newest dispatched first, each with its matter's point and grid
    cell where it has one (the map, issue #30); the county roles see every town's, or `town`'s."""
    return await flows.list_tasks(deps, principal, town, flows.TaskSearch(
        assignee=assignee, module=module, status=status, colour=colour, overdue=overdue,
        request_id=request_id, item=item, village=village, phase=phase, cell=cell, box=_box(bbox), located=located,
        q=q, reopened=reopened), limit)


@router.get("/v1/task-search", response_model=TaskPage, responses=responses(*TOWNS_READ))
async def search_tasks(deps: Dependencies, principal: Reader, query: Annotated[TaskQuery, Query()]) -> TaskPage:
    """任务查询 (issue #27): the caller's town's tasks (the county roles: every town's, or `town`'s)
    that a search (`q`: a ticket number's beginning, or text of the location or target) and the
    filters find, a page at a time (`offset`, `limit`), newest dispatched first, with the total.
    The matter's description stays in intake (see docs/api.md)."""
    return await flows.search_tasks(deps, principal, query)


@router.get("/v1/extensions", response_model=list[PendingExtension], responses=responses(*TOWNS_READ))
async def pending_extensions(deps: Dependencies, principal: CommandCentre, town: Town = None) -> list[PendingExtension]:
    """延期申请 waiting for the command centre's decision, oldest first, with their tasks' facts."""
    return await flows.pending_extensions(deps, principal, town)


@router.get("/v1/holders", response_model=list[HolderSeen], responses=responses(*TOWNS_READ))
async def holders(deps: Dependencies, principal: CommandCentre, town: Town = None) -> list[HolderSeen]:
    """Who may take each post's tasks (A, B, the module's leader) with their open tasks, cap and
    whether they are off post now, and who a new task would go to: the redispatch picker."""
    return await flows.holders(deps, principal, town)


@router.get("/v1/tasks/{task_id}", response_model=TaskDetail, responses=responses(*CALLER, CODES["task.not_found"]))
async def get_task(task_id: TaskId, deps: Dependencies, principal: Reader) -> TaskDetail:
    return await flows.get_task(deps, principal, task_id)


@router.get("/v1/tasks/{task_id}/photos/{attachment_id}", response_class=Response, responses={
    200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the photo as stored: a JPEG without metadata"},
    **responses(*CALLER, CODES["task.not_found"], attachments.NOT_FOUND, attachments.STORAGE_UNAVAILABLE)})
async def read_photo(
    task_id: TaskId,
    attachment_id: uuid.UUID,
    deps: Dependencies,
    principal: Reader,
    variant: Annotated[Literal["photo", "thumbnail"], Query(description="the photo (≤ 2048 px) or its thumbnail")] = "photo",
) -> Response:
    """A photo of the task (its after photos, the closure check's), for whoever reads the task;
    every read recorded. Streamed from here: no URL to the object store is handed out."""
    data, content_type = await flows.read_photo(deps, principal, flows.ReadPhoto(task_id, attachment_id, variant))
    return Response(data, media_type=content_type, headers={
        "Cache-Control": "private, no-store", "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff"})


@router.get("/v1/board", response_model=Board, responses=responses(*TOWNS_READ))
async def board(deps: Dependencies, principal: CommandCentre, town: Town = None) -> Board:
    """The command centre's live board of its town (the county roles: every town, or `town`):
    counts by colour × status, overdue, escalated, returned."""
    return await flows.board(deps, principal, town)


@router.post("/v1/rehearsals", response_model=Rehearsal, response_model_by_alias=True,
             responses=responses(*CALLER, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_FOUND, problems.TOWN_REQUIRED,
                                 CODES["rehearsal.not_permitted"], CODES["rehearsal.period_invalid"],
                                 CODES["rehearsal.layout_invalid"], problems.INVALID),
             openapi_extra={"x-audit-action": "rehearsal.run"})  # a POST that changes nothing: the audit's name
async def rehearse(body: RehearsalRequest, deps: Dependencies, principal: Rehearser,
                   town: Town = None) -> dict[str, object]:
    """改革预演 (issue #32): the town's (a county role names it, `?town=`) period (`from`–`to`, days in its time zone, at most 62)
    replayed on its own layout and on the one `files` make (`posts.yaml`, `modules.yaml`,
    `staff.yaml`, `rules.yaml`, `catalog.yaml` as YAML text; the others stay the town's), each
    person, post and module side by side. For the appraisal office and the town's party secretary;
    it reads, and writes nothing. A wrong file is `rehearsal.layout_invalid` naming the file
    (`files.posts.yaml`) with the field in `detail`. See docs/rehearsal.md."""
    comparison = await flows.rehearse(deps, principal, flows.Rehearse(
        town, body.from_, body.to, {str(name): text for name, text in body.files.items()}, body.times, body.seed))
    return rehearsal.as_plain(comparison)
