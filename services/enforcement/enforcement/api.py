"""Enforcement's HTTP API (SPEC §5.4): combined inspections, cases, random inspection plans.
Adapters only: validate (models.py) → a flow or a query → the answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response

from townflow_shared import attachments as shared_attachments
from townflow_shared import problems
from townflow_shared.auth import Principal, require
from townflow_shared.events import CaseStep
from townflow_shared.http import read_files
from townflow_shared.problems import responses
from townflow_shared.types import NO_NUL_PATTERN, TOWN_CODE_PATTERN

from . import evidence, flows, models, queries
from .deps import Deps
from .refusals import CODES


async def _deps(request: Request) -> Deps:
    """`async` although it never waits: FastAPI would run a plain `def` in a worker thread."""
    return request.app.state.deps  # type: ignore[no-any-return]


router = APIRouter(tags=["enforcement"])
Wired = Annotated[Deps, Depends(_deps)]
Officer = Annotated[Principal, Depends(require("officer", "module_leader"))]
Reader = Annotated[Principal, Depends(require("officer", "module_leader", "command_centre", "appraisal_admin"))]
# Every route: who calls. A list: which towns it covers.
CALLER = problems.AUTHENTICATED  # the refusals of any route that reads a token
LISTED = (*CALLER, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_FOUND, problems.TOWN_REQUIRED, problems.INVALID)
# The refusals of any change to one inspection or case: the body, the id, the caller's town.
ON_INSPECTION = (*CALLER, problems.INVALID, CODES["inspection.not_found"], problems.TOWN_NOT_YOURS)
ON_CASE = (*CALLER, problems.INVALID, CODES["case.not_found"], problems.TOWN_NOT_YOURS)
Limit = Annotated[int, Query(ge=1, le=1000)]
# The town a county role names (`?town=`): documented as a town's code; any other value names a
# town this deployment does not serve (404 `town.not_served`).
Town = Annotated[str | None, Query(json_schema_extra={"pattern": TOWN_CODE_PATTERN})]
# A filter of free text (a status, a target, a unit, a step): anything but NUL, which the edge refuses.
Filter = Annotated[str | None, Query(pattern=NO_NUL_PATTERN)]


def _record_id(what: str) -> Any:
    """A record's id in a path: documented as a UUID; any other text names no record (404)."""
    return Path(json_schema_extra={"format": "uuid"}, description=f"{what}'s id; any other text is no {what} (404)")


InspectionId = Annotated[str, _record_id("an inspection")]
CaseId = Annotated[str, _record_id("a case")]
PlanId = Annotated[str, _record_id("a plan")]


@router.get("/v1/inspections", response_model=list[models.Inspection],
            responses=responses(*LISTED, CODES["inspection.not_found"]))
async def list_inspections(deps: Wired, principal: Reader, status: Filter = None, target: Filter = None,
                           unit: Filter = None, town: Town = None,
                           limit: Limit = 200) -> list[models.Inspection]:
    return await queries.list_inspections(deps, principal, queries.InspectionFilter(
        status=status, target=target, unit=unit, town=town, limit=limit))


@router.get("/v1/inspections/alerts", response_model=list[models.RepeatedInspection], responses=responses(*LISTED))
async def repeated_inspection_alerts(deps: Wired, principal: Reader,
                                     town: Town = None) -> list[models.RepeatedInspection]:
    """多头检查 (SPEC §10): targets visited separately by several units within the town's window,
    each with its visits, the latest planned inspection proposed for any new need, and the needs
    that arrived while it was flagged. The caller's town; county roles every town or `town`."""
    return await queries.repeated_inspections(deps, principal, town)


@router.get("/v1/inspections/{inspection_id}", response_model=models.Inspection,
            responses=responses(*CALLER, CODES["inspection.not_found"]))
async def get_inspection(inspection_id: InspectionId, deps: Wired, principal: Reader) -> models.Inspection:
    return await queries.get_inspection(deps, principal, inspection_id)


@router.post("/v1/inspections/{inspection_id}/start", response_model=models.Inspection,
             responses=responses(*ON_INSPECTION, CODES["inspection.unknown_staff"], CODES["inspection.not_planned"], CODES["inspection.starter_not_officer"],
                                 CODES["inspection.too_few_certified"]))
