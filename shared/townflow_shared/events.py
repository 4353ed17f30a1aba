"""Event contracts: the envelope and one pydantic model per topic (SPEC §3.1).

Topic names are `<service>.<entity>.<event>.v<major>`. Consumers ignore fields they do not know,
so adding an optional field is a minor change; removing or retyping one needs a new major version
on a new topic. No model here may carry a citizen's name, phone or id number.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Colour = Literal["yellow", "orange", "red"]
Channel = Literal["window", "proxy", "village_station", "hotline", "online", "self_service"]
TaskKind = Literal["service", "enforcement", "joint_visit"]
AssignedVia = Literal["A", "B", "leader", "command_centre"]
Rating = Literal["satisfied", "basically_satisfied", "unsatisfied"]
SupervisionLevel = Literal["reminder", "overdue", "escalated"]
Outcome = Literal["compliant", "rectify", "violation", "not_delegated", "criminal"]
CaseStep = Literal["filed", "investigated", "reviewed", "decided", "closed", "transferred"]
SubjectType = Literal["staff", "module", "village", "seconded_unit"]
AlertLevel = Literal["reminder", "talk", "accountability"]


class EventData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(BaseModel):
    """Every event on every topic. `subject` is the entity id; the Kafka key is `key`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    topic: ClassVar[str]
    # Inspections, plans and scores are keyed by their own id; everything else by its matter.
    keyed_by_subject: ClassVar[bool] = False
    id: uuid.UUID
    type: str
    version: int
    source: str
    time: datetime
    town_code: str
    subject: str
    correlation_id: str
    causation_id: str | None = None
    data: EventData

    @property
    def key(self) -> str:
        """The Kafka key: the matter's request id, so all its events stay in order."""
        return self.subject if self.keyed_by_subject else self.correlation_id


# --- intake ---------------------------------------------------------------------------------
class AttachmentRef(EventData):
    """A photo (or, later, evidence) a record carries, by reference (issue #29): the bytes are in
    the owning service's object store and read through its API, never on a topic. `sha256` is the
    stored copy's (what a reader fetches, and can check); `original_sha256` the uploaded file's."""

    attachment_id: str
    kind: Literal["photo"]
    content_type: str = Field(description="of the stored copy: image/jpeg")
    size: int = Field(description="bytes of the stored copy")
    sha256: str = Field(description="hex SHA-256 of the stored copy")
    original_sha256: str = Field(description="hex SHA-256 of the file as uploaded (not kept)")


class Position(EventData):
    """A matter's position, WGS 84 (issue #30): where a located item's matter is (a road, a stall, a
    site), never a person's home: only located items take one, a person's own matters none."""

    longitude: float
    latitude: float


class RequestFiledData(EventData):
    request_id: str
    ticket_no: str
    channel: Channel
    item_code: str
    colour: Colour
    description: str
    village: str
    location: str
    target: str | None = None
    citizen_ref: str = Field(description="HMAC-SHA256 of the citizen's normalised id (never the id)")
    proxy_agent_id: str | None = None
    village_record_id: str | None = None
    filed_at: datetime
    attachments: list[AttachmentRef] = Field(default_factory=list, description=(
        "the photos filed with the matter, by reference; none for most filings"))
    point: Position | None = Field(default=None, description="where the matter is (located items only; issue #30)")
    grid_cell: str | None = Field(default=None, description=(
        "the grid cell (单元网格) the point is in: 15 digits, GB/T 30428"))


class RequestFiled(Envelope):
    topic: ClassVar[str] = "intake.request.filed.v1"
    type: Literal["intake.request.filed"] = "intake.request.filed"
    version: Literal[1] = 1
    data: RequestFiledData


class RequestRatedData(EventData):
    request_id: str
    ticket_no: str
    rating: Rating
    rated_at: datetime


class RequestRated(Envelope):
    topic: ClassVar[str] = "intake.request.rated.v1"
    type: Literal["intake.request.rated"] = "intake.request.rated"
    version: Literal[1] = 1
    data: RequestRatedData


class RequestMergedData(EventData):
    """重复件: the command centre merged a matter into another of its town (the primary), or
    reversed that merge (`reversed`). Merge and reversal share one topic and the merged matter's
    key, so a subscriber sees them in the order they happened."""

    request_id: str = Field(description="the merged (duplicate) matter")
    ticket_no: str
    into_request_id: str = Field(description="the primary matter it follows")
    into_ticket_no: str
    reversed: bool = Field(default=False, description="true: the merge was undone (before the primary closed)")
    by: str
    at: datetime


