"""Enforcement's request and response models (SPEC §5.4): what each route takes and answers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from townflow_shared.events import CaseStep, Outcome, PlannedTarget
from townflow_shared.types import (
    TOWN_CODE_PATTERN,
    Command,
    Day,
    Identifier,
    StrictInt,
    Text,
)

Note = Annotated[Text, Field(max_length=2000)]
# A team is a handful of officers; 20 is far above any visit and keeps a body small.
MAX_TEAM = 20


# --- requests ----------------------------------------------------------------------------------
class FindingIn(Command):
    # A rectify finding names its rectify_by day, as the document says too
    # (`inspection.rectify_by_missing` otherwise).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["rectify_by"], "properties": {"outcome": {"const": "rectify"}, "rectify_by": {"type": "string"}}},
        {"properties": {"outcome": {"not": {"const": "rectify"}}}}]})
    task_id: Identifier
    outcome: Outcome
    note: Note = ""
    rectify_by: Day | None = None


class ResultIn(Command):
    officers: list[Identifier] = Field(min_length=1, max_length=MAX_TEAM)
    present_units: list[Identifier] = Field(max_length=100)
    findings: list[FindingIn] = Field(max_length=1000)


class StartIn(Command):
    # The team going on the visit, the starter added when they are an officer of the town: at
    # least the town's number of certified officers. Only they (or the enforcement module's
    # leader) post the result.
    officers: list[Identifier] = Field(default_factory=list, max_length=MAX_TEAM)


class StepIn(Command):
    # A decided step records its decision, as the document says too (`case.decision_missing`).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["decision"], "properties": {"step": {"const": "decided"},
                                                  "decision": {"type": "string", "minLength": 1}}},
        {"properties": {"step": {"not": {"const": "decided"}}}}]})
    step: CaseStep
    decision: Note | None = None
    note: Note | None = None


class ExtensionIn(Command):
    reason: Annotated[Text, Field(min_length=1, max_length=1000)]


class PlanIn(Command):
    targets: list[Identifier] = Field(min_length=1, max_length=10_000)
    # At most the distinct targets (`plan.sample_too_large`, a rule between fields no schema states).
    sample_size: StrictInt = Field(ge=1, le=10_000)
    # Published for anyone to redraw the plan: a whole number JavaScript (the console, a browser)
    # holds exactly, and that a schema checker comparing in floating point cannot misjudge.
    seed: StrictInt = Field(ge=0, le=2**53 - 1)
    # The town whose officers are drawn: a town's staff plan for their own town; county_admin names it.
    # Any other text than a town's code names a town not served (404 `town.not_served`).
    town_code: Annotated[str, Field(json_schema_extra={"pattern": TOWN_CODE_PATTERN})] | None = None


# --- answers (times in the record's town's time zone) -------------------------------------------
# A moment as Python writes it (`+00:00`, never pydantic's `Z`): the answers keep their form.
Moment = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json")]


class Need(BaseModel):
    """A matter waiting for the visit: a dispatched task, or a rectification to check."""

    need_id: uuid.UUID
    town_code: str
    inspection_id: uuid.UUID
    source: Literal["task", "rectify"]
    task_id: str | None
    request_id: str | None
    item_code: str
    target: str
    units: list[str]
    due: Moment | None
    created_at: Moment
    repeated_inspection: bool


class FindingOut(BaseModel):
    task_id: str
    outcome: Outcome
    note: str = ""
    rectify_by: date | None = None


class Evidence(BaseModel):
    """A piece of evidence (执法全过程记录, issue #29) as a record lists it: by reference and digest,
    written once. Its bytes: `GET …/evidence/{attachment_id}` (each read recorded)."""

    attachment_id: uuid.UUID
    step: str | None = Field(description="the case's step it documents (a case's evidence only)")
    note: str
    content_type: str = Field(description="of the stored copy: image/jpeg")
    size: int = Field(description="bytes of the stored copy")
    width: int
    height: int
    sha256: str = Field(description="hex SHA-256 of the stored copy, as recorded: what a reader checks the bytes against")
    original_sha256: str = Field(description="hex SHA-256 of the file as uploaded (not kept)")
    captured_at: str | None = Field(description="when the photo was taken, as the camera wrote it (EXIF), if it did")
    uploaded_by: str
    uploaded_at: Moment


class Inspection(BaseModel):
    """综合查一次: one visit to a target by every unit its needs call for."""

    inspection_id: uuid.UUID
    town_code: str
    target: str
    status: Literal["planned", "started", "done"]
    units: list[str]
    created_at: Moment
    started_at: Moment | None
    started_by: str | None
    finished_at: Moment | None
    officers: list[str] | None
    present_units: list[str] | None
    findings: list[FindingOut] | None
    visits_saved: int
    assigned_officers: list[str]
    needs: list[Need]
    evidence: list[Evidence] = Field(description="photos recorded during its visit, in the order recorded")


class InspectionDone(Inspection):
    cases: list[uuid.UUID] = Field(description="the cases its findings opened (立案)")


class CaseStepOut(BaseModel):
    step: str
    at: Moment
    by: str
    note: str | None


class Case(BaseModel):
    case_id: uuid.UUID
    town_code: str
    task_id: str
    request_id: str
    inspection_id: uuid.UUID
    item_code: str
    target: str
    step: str
    filed_at: Moment
    decision_due: Moment
    extended: bool
    extension_reason: str | None
    decision: str | None
    decided_at: Moment | None
    transferred_to: str | None
    warned_at: Moment | None
    overdue_at: Moment | None
    next_flag_at: Moment | None
    flag: Literal["ok", "warning", "overdue"] = Field(description="past day 60 undecided, or past the limit")


class CaseWithSteps(Case):
    steps: list[CaseStepOut]
    evidence: list[Evidence] = Field(description="photos documenting its steps, in the order recorded")


class Plan(BaseModel):
    """双随机一公开: the drawn targets with two officers each, reproducible by its seed."""

    plan_id: uuid.UUID
    town_code: str
    seed: int
    sample_size: int
    population: list[str]
    targets: list[PlannedTarget]
    published_at: Moment
    published_by: str


class PublishedPlan(BaseModel):
    plan_id: uuid.UUID
    town_code: str
    seed: int
    targets: list[PlannedTarget]
    published_at: Moment


class Visit(BaseModel):
    inspection_id: str
    units: list[str]
    started_at: Moment


class ProposedNeed(BaseModel):
    need_id: uuid.UUID
    inspection_id: uuid.UUID
    task_id: str | None
    request_id: str | None
    item_code: str
    created_at: Moment


class RepeatedInspection(BaseModel):
    """多头检查 (SPEC §10): a target visited separately by several units within the window."""

    town_code: str
    target: str
    window_days: int
    units: list[str]
    visits: list[Visit]
    proposed_inspection_id: uuid.UUID | None
    proposed_needs: list[ProposedNeed]
