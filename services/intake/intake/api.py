"""Intake's HTTP API (SPEC §5.2): each route validates its input (models.py), calls its command
handler (flows.py) and answers its result; refusals are problem documents with intake's codes
(refusals.py).

In a county (SPEC §8) every call is about one town: a filing goes to the caller's town (a
county_admin names it), a ticket number names its town, the catalog is a town's."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Header, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from townflow_shared import attachments as shared_attachments
from townflow_shared import problems
from townflow_shared.auth import Principal, optional_principal, require
from townflow_shared.http import form_json, json_form_field, read_files
from townflow_shared.problems import responses
from townflow_shared.types import NO_NUL_PATTERN

from . import attachments, flows, models
from .flows import FILERS, MATTER_READERS, MERGERS, READ_RECORD_READERS, Deps
from .refusals import CODES

router = APIRouter(tags=["requests"])


async def _deps(request: Request) -> Deps:
    """`async` although it never waits: FastAPI would run a plain `def` in a worker thread."""
    return request.app.state.deps  # type: ignore[no-any-return]


Dependencies = Annotated[Deps, Depends(_deps)]
# Who may call with a token: no token, a bad one, or the wrong role.
STAFF = problems.AUTHENTICATED  # the refusals of any route that reads a token
# What a citizen's access code may be answered with.
ACCESS_CODE = (CODES["ticket.not_found"], CODES["ticket.code_malformed"], CODES["ticket.too_many_wrong_codes"],
               CODES["ticket.more_proof_needed"], CODES["ticket.contact_tail_malformed"])
CODE_QUERY = "the access code printed on the citizen's receipt (9 letters and digits; 6 on older receipts)"
TAIL_QUERY = ("the last four characters of the phone the citizen gave at filing (else of the id number): "
              "asked for only when the ticket is under attack (`ticket.more_proof_needed`)")
ContactTail = Annotated[str | None, Query(max_length=12, json_schema_extra=models.ContactTailSchema,
                                          description=TAIL_QUERY)]


def citizen_proof(request: Request, contact_tail: str | None) -> flows.CitizenProof:
    """Where the citizen asks from (the console forwards their address: TOWNFLOW_HTTP_FORWARDED_ALLOW_IPS)."""
    return flows.CitizenProof(request.client.host if request.client is not None else "unknown", contact_tail)
# The path's ticket number: a malformed one is a 422 (`value.malformed`), a well-formed one that
# names no matter a 404 with the route's own code.
TicketInPath = Annotated[models.TicketNumber, Path()]


FILING_REFUSALS = (
    *STAFF, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_YOURS, problems.TOWN_REQUIRED, problems.INVALID, CODES["item.unknown"], CODES["filing.village_unknown"],
    CODES["filing.channel_field_missing"], CODES["filing.proxy_agent_unknown"], CODES["filing.target_missing"], CODES["citizen.contact_missing"], CODES["citizen.phone_malformed"],
    CODES["citizen.id_number_malformed"], CODES["idempotency.key_reused"], CODES["filing.citizen_ref_key_unset"],
    CODES["filing.point_not_located"], CODES["filing.point_outside_town"], CODES["filing.point_no_map"],
    CODES["filing.village_contradicts_point"], CODES["filing.village_missing"])


@router.post("/v1/requests", status_code=201, response_model=models.Filed, responses=responses(*FILING_REFUSALS))
async def file_request(
    body: models.FileRequest,
    deps: Dependencies,
    principal: Annotated[Principal, Depends(require(*FILERS))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """File a citizen's matter: its ticket number and access code, and the open matters it may
    repeat. The same Idempotency-Key with the same body answers as the first time."""
    status, answer = await flows.file_request(deps, principal, flows.FileMatter(body, idempotency_key))
    return JSONResponse(answer, status_code=status)


PHOTO_FILE, PHOTO_REFUSALS = shared_attachments.PHOTO_FILE, shared_attachments.PHOTO_REFUSALS


@router.post("/v1/filings", status_code=201, response_model=models.Filed, responses=responses(
    *FILING_REFUSALS, *PHOTO_REFUSALS))
async def file_request_with_photos(
    deps: Dependencies,
    principal: Annotated[Principal, Depends(require(*FILERS))],
    request: Request,
    filing: Annotated[str, json_form_field("the filing", "POST /v1/requests")],
    photos: Annotated[list[UploadFile], File(description=PHOTO_FILE + "; up to the item's `photos_max`")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """File a citizen's matter with photos of it (issue #29), as multipart/form-data: `filing`
    and one `photos` part per photo. Answered as `POST /v1/requests`; a photo at fault is a 422
    naming it (`photos[1]`). The photos are stored cleaned, and the filing's event carries their
    references and digests, never their bytes."""
    body = await form_json(deps.settings, models.FileRequest, "filing", filing)
    status, answer = await attachments.file_with_photos(
        deps, principal, attachments.FileWithPhotos(flows.FileMatter(body, idempotency_key), await read_files(photos)))
    return JSONResponse(answer, status_code=status)


@router.get("/v1/requests/{ticket_no}/photos/{attachment_id}", response_class=Response, responses={
    200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the photo as stored: a JPEG without metadata"},
    **responses(*ACCESS_CODE, problems.TOKEN_INVALID, problems.TOKEN_WITHOUT_TOWN, problems.AUTH_NOT_CONFIGURED,
                attachments.NOT_FOUND, attachments.STORAGE_UNAVAILABLE)},
    openapi_extra={"security": [{}]})
async def read_photo(
    ticket_no: TicketInPath,
    attachment_id: uuid.UUID,
    deps: Dependencies,
    principal: Annotated[Principal | None, Depends(optional_principal)],
    request: Request,
    variant: Annotated[Literal["photo", "thumbnail"], Query(description="the photo (≤ 2048 px) or its thumbnail")] = "photo",
    code: Annotated[str | None, Query(max_length=24, json_schema_extra=models.AccessCodeSchema,
                                      description=CODE_QUERY + "; where the town shows citizens their photos")] = None,
    contact_tail: ContactTail = None,
) -> Response:
    """A photo of a matter, for the town's staff who read matters, or for the citizen with the
    access code where the town shows citizens their photos; every read recorded. Streamed from
    here: no URL to the object store is handed out."""
    data, content_type = await attachments.read_photo(deps, principal, attachments.ReadPhoto(
        ticket_no, attachment_id, variant, code, citizen_proof(request, contact_tail)))
    return Response(data, media_type=content_type, headers={
        "Cache-Control": "private, no-store", "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff"})


@router.get("/v1/requests/{ticket_no}", response_model=models.RequestStatus, response_model_exclude_unset=True,
            responses=responses(*ACCESS_CODE, problems.TOKEN_INVALID, problems.TOKEN_WITHOUT_TOWN, problems.AUTH_NOT_CONFIGURED),
            # The citizen reads with the access code and no token: the bearer token is optional.
            openapi_extra={"security": [{}]})
async def request_status(
    ticket_no: TicketInPath,
    deps: Dependencies,
    principal: Annotated[Principal | None, Depends(optional_principal)],
    request: Request,
    code: Annotated[str | None, Query(max_length=24, json_schema_extra=models.AccessCodeSchema,
                                      description=CODE_QUERY + "; not needed with a staff token that reads "
                                      "the ticket's town")] = None,
    contact_tail: ContactTail = None,
) -> models.RequestStatus:
    """The status timeline, for the citizen with the ticket's access code (no token), or for a
    staff token that reads the ticket's town. Ticket numbers are guessable: without either the
    answer is `ticket.not_found`, the same as for a ticket that does not exist; guessing is
    limited per address (`ticket.too_many_wrong_codes`, with Retry-After), and a ticket under
    attack asks for `contact_tail` too (`ticket.more_proof_needed`)."""
    return await flows.read_status(deps, principal,
                                   flows.ReadStatus(ticket_no, code, citizen_proof(request, contact_tail)))


@router.post("/v1/requests/{ticket_no}/rating", response_model=models.Rated,
             responses=responses(*ACCESS_CODE, CODES["rating.already_given"], CODES["rating.not_completed"]))
async def rate_request(ticket_no: TicketInPath, body: models.RatingBody, deps: Dependencies, request: Request,
                       code: Annotated[str, Query(max_length=24, json_schema_extra=models.AccessCodeSchema,
                                              description=CODE_QUERY)],
                       contact_tail: ContactTail = None) -> models.Rated:
    """The citizen rates the outcome: once, after completion, with the ticket's access code."""
    return await flows.rate(deps, None, flows.RateMatter(ticket_no, code, body.rating,
                                                         citizen_proof(request, contact_tail)))