async def start_inspection(inspection_id: InspectionId, deps: Wired, principal: Officer,
                           body: models.StartIn | None = None) -> models.Inspection:
    """From now on new needs for this target open a new inspection. The team named here, with
    the starter when they are an officer of the town, are the inspection's officers: at least the
    town's number of certified officers (a module leader or admin may send a team without going)."""
    return await flows.start_inspection(deps, principal, flows.StartInspection(
        inspection_id, list(body.officers) if body else []))


@router.post("/v1/inspections/{inspection_id}/result", response_model=models.InspectionDone,
             responses=responses(*ON_INSPECTION, CODES["inspection.not_officer"], CODES["inspection.poster_not_named"], CODES["inspection.not_started"],
                                 CODES["inspection.unknown_staff"], CODES["inspection.too_few_certified"], CODES["inspection.unit_absent"], CODES["inspection.unit_foreign"],
                                 CODES["inspection.finding_missing"], CODES["inspection.finding_not_covered"], CODES["inspection.finding_repeated"], CODES["inspection.rectify_by_missing"]))
async def record_result(inspection_id: InspectionId, body: models.ResultIn, deps: Wired,
                        principal: Officer) -> models.InspectionDone:
    return await flows.record_result(deps, principal, flows.RecordResult(inspection_id, body))


# --- evidence (执法全过程记录, issue #29) ----------------------------------------------------------
PHOTO_FILE = ("an evidence photo (JPEG, PNG, WebP or HEIC), as the phone took it: checked, turned upright and "
              "stripped of its metadata here, then stored write-once")
# The refusals of any evidence upload: the photos, and the store.
PHOTOS = shared_attachments.PHOTO_REFUSALS
Photos = Annotated[list[UploadFile], File(description=PHOTO_FILE + "; up to 9 in one upload")]
EvidenceNote = Annotated[str, Form(max_length=2000, pattern=NO_NUL_PATTERN,
                                   description="what the photos show (not on any event)")]
Variant = Annotated[Literal["photo", "thumbnail"], Query(description="the photo (≤ 2048 px) or its thumbnail")]
AttachmentId = Annotated[uuid.UUID, Path(description="the evidence's attachment id, as the record lists it")]
# The bytes as stored: a JPEG without metadata, never cached, never a URL to the bucket.
EVIDENCE_READ: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                       "description": "the evidence as stored: a JPEG without metadata"}}


def _photo_answer(data: bytes, content_type: str) -> Response:
    return Response(data, media_type=content_type, headers={
        "Cache-Control": "private, no-store", "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff"})


@router.post("/v1/inspections/{inspection_id}/evidence", status_code=201, response_model=models.Inspection,
             responses=responses(*ON_INSPECTION, CODES["inspection.evidence_not_officer"],
                                 CODES["inspection.evidence_not_open"], *PHOTOS))
async def record_inspection_evidence(inspection_id: InspectionId, deps: Wired, principal: Officer, photos: Photos,
                                     note: EvidenceNote = "") -> models.Inspection:
    """Evidence photos taken during the visit (执法全过程记录), as multipart/form-data: one `photos`
    part per photo and a `note`; by one of the inspection's team or the enforcement module's leader,
    while it is started. Stored cleaned and write-once; the inspection is answered with its
    evidence, and `enforcement.evidence.recorded` carries their digests."""
    return await evidence.record_inspection_evidence(deps, principal, evidence.RecordInspectionEvidence(
        inspection_id, await read_files(photos), note))


@router.get("/v1/inspections/{inspection_id}/evidence/{attachment_id}", response_class=Response,
            responses={**EVIDENCE_READ, **responses(*CALLER, CODES["inspection.not_found"], evidence.NOT_FOUND,
                                                    evidence.STORAGE_UNAVAILABLE)})
async def read_inspection_evidence(inspection_id: InspectionId, attachment_id: AttachmentId, deps: Wired,
                                   principal: Reader, variant: Variant = "photo") -> Response:
    """A piece of the inspection's evidence, for whoever reads the inspection; every read recorded."""
    return _photo_answer(*await evidence.read_evidence(deps, principal, evidence.ReadEvidence(
        "inspection", inspection_id, attachment_id, variant)))


@router.get("/v1/cases", response_model=list[models.Case], responses=responses(*LISTED, CODES["case.not_found"]))
async def list_cases(deps: Wired, principal: Reader, step: Filter = None, overdue: bool | None = None,
                     inspection_id: uuid.UUID | None = None, town: Town = None,
                     limit: Limit = 200) -> list[models.Case]:
    return await queries.list_cases(deps, principal, queries.CaseFilter(
        step=step, overdue=overdue, inspection_id=inspection_id, town=town, limit=limit))