class RequestMerged(Envelope):
    topic: ClassVar[str] = "intake.request.merged.v1"
    type: Literal["intake.request.merged"] = "intake.request.merged"
    version: Literal[1] = 1
    data: RequestMergedData


# --- dispatch -------------------------------------------------------------------------------
class TaskDispatchedData(EventData):
    task_id: str
    request_id: str
    item_code: str
    kind: TaskKind
    colour: Colour
    village: str
    location: str
    target: str | None = None
    lead_module: str
    cooperating_modules: list[str] = []
    post: str
    assignee: str
    assigned_via: AssignedVia
    respond_by: datetime
    resolve_by: datetime
    dispatched_at: datetime
    redispatch_of: str | None = None
    # v1.1, optional: on a redispatch, whether the command centre judged the return invalid.
    invalid_return: bool | None = None


class TaskDispatched(Envelope):
    topic: ClassVar[str] = "dispatch.task.dispatched.v1"
    type: Literal["dispatch.task.dispatched"] = "dispatch.task.dispatched"
    version: Literal[1] = 1
    data: TaskDispatchedData


class TaskAcceptedData(EventData):
    task_id: str
    request_id: str
    by: str
    accepted_at: datetime


class TaskAccepted(Envelope):
    topic: ClassVar[str] = "dispatch.task.accepted.v1"
    type: Literal["dispatch.task.accepted"] = "dispatch.task.accepted"
    version: Literal[1] = 1
    data: TaskAcceptedData


class TaskReturnedData(EventData):
    task_id: str
    request_id: str
    by: str
    reason: str
    returned_at: datetime


class TaskReturned(Envelope):
    topic: ClassVar[str] = "dispatch.task.returned.v1"
    type: Literal["dispatch.task.returned"] = "dispatch.task.returned"
    version: Literal[1] = 1
    data: TaskReturnedData


class TaskSupervisedData(EventData):
    task_id: str
    request_id: str
    level: SupervisionLevel
    notified: list[str]
    at: datetime


class TaskSupervised(Envelope):
    topic: ClassVar[str] = "dispatch.task.supervised.v1"
    type: Literal["dispatch.task.supervised"] = "dispatch.task.supervised"
    version: Literal[1] = 1
    data: TaskSupervisedData


class TaskCompletedData(EventData):
    task_id: str
    request_id: str
    by: str
    resolution: str
    completed_at: datetime
    on_time: bool
    inspection_id: str | None = None
    # v1.2, optional: the answer to the citizen (答复: what was done or why not), personal numbers
    # masked. Absent from v1.1 events; new completions always carry it.
    reply: str | None = Field(default=None, description="the answer to the citizen (答复), personal numbers masked")
    # Issue #29, optional: the holder's after photos (处置后照片), by reference; none from an
    # inspection, none before this release.
    attachments: list[AttachmentRef] = Field(default_factory=list, description=(
        "the after photos (处置后照片) taken at completion, by reference; none for most completions"))


class TaskCompleted(Envelope):
    topic: ClassVar[str] = "dispatch.task.completed.v1"
    type: Literal["dispatch.task.completed"] = "dispatch.task.completed"
    version: Literal[1] = 1
    data: TaskCompletedData


class TaskExtendedData(EventData):
    task_id: str
    request_id: str
    days: int
    reason: str
    approved_by: str
    resolve_by: datetime


class TaskExtended(Envelope):
    topic: ClassVar[str] = "dispatch.task.extended.v1"
    type: Literal["dispatch.task.extended"] = "dispatch.task.extended"
    version: Literal[1] = 1
    data: TaskExtendedData


class TaskVerifiedData(EventData):
    task_id: str
    request_id: str
    passed: bool
    note: str
    by: str
    at: datetime
    # v1.2, optional: a failed check's rework deadline (the date the citizen is now promised).
    resolve_by: datetime | None = Field(default=None, description="when failed: the rework's deadline")
    # Issue #29, optional: the command centre's own photos at the check, by reference.
    attachments: list[AttachmentRef] = Field(default_factory=list, description=(
        "the command centre's photos taken at the closure check (核查), by reference; none for most checks"))


class TaskVerified(Envelope):
    topic: ClassVar[str] = "dispatch.task.verified.v1"
    type: Literal["dispatch.task.verified"] = "dispatch.task.verified"
    version: Literal[1] = 1
    data: TaskVerifiedData


class TaskMergedData(EventData):
    """A task closed as `merged` because its matter was merged into another (no points, out of
    rates), or, `reversed`, reopened because the merge was undone: then `status`, `respond_by` and
    `resolve_by` are the task's again, with a new resolution window of the original length."""

    task_id: str
    request_id: str
    into_request_id: str
    reversed: bool = False
    status: str = Field(description="the task's status after this event: merged, or the one it had before")
    respond_by: datetime
    resolve_by: datetime
    at: datetime