MERGE_SIDES = (problems.TOWN_NOT_YOURS, CODES["merge.ticket_not_found"])


@router.post("/v1/requests/{ticket_no}/merge", response_model=models.Merged, responses=responses(
    *STAFF, *MERGE_SIDES, CODES["merge.into_unknown"], CODES["merge.into_itself"], CODES["merge.other_town"], CODES["merge.already_merged"], CODES["merge.has_merged_matters"], CODES["merge.not_open"],
    CODES["merge.primary_merged"], CODES["merge.primary_closed"]))
async def merge_request(ticket_no: TicketInPath, body: models.MergeBody, deps: Dependencies,
                        principal: Annotated[Principal, Depends(require(*MERGERS))]) -> models.Merged:
    """重复件: the command centre merges this matter into another of its town (the primary); its
    task closes as `merged` and its citizen follows the primary's progress (SPEC §10)."""
    return await flows.merge(deps, principal, flows.MergeMatter(ticket_no, body.into))


@router.post("/v1/requests/{ticket_no}/unmerge", response_model=models.Unmerged,
             responses=responses(*STAFF, *MERGE_SIDES, CODES["unmerge.not_merged"], CODES["unmerge.primary_closed"]))
async def unmerge_request(ticket_no: TicketInPath, deps: Dependencies,
                          principal: Annotated[Principal, Depends(require(*MERGERS))]) -> models.Unmerged:
    """Undo a merge while the primary is not closed (SPEC §10): the matter's task reopens."""
    return await flows.unmerge(deps, principal, flows.UnmergeMatter(ticket_no))


