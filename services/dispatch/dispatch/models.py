"""Dispatch's request and response models: what each route takes and answers (SPEC §5.3)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from townflow_shared.events import AssignedVia, Colour, Position, Rating, SupervisionLevel
from townflow_shared.types import (
    IDENTIFIER_CHECKS,
    NOT_BLANK_PATTERN,
    Command,
    Identifier,
    Instant,
    StrictBool,
    StrictInt,
    Text,
)
from townflow_shared.views import in_town_time

from . import rules
from .refusals import CODES
from .store import Row

Reason = Annotated[Text, Field(min_length=1, max_length=1000)]
Note = Annotated[Text, Field(max_length=1000)]


# --- requests -----------------------------------------------------------------------------------
class Resolution(Command):
    """办结: what was done (for the record), and the answer to the citizen (答复: what was done or
    why not), which the citizen's status page shows. The reply must hold more than whitespace
    (`task.reply_blank`), as the document says too."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "allOf": [{"properties": {"reply": {"pattern": NOT_BLANK_PATTERN}}}]})
    resolution: Annotated[Text, Field(min_length=1, max_length=2000)]
    reply: Annotated[Text, Field(min_length=1, max_length=rules.REPLY_MAX_LENGTH,
                                 description="the answer to the citizen (答复): what was done, or why not")]

    @field_validator("reply")
    @classmethod
    def _not_blank(cls, reply: str) -> str:
        if not reply.strip():
            raise CODES["task.reply_blank"].pydantic()
        return reply


class ReturnReason(Command):
    reason: Reason


class Redispatch(Command):
    """To another post (its A/B holders as dispatch assigns), or to one named staff member who
    keeps the task's post; `return_valid` false marks the return as unjustified (无效退回)."""

    # Exactly one of the two, as the document says too (`redispatch.one_target` otherwise).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["post"], "properties": {"post": {"type": "string"}, "assignee": {"type": "null"}}},
        {"required": ["assignee"], "properties": {"assignee": {"type": "string"}, "post": {"type": "null"}}}]})
    post: Identifier | None = None
    assignee: Identifier | None = None
    return_valid: StrictBool = True

    @model_validator(mode="after")
    def _one(self) -> Redispatch:
        if (self.post is None) == (self.assignee is None):
            raise CODES["redispatch.one_target"].pydantic()
        return self


class ExtensionRequest(Command):
    days: StrictInt = Field(ge=1, le=60)
    reason: Reason


class SuspensionRequest(Command):
    """挂起申请: why the task waits (the category the citizen sees) and the holder's words."""

    category: Literal["awaiting_citizen", "awaiting_third_party"]
    reason: Reason


class Decision(Command):
    note: Note | None = None


class Verification(Command):
    passed: StrictBool
    note: Note = ""


class Callback(Command):
    # A citizen reached gives a rating, one not reached none, as the document says too
    # (`callback.rating_required`, `callback.rating_unexpected` otherwise).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["rating"], "properties": {"reached": {"const": True}, "rating": {"type": "string"}}},
        {"properties": {"reached": {"const": False}, "rating": {"type": "null"}}}]})
    reached: StrictBool
    rating: Rating | None = None
    note: Note = ""