@router.get("/v1/cases/{case_id}", response_model=models.CaseWithSteps,
            responses=responses(*CALLER, CODES["case.not_found"]))
async def get_case(case_id: CaseId, deps: Wired, principal: Reader) -> models.CaseWithSteps:
    return await queries.get_case(deps, principal, case_id)


@router.post("/v1/cases/{case_id}/steps", response_model=models.CaseWithSteps,
             responses=responses(*ON_CASE, CODES["case.transfer_by_finding_only"], CODES["case.transferred"], CODES["case.closed"],
                                 CODES["case.step_out_of_order"], CODES["case.step_unknown"], CODES["case.decision_missing"]))
async def add_step(case_id: CaseId, body: models.StepIn, deps: Wired, principal: Officer) -> models.CaseWithSteps:
    return await flows.take_case_step(deps, principal, flows.TakeCaseStep(
        case_id, body.step, decision=body.decision, note=body.note))


@router.post("/v1/cases/{case_id}/evidence", status_code=201, response_model=models.CaseWithSteps,
             responses=responses(*ON_CASE, CODES["case.transferred"], CODES["case.closed"], CODES["case.step_unknown"],
                                 CODES["case.evidence_step_not_reached"], *PHOTOS))
async def record_case_evidence(case_id: CaseId, deps: Wired, principal: Officer, photos: Photos,
                               note: EvidenceNote = "",
                               step: Annotated[CaseStep | None, Form(description=(
                                   "the step the photos document: one the case has taken or its next; "
                                   "its current step when not given"))] = None) -> models.CaseWithSteps:
    """Evidence photos documenting a case's step (执法全过程记录), as multipart/form-data: one
    `photos` part per photo, a `note` and the `step`; by whoever takes the case's steps. Stored
    cleaned and write-once; the case is answered with its evidence, and
    `enforcement.evidence.recorded` carries their digests."""
    return await evidence.record_case_evidence(deps, principal, evidence.RecordCaseEvidence(
        case_id, await read_files(photos), note, step))


@router.get("/v1/cases/{case_id}/evidence/{attachment_id}", response_class=Response,
            responses={**EVIDENCE_READ, **responses(*CALLER, CODES["case.not_found"], evidence.NOT_FOUND,
                                                    evidence.STORAGE_UNAVAILABLE)})
async def read_case_evidence(case_id: CaseId, attachment_id: AttachmentId, deps: Wired, principal: Reader,
                             variant: Variant = "photo") -> Response:
    """A piece of the case's evidence, for whoever reads the case; every read recorded."""
    return _photo_answer(*await evidence.read_evidence(deps, principal, evidence.ReadEvidence(
        "case", case_id, attachment_id, variant)))


@router.post("/v1/cases/{case_id}/extension", response_model=models.Case,
             responses=responses(*ON_CASE, CODES["case.decided"], CODES["case.already_extended"], CODES["case.extension_too_late"]))
async def extend_case(case_id: CaseId, body: models.ExtensionIn, deps: Wired, principal: Officer) -> models.Case:
    """The one 30-day extension of the decision limit, recorded before day 90."""
    return await flows.extend_case(deps, principal, flows.ExtendCase(case_id, body.reason))


@router.post("/v1/random-plans", status_code=201, response_model=models.PublishedPlan,
             responses=responses(*CALLER, problems.INVALID, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_YOURS, problems.TOWN_REQUIRED,
                                 CODES["plan.sample_too_large"], CODES["plan.too_few_officers"]))
async def random_plan(body: models.PlanIn, deps: Wired, principal: Officer) -> models.PublishedPlan:
    """双随机一公开: random targets and two random certified officers each of the caller's town (or
    the town county_admin names), reproducible by seed."""
    return await flows.publish_plan(deps, principal, flows.PublishPlan(
        list(body.targets), body.sample_size, body.seed, body.town_code))


@router.get("/v1/plans", response_model=list[models.Plan], responses=responses(*LISTED, CODES["plan.not_found"]))
async def list_plans(deps: Wired, principal: Reader, town: Town = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[models.Plan]:
    return await queries.list_plans(deps, principal, town, limit)


@router.get("/v1/plans/{plan_id}", response_model=models.Plan, responses=responses(*CALLER, CODES["plan.not_found"]))
async def get_plan(plan_id: PlanId, deps: Wired, principal: Reader) -> models.Plan:
    return await queries.get_plan(deps, principal, plan_id)