@router.get("/v1/catalog", response_model=list[models.CatalogEntry],
            responses=responses(*STAFF, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_FOUND, problems.TOWN_REQUIRED))
async def catalog(deps: Dependencies, principal: Annotated[Principal, Depends(require())],
                  town: Annotated[models.TownCode | None, Query(description=(
                      "the town whose catalog (required of county roles in a county); "
                      "a town's staff read their own"))] = None) -> list[models.CatalogEntry]:
    return flows.catalog(deps, principal, town)


@router.get("/v1/tasks/{task_id}/matter", response_model=models.Matter,
            responses=responses(*STAFF, CODES["matter.not_found"], problems.INVALID))
async def task_matter(task_id: Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL_PATTERN, description=(
                          "a task's id (dispatch's); a task intake has not seen dispatched is no matter (404)"))],
                      deps: Dependencies, principal: Annotated[Principal, Depends(require(*MATTER_READERS))],
                      ) -> models.Matter:
    """The matter of a task, in front of its handler: what was asked, where, the channel, item and
    village, who filed it. The citizen's name and phone only for the assignee of an open task of
    the matter, that task's module leader, and the command centre; each such read is recorded (who,
    as what, when, which matter and task). Keyed by the task, so a task's page asks dispatch and
    intake at once. Another town's matter is `matter.not_found`, as one that does not exist."""
    return await flows.read_matter(deps, principal, flows.ReadMatter(task_id))


@router.get("/v1/personal-data-reads", response_model=models.PersonalDataReads, responses=responses(
    *STAFF, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_FOUND, problems.TOWN_REQUIRED, problems.INVALID))
async def personal_data_reads(
    deps: Dependencies, principal: Annotated[Principal, Depends(require(*READ_RECORD_READERS))],
    town: Annotated[models.TownCode | None, Query(description="the town (county roles); a town's staff read their own")] = None,
    period: Annotated[models.Period | None, Query(description="YYYY-MM on the town's clock; default every read")] = None,
    staff: Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_NUL_PATTERN,
                                       description="one staff member's reads")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> models.PersonalDataReads:
    """Who read citizens' personal data (the appraisal office): newest first, a page at a time."""
    return await flows.personal_data_reads(deps, principal, flows.ReadRecord(town, period, staff, limit, offset))


@router.get("/v1/requests/{ticket_no}/sms", response_model=list[models.SmsMessage], responses=responses(
    *STAFF, problems.INVALID, CODES["sms.ticket_not_found"]))
async def sms_log(deps: Dependencies, ticket_no: TicketInPath,
                  principal: Annotated[Principal, Depends(require(*flows.READ_BY_TOKEN))],
                  ) -> list[models.SmsMessage]:
    """The SMS to the matter's citizen (issue #31): each message's kind, status, attempts and why it
    waits, failed or was skipped, for the town's clerks and command centre. Never the phone or the
    text (the status page shows the citizen what the texts said)."""
    return await flows.sms_log(deps, principal, ticket_no)