class OffPost(Command):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: Instant = Field(alias="from")
    to: Instant
    reason: Annotated[Text, Field(min_length=1, max_length=500)]

    @field_validator("to")
    @classmethod
    def _after_from(cls, to: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("from_")
        if start is not None and to <= start:
            raise CODES["off_post.ends_before_start"].pydantic()
        return to


# --- responses ----------------------------------------------------------------------------------
class Answer(BaseModel):
    """A response: its members are all listed (the OpenAPI document is closed)."""

    model_config = ConfigDict(extra="forbid")


class TaskView(Answer):
    """A task as its town reads it: times in the town's time zone."""

    task_id: uuid.UUID
    town_code: str
    request_id: uuid.UUID
    ticket_no: str
    item_code: str
    kind: str
    colour: Colour
    village: str
    location: str
    target: str | None
    lead_module: str
    cooperating_modules: list[str]
    post: str
    assignee: str
    assigned_via: AssignedVia
    status: str
    dispatched_at: datetime
    window_start: datetime
    respond_by: datetime
    resolve_by: datetime
    accepted_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    resolution: str | None
    reply: str | None = Field(default=None, description="the answer to the citizen (答复), on one task's read")
    on_time: bool | None
    returned_at: datetime | None
    return_reason: str | None
    redispatch_of: uuid.UUID | None
    inspection_id: str | None
    rework_count: int
    extension_count: int
    next_supervision_at: datetime | None
    merged_into: uuid.UUID | None
    merged_at: datetime | None
    merged_from_status: str | None
    reopen_count: int
    called_back: bool
    overdue: bool = Field(description="open and past resolve_by")
    point: Position | None = Field(default=None, description=(
        "where the matter is (a located item's, WGS 84; issue #30); on the task lists, not on one task's read"))
    grid_cell: str | None = Field(default=None, description=(
        "the grid cell (单元网格) of the point: 15 digits; on the task lists and on one task's read"))
    filed_photo: uuid.UUID | None = Field(default=None, description=(
        "on the task lists (issue #29): the filing's first photo, intake's (`GET /v1/requests/{ticket_no}/photos/"
        "{attachment_id}`); none when the matter was filed without photos"))
    after_photo: uuid.UUID | None = Field(default=None, description=(
        "on the task lists: the task's first after photo (`GET /v1/tasks/{id}/photos/{attachment_id}`)"))

    @classmethod
    def of(cls, task: Row, now: datetime, tz: tzinfo) -> TaskView:
        return cls.model_validate(task_view(task, now, tz))


def task_view(task: Row, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """A stored task as its view's members (the stored trace context is not one of them)."""
    view = in_town_time(task, tz)
    view.pop("trace_headers", None)
    if "longitude" in view:  # a task list's row: its matter's place joined (store.TASKS_WITH_PLACES)
        longitude, latitude = view.pop("longitude"), view.pop("latitude")
        view["point"] = {"longitude": longitude, "latitude": latitude} if longitude is not None else None
    view["overdue"] = rules.is_overdue(task["status"], task["resolve_by"], now)
    return view


class SupervisionSeen(Answer):
    level: SupervisionLevel
    at: datetime
    notified: list[str]


class ExtensionSeen(Answer):
    days: int
    status: Literal["pending", "approved", "refused"]
    reason: str


class CallbackSeen(Answer):
    reached: bool
    rating: Rating | None
    note: str
    by: str
    at: datetime
    reopened: bool


class SuspensionSeen(Answer):
    """One suspension of a task: asked, then refused, or in force (`suspended`) until resumed."""

    category: Literal["awaiting_citizen", "awaiting_third_party"]
    reason: str
    status: Literal["pending", "refused", "suspended", "resumed"]
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    resolve_by_then: datetime | None = Field(description="the deadline the task had when suspended")
    working_left_hours: float | None = Field(description="the working time it then had left, in hours")
    resumed_by: str | None
    resumed_at: datetime | None
    resolve_by_after: datetime | None = Field(description="the deadline it got on resumption")


class PhotoSeen(Answer):
    """A photo of the task (issue #29), by reference: read it at
    `/v1/tasks/{task_id}/photos/{attachment_id}` (`?variant=thumbnail` for its thumbnail)."""

    attachment_id: uuid.UUID
    stage: Literal["after", "check"] = Field(description=(
        "after: the holder's at completion (处置后照片); check: the command centre's at the closure check (核查)"))
    content_type: str
    size: int = Field(description="bytes of the stored copy")
    width: int
    height: int
    sha256: str = Field(description="hex SHA-256 of the stored copy")
    uploaded_by: str
    uploaded_at: datetime


class TaskDetail(TaskView):
    """A task with its supervisions, extension requests, suspensions, callbacks and photos."""

    supervisions: list[SupervisionSeen]
    extensions: list[ExtensionSeen]
    suspensions: list[SuspensionSeen] = []
    callbacks: list[CallbackSeen]
    photos: list[PhotoSeen] = Field(default=[], description="its photos, oldest first (issue #29)")
    photos_max: int = Field(default=3, description="how many photos a completion or a closure check may carry")
    completion_photo_required: bool = Field(default=False, description=(
        "its item needs at least one after photo to be completed (`task.completion_photo_required`)"))


class TaskChanged(Answer):
    """The answer to a change of one task: the task, then what the change made of it."""

    task_id: uuid.UUID


class Accepted(TaskChanged):
    status: Literal["accepted"] = "accepted"
    accepted_at: datetime
    in_time: bool = Field(description="accepted by respond_by")


class Completed(TaskChanged):
    status: Literal["completed"] = "completed"
    on_time: bool


class Returned(TaskChanged):
    status: Literal["returned"] = "returned"


class ExtensionAsked(TaskChanged):
    extension_id: uuid.UUID
    status: Literal["pending"] = "pending"


class ExtensionDecided(TaskChanged):
    status: Literal["approved", "refused"]
    resolve_by: datetime | None = Field(default=None, description="the new deadline, when approved")


class SuspensionAsked(TaskChanged):
    suspension_id: uuid.UUID
    status: Literal["pending"] = "pending"


class SuspensionDecided(TaskChanged):
    status: Literal["suspended", "refused"]


class PendingSuspension(Answer):
    """A suspension request waiting for the command centre, with the task it concerns."""

    suspension_id: uuid.UUID
    town_code: str
    task_id: uuid.UUID
    ticket_no: str
    colour: Colour
    assignee: str
    task_status: str
    resolve_by: datetime
    category: Literal["awaiting_citizen", "awaiting_third_party"]
    reason: str
    requested_by: str
    requested_at: datetime


class OffPostRegistered(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: int
    town_code: str
    staff_id: str
    from_: datetime = Field(alias="from")
    to: datetime


class BoardTask(Answer):
    task_id: uuid.UUID
    town_code: str
    ticket_no: str
    colour: Colour
    assignee: str
    status: str
    resolve_by: datetime
    filed_photo: uuid.UUID | None = Field(default=None, description="the filing's first photo, as on the task lists")
    after_photo: uuid.UUID | None = Field(default=None, description="the task's first after photo, as on the task lists")


class Board(Answer):
    """The command centre's live board: counts by colour × status, overdue, escalated, returned."""

    at: datetime
    counts: dict[str, dict[str, int]]
    overdue: list[BoardTask]
    escalated: list[BoardTask]
    returned: list[BoardTask]


# --- the task lists (issue #27) --------------------------------------------------------------------
SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX = 50, 200
SEARCH_OFFSET_MAX = 100_000  # beyond a county-year of one town's tasks many times over
TaskStatus = Literal["dispatched", "accepted", "rework", "completed", "returned", "closed", "merged", "redispatched"]
# At most 64 characters as sent (the schema's maxLength), then trimmed and checked as an Identifier.
FilterCode = Annotated[str, StringConstraints(max_length=64), *IDENTIFIER_CHECKS]


class TaskQuery(BaseModel):
    """A search of the task list and its filters, all from the address. Every member is checked:
    an unknown colour, status or phase, a malformed number, or a parameter the list does not take
    is refused (422, its code and field)."""

    model_config = ConfigDict(extra="forbid")
    town: str | None = Field(default=None, json_schema_extra={"pattern": "^[0-9]{9}$"},
                             description="a county role's town; a town's staff read their own")
    q: Annotated[Text, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="digits (and dashes), 4 or more: a ticket number (its beginning from a town's code,"
        " else a part); other text: in the location or target")
    item: FilterCode | None = Field(default=None, description="an item's code (事项)")
    village: FilterCode | None = Field(default=None, description="a village's code")
    assignee: FilterCode | None = Field(default=None, description="a staff id")
    module: FilterCode | None = Field(default=None, description="the lead module's code")
    status: TaskStatus | None = None
    colour: Colour | None = None
    phase: Literal["open", "ended"] | None = Field(
        default=None, description="open (在办: every status but closed, merged, redispatched) or ended (已结)")
    overdue: bool | None = Field(default=None, description="open and past resolve_by (or not)")
    reopened: bool | None = Field(default=None, description="reopened after an unsatisfied callback (重办)")
    offset: int = Field(default=0, ge=0, le=SEARCH_OFFSET_MAX)
    limit: int = Field(default=SEARCH_PAGE_DEFAULT, ge=1, le=SEARCH_PAGE_MAX)


class TaskPage(Answer):
    """One page of the tasks a search finds, newest dispatched first, and how many it finds in all."""

    total: int
    offset: int
    limit: int
    tasks: list[TaskView]


class PendingExtension(Answer):
    """An extension request waiting for the command centre, with its task's facts."""

    extension_id: uuid.UUID
    task_id: uuid.UUID
    town_code: str
    ticket_no: str
    item_code: str
    village: str
    colour: Colour
    assignee: str
    status: str
    resolve_by: datetime
    days: int
    reason: str
    requested_by: str
    requested_at: datetime


class HolderSeen(Answer):
    """Who may take a post's task, with their load now (the redispatch picker, issue #27)."""

    town_code: str
    post: str
    slot: Literal["A", "B", "leader"]
    staff_id: str
    open_tasks: int = Field(description="open tasks (dispatched, accepted, rework) held in the town")
    cap: int | None = Field(description="the post's load cap; none for the module's leader")
    off_post: bool = Field(description="registered off post now")
    takes_next: bool = Field(description="the one a new task of the post would go to now")


# --- 演练 (issue #32): a past period on another layout --------------------------------------------
LayoutFile = Literal["modules.yaml", "posts.yaml", "staff.yaml", "rules.yaml", "catalog.yaml"]


class RehearsalRequest(Command):
    """A rehearsal: the period (its first and last days, in the town's time zone) and the layout's
    files that change, each as its YAML text (the others stay the town's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: date = Field(alias="from")
    to: date
    files: Annotated[dict[LayoutFile, Annotated[str, Field(max_length=1_000_000)]], Field(min_length=1)]
    times: Literal["drawn", "replayed"] = "drawn"
    seed: Annotated[StrictInt, Field(ge=0, le=2**31)] = 0


class RehearsalFigures(Answer):
    handled: int
    busiest_day: date | None
    busiest_day_tasks: int
    most_open: int
    wait_to_accept_hours: float | None
    response: float | None
    resolution: float | None
    satisfaction: float | None
    overdue: int
    escalated: int
    composite: float | None
    points: float


class RehearsalSubject(Answer):
    kind: Literal["town", "module", "post", "staff"]
    id: str
    real: RehearsalFigures | None        # the real layout, rehearsed the same way
    alternative: RehearsalFigures | None


class RehearsalWorse(Answer):
    """A figure the alternative makes worse: a rate that drops (fractions) or a count that rises;
    `real` is null for a subject only the alternative has."""

    kind: Literal["town", "module", "post", "staff"]
    id: str
    figure: Literal["response", "resolution", "satisfaction", "overdue", "escalated", "most_open"]
    real: float | None
    alternative: float


class Rehearsal(Answer):
    town_code: str
    from_: datetime = Field(alias="from")
    to: datetime                          # the end of the period (exclusive)
    times: Literal["drawn", "replayed"]
    seed: int
    matters: int
    same_assignee: float                  # the twin check: tasks the real layout's rehearsal gave as they were
    recorded: RehearsalFigures            # the town's period as it happened
    subjects: list[RehearsalSubject]
    worse: list[RehearsalWorse]          # the largest first
