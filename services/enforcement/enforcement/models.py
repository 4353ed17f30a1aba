"""Enforcement's request and response models (SPEC §5.4): what each route takes and answers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, PlainSerializer

from townflow_shared.events import CaseStep, Outcome, PlannedTarget
from townflow_shared.problems import OUT_OF_RANGE
from townflow_shared.types import FIRST_YEAR, LAST_YEAR, Command, Identifier, StrictInt, Text


def _within_years(value: date) -> date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise OUT_OF_RANGE.pydantic(min=f"{FIRST_YEAR}-01-01", max=f"{LAST_YEAR}-12-31")
    return value


Day = Annotated[date, AfterValidator(_within_years)]
Note = Annotated[Text, Field(max_length=2000)]
# A team is a handful of officers; 20 is far above any visit and keeps a body small.
MAX_TEAM = 20


# --- requests ----------------------------------------------------------------------------------
class FindingIn(Command):
    task_id: Identifier
    outcome: Outcome
    note: Note = ""
    rectify_by: Day | None = None


class ResultIn(Command):
    officers: list[Identifier] = Field(min_length=1, max_length=MAX_TEAM)
    present_units: list[Identifier] = Field(max_length=100)
    findings: list[FindingIn] = Field(max_length=1000)


class StartIn(Command):
    # The team going on the visit: from now on only they (or the enforcement module's leader)
    # post the result. Left out, the officers the result names are the inspection's officers.
    officers: list[Identifier] = Field(default_factory=list, max_length=MAX_TEAM)


class StepIn(Command):
    step: CaseStep
    decision: Note | None = None
    note: Note | None = None


class ExtensionIn(Command):
    reason: Annotated[Text, Field(min_length=1, max_length=1000)]


class PlanIn(Command):
    targets: list[Identifier] = Field(min_length=1, max_length=10_000)
    sample_size: StrictInt = Field(ge=1)
    seed: StrictInt = Field(ge=0, le=2**62)
    # The town whose officers are drawn: a town's staff plan for their own town; county_admin names it.
    town_code: Identifier | None = None


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