class TaskMerged(Envelope):
    topic: ClassVar[str] = "dispatch.task.merged.v1"
    type: Literal["dispatch.task.merged"] = "dispatch.task.merged"
    version: Literal[1] = 1
    data: TaskMergedData


class TaskCallbackData(EventData):
    """回访: the command centre called the citizen back after closure. `rating` counts as the
    citizen's when the matter has no rating of its own; `unsatisfied` reopens the task (重办) for
    the same assignee with a new window of the original length (`reopened`, `resolve_by`)."""

    task_id: str
    request_id: str
    reached: bool
    rating: Rating | None = None
    note: str = ""
    by: str
    at: datetime
    reopened: bool = False
    resolve_by: datetime | None = Field(default=None, description="the new deadline when reopened")


class TaskCallback(Envelope):
    topic: ClassVar[str] = "dispatch.task.callback.v1"
    type: Literal["dispatch.task.callback"] = "dispatch.task.callback"
    version: Literal[1] = 1
    data: TaskCallbackData


SuspensionCategory = Literal["awaiting_citizen", "awaiting_third_party"]


class TaskSuspendedData(EventData):
    """挂起: the command centre approved a post holder's request to suspend the task while waiting on
    the citizen (补正材料) or a third party. Its deadline and supervision stop; `working_left` is the
    working time it had left before `resolve_by`, given back when it resumes. `reason` is masked."""

    task_id: str
    request_id: str
    category: SuspensionCategory
    reason: str
    requested_by: str
    approved_by: str
    suspended_at: datetime
    resolve_by: datetime = Field(description="the deadline the task had when suspended")
    working_left_seconds: int = Field(description="the working time left before resolve_by, in seconds")


class TaskSuspended(Envelope):
    topic: ClassVar[str] = "dispatch.task.suspended.v1"
    type: Literal["dispatch.task.suspended"] = "dispatch.task.suspended"
    version: Literal[1] = 1
    data: TaskSuspendedData


class TaskResumedData(EventData):
    """A suspended task resumed (恢复办理): `status` is the one it had before, `resolve_by` its new
    deadline, the working time it had left counted from `resumed_at`."""

    task_id: str
    request_id: str
    by: str
    status: str
    suspended_at: datetime
    resumed_at: datetime
    resolve_by: datetime


class TaskResumed(Envelope):
    topic: ClassVar[str] = "dispatch.task.resumed.v1"
    type: Literal["dispatch.task.resumed"] = "dispatch.task.resumed"
    version: Literal[1] = 1
    data: TaskResumedData


class ExtensionRequestedData(EventData):
    """延期申请: a post holder asked the command centre to extend a task's deadline by `days` working
    days (issue #31: the command centre is told). The decision follows as `dispatch.task.extended`
    (approved) or nothing on a topic (refused). `reason` has phone and id numbers masked."""

    extension_id: str
    task_id: str
    request_id: str
    days: int
    reason: str
    requested_by: str = Field(description="the staff id of the holder who asked")
    requested_at: datetime
    resolve_by: datetime = Field(description="the task's deadline when asked (before any extension)")


class ExtensionRequested(Envelope):
    topic: ClassVar[str] = "dispatch.extension.requested.v1"
    type: Literal["dispatch.extension.requested"] = "dispatch.extension.requested"
    version: Literal[1] = 1
    data: ExtensionRequestedData


class SuspensionRequestedData(EventData):
    """挂起申请: a post holder asked the command centre to suspend a task while waiting on the citizen
    or a third party (issue #31: the command centre is told). An approval follows as
    `dispatch.task.suspended`. `reason` has phone and id numbers masked."""

    suspension_id: str
    task_id: str
    request_id: str
    category: SuspensionCategory
    reason: str
    requested_by: str = Field(description="the staff id of the holder who asked")
    requested_at: datetime
    resolve_by: datetime = Field(description="the task's deadline when asked")


class SuspensionRequested(Envelope):
    topic: ClassVar[str] = "dispatch.suspension.requested.v1"
    type: Literal["dispatch.suspension.requested"] = "dispatch.suspension.requested"
    version: Literal[1] = 1
    data: SuspensionRequestedData


# --- enforcement ----------------------------------------------------------------------------
class Finding(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    task_id: str
    outcome: Outcome
    note: str = ""
    rectify_by: date | None = None


class InspectionDoneData(EventData):
    inspection_id: str
    target: str
    task_ids: list[str]
    units: list[str]
    officers: list[str]
    findings: list[Finding]
    started_at: datetime
    finished_at: datetime


class InspectionDone(Envelope):
    topic: ClassVar[str] = "enforcement.inspection.done.v1"
    keyed_by_subject: ClassVar[bool] = True
    type: Literal["enforcement.inspection.done"] = "enforcement.inspection.done"
    version: Literal[1] = 1
    data: InspectionDoneData


class CaseUpdatedData(EventData):
    case_id: str
    task_id: str
    request_id: str
    step: CaseStep
    decision: str | None = None
    transferred_to: str | None = None
    at: datetime


class CaseUpdated(Envelope):
    topic: ClassVar[str] = "enforcement.case.updated.v1"
    type: Literal["enforcement.case.updated"] = "enforcement.case.updated"
    version: Literal[1] = 1
    data: CaseUpdatedData


CaseFlag = Literal["warning", "overdue"]


class CaseFlaggedData(EventData):
    """An undecided case reached a threshold of its legal decision limit (行政处罚法 art. 60: 90 days,
    one 30-day extension): `warning` on the town's warning day (day 60: the limit is near),
    `overdue` once past the limit. One event per case and flag, from enforcement's deadline loop
    (issue #31: the case's officers are told)."""

    case_id: str
    task_id: str
    request_id: str
    item_code: str
    target: str
    officers: list[str] = Field(description="the staff ids of the officers of the inspection that filed the case")
    flag: CaseFlag
    filed_at: datetime
    decision_due: datetime = Field(description="the legal decision limit (extended, when the case was)")
    extended: bool
    at: datetime = Field(description="when the flag was set")


class CaseFlagged(Envelope):
    topic: ClassVar[str] = "enforcement.case.flagged.v1"
    type: Literal["enforcement.case.flagged"] = "enforcement.case.flagged"
    version: Literal[1] = 1
    data: CaseFlaggedData


class EvidenceRecordedData(EventData):
    """Evidence photos recorded on an inspection (during its visit) or on a case's step
    (执法全过程记录, issue #29), by reference: what a county department keeps to check, later, that
    the evidence it reads through enforcement is what was recorded (`sha256` of the bytes read back).
    Never the bytes, their keys, a URL, the note or where and when the photo was taken."""

    inspection_id: str | None = Field(None, description="the inspection the evidence is on (else case_id)")
    case_id: str | None = Field(None, description="the case the evidence is on (else inspection_id)")
    step: CaseStep | None = Field(None, description="the case's step it documents (a case's evidence only)")
    request_id: str | None = Field(None, description="the matter, when the record has one")
    evidence: list[AttachmentRef] = Field(description="each photo, by reference and digest, as recorded (write-once)")
    recorded_by: str = Field(description="the officer's staff id")
    recorded_at: datetime


class EvidenceRecorded(Envelope):
    topic: ClassVar[str] = "enforcement.evidence.recorded.v1"
    type: Literal["enforcement.evidence.recorded"] = "enforcement.evidence.recorded"
    version: Literal[1] = 1
    data: EvidenceRecordedData


class PlannedTarget(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    target: str
    officers: list[str]


class PlanPublishedData(EventData):
    plan_id: str
    seed: int
    targets: list[PlannedTarget]
    published_at: datetime


class PlanPublished(Envelope):
    topic: ClassVar[str] = "enforcement.plan.published.v1"
    keyed_by_subject: ClassVar[bool] = True
    type: Literal["enforcement.plan.published"] = "enforcement.plan.published"
    version: Literal[1] = 1
    data: PlanPublishedData


# --- appraisal ------------------------------------------------------------------------------
class ScoreUpdatedData(EventData):
    subject_type: SubjectType
    subject_id: str
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    rates: dict[str, float | None]
    points: float
    dimensions: dict[str, float | None]
    composite: float | None
    rank: int | None = None
    cause_event_id: str
    # A consumer batch publishes a subject's figures once, after all of its events: every event
    # and matter whose change the figures include (cause_event_id is the last of them).
    cause_event_ids: list[str] = Field(default_factory=list)
    correlation_ids: list[str] = Field(default_factory=list)


class ScoreUpdated(Envelope):
    topic: ClassVar[str] = "appraisal.score.updated.v1"
    keyed_by_subject: ClassVar[bool] = True
    type: Literal["appraisal.score.updated"] = "appraisal.score.updated"
    version: Literal[1] = 1
    data: ScoreUpdatedData


class AlertRaisedData(EventData):
    staff_id: str
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    level: AlertLevel
    reasons: list[str]


class AlertRaised(Envelope):
    topic: ClassVar[str] = "appraisal.alert.raised.v1"
    keyed_by_subject: ClassVar[bool] = True
    type: Literal["appraisal.alert.raised"] = "appraisal.alert.raised"
    version: Literal[1] = 1
    data: AlertRaisedData


# --- the audit trail (issue #28): every service's own topic, one chain each ----------------------
class AuditFacts(EventData):
    """What an audit record says, in its event and in the auditor's read (audit_api): who (with
    which roles, in which town), did what to what, with what outcome, from where."""

    actor: str
    roles: list[str]
    town: str | None = None
    action: str
    target_type: str
    target_id: str
    outcome: str
    client: str
    forwarded_for: str
    correlation_id: str


class AuditRecordedData(AuditFacts):
    """One record of a service's audit chain (townflow_shared.audit): its facts, when, and its
    place in the chain; never a citizen's personal data. A SIEM recomputes `hash` from the other
    fields and `prev_hash` (docs/security-audit.md)."""

    seq: int
    prev_hash: str
    hash: str
    service: str
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditRecorded(Envelope):
    """A record of a service's audit trail. Keyed by the service: its chain stays in order on one
    partition."""

    data: AuditRecordedData

    @property
    def key(self) -> str:
        return self.source


class IntakeAuditRecorded(AuditRecorded):
    """A record of intake's audit trail (docs/security-audit.md)."""

    topic: ClassVar[str] = "intake.audit.recorded.v1"
    type: Literal["intake.audit.recorded"] = "intake.audit.recorded"
    version: Literal[1] = 1


class DispatchAuditRecorded(AuditRecorded):
    """A record of dispatch's audit trail (docs/security-audit.md)."""

    topic: ClassVar[str] = "dispatch.audit.recorded.v1"
    type: Literal["dispatch.audit.recorded"] = "dispatch.audit.recorded"
    version: Literal[1] = 1


class EnforcementAuditRecorded(AuditRecorded):
    """A record of enforcement's audit trail (docs/security-audit.md)."""

    topic: ClassVar[str] = "enforcement.audit.recorded.v1"
    type: Literal["enforcement.audit.recorded"] = "enforcement.audit.recorded"
    version: Literal[1] = 1


class AppraisalAuditRecorded(AuditRecorded):
    """A record of appraisal's audit trail (docs/security-audit.md)."""

    topic: ClassVar[str] = "appraisal.audit.recorded.v1"
    type: Literal["appraisal.audit.recorded"] = "appraisal.audit.recorded"
    version: Literal[1] = 1


class ConsoleAuditRecorded(AuditRecorded):
    """A record of the console's audit trail: sign-ins, their failures and locks, sign-outs and
    sessions that ended (docs/security-audit.md)."""

    topic: ClassVar[str] = "console.audit.recorded.v1"
    type: Literal["console.audit.recorded"] = "console.audit.recorded"
    version: Literal[1] = 1


AUDIT_TYPES: dict[str, type[AuditRecorded]] = {
    "intake": IntakeAuditRecorded, "dispatch": DispatchAuditRecorded,
    "enforcement": EnforcementAuditRecorded, "appraisal": AppraisalAuditRecorded,
    "console": ConsoleAuditRecorded}


EVENT_TYPES: tuple[type[Envelope], ...] = (
    RequestFiled, RequestRated, RequestMerged,
    TaskDispatched, TaskAccepted, TaskReturned, TaskSupervised, TaskCompleted, TaskExtended,
    TaskVerified, TaskMerged, TaskCallback, TaskSuspended, TaskResumed, ExtensionRequested, SuspensionRequested,
    InspectionDone, CaseUpdated, PlanPublished, EvidenceRecorded, CaseFlagged,
    ScoreUpdated, AlertRaised,
    *AUDIT_TYPES.values(),
)
TOPICS: dict[str, type[Envelope]] = {event.topic: event for event in EVENT_TYPES}


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def new_event(
    event_type: type[Envelope],
    data: EventData,
    *,
    source: str,
    town_code: str,
    subject: str | uuid.UUID,
    correlation_id: str | uuid.UUID,
    time: datetime,
    causation_id: str | uuid.UUID | None = None,
) -> Any:
    """Build an event of `event_type` with a fresh id; the caller's clock gives the time. The one
    envelope builder: ids may be given as UUIDs (a service needs no wrapper of its own)."""
    return event_type(  # type and version are the subclass's defaults
        id=uuid.uuid4(),
        source=source,
        time=time,
        town_code=town_code,
        subject=str(subject),
        correlation_id=str(correlation_id),
        causation_id=str(causation_id) if causation_id is not None else None,
        data=data,
    )  # type: ignore[call-arg]
