"""Intake's HTTP API (SPEC §5.2): validate → rules → store + outbox, in one transaction."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from townflow_shared.auth import Principal, optional_principal, require
from townflow_shared.db import transaction
from townflow_shared.events import (
    Channel,
    Colour,
    Rating,
    RequestRated,
    RequestRatedData,
    new_event,
)
from townflow_shared.http import Runtime, unprocessable
from townflow_shared.outbox import enqueue
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.telemetry import current_trace_headers, link_to

from . import flows, rules, store

router = APIRouter(tags=["requests"])
FILERS = ("clerk", "proxy_agent", "village_station", "command_centre")
SEES_PERSONAL_DATA = ("clerk", "command_centre")


class Citizen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=50)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 \-]{4,19}$")
    id_number: str | None = Field(default=None, pattern=r"^\d{17}[\dXx]$")

    @model_validator(mode="after")
    def _identifiable(self) -> Citizen:
        if not self.phone and not self.id_number:
            raise ValueError("give the citizen's phone or id_number")
        return self


class FileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Channel
    item_code: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1, max_length=2000)
    village: str = Field(min_length=1, max_length=40)
    location: str = Field(min_length=1, max_length=200)
    target: str | None = Field(default=None, min_length=1, max_length=64)
    colour: Colour | None = None
    citizen: Citizen
    proxy_agent_id: str | None = Field(default=None, min_length=1, max_length=40)
    village_record_id: str | None = Field(default=None, min_length=1, max_length=64)


class Filed(BaseModel):
    request_id: str
    ticket_no: str
    access_code: str
    colour: Colour
    status: str


class RatingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: Rating


def _citizen_key(runtime: ServiceRuntime) -> bytes:
    key = getattr(runtime.settings, "citizen_ref_key", None)
    if key is None:
        raise HTTPException(503, detail="TOWNFLOW_CITIZEN_REF_KEY is not set")
    return key.get_secret_value().encode()


@router.post("/v1/requests", status_code=201, response_model=Filed,
             responses={422: {"description": "an invalid field, named in detail[].loc"}})
async def file_request(
    body: FileRequest,
    runtime: Runtime,
    principal: Annotated[Principal, Depends(require(*FILERS))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    town = runtime.town
    item = town.catalog.get(body.item_code)
    if item is None:
        suggestions = [{"code": i.code, "name": i.name} for i in rules.closest_items(body.item_code, town)]
        raise unprocessable([("item_code", f"unknown item code {body.item_code!r}")],
                            suggestions=suggestions)
    problems = rules.filing_problems(
        town=town, item=item, channel=body.channel, village=body.village, target=body.target,
        proxy_agent_id=body.proxy_agent_id, village_record_id=body.village_record_id)
    if problems:
        raise unprocessable(problems)
    fields = body.model_dump(include={"channel", "description", "village", "location", "target",
                                      "proxy_agent_id", "village_record_id"})
    fields |= {"citizen_name": body.citizen.name, "citizen_phone": body.citizen.phone,
               "citizen_id_number": body.citizen.id_number}
    filing = flows.Filing(
        filed_by=principal.sub, idempotency_key=idempotency_key,
        fingerprint=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
        item=item, requested_colour=body.colour,
        citizen_ref=rules.citizen_ref(_citizen_key(runtime), body.citizen.id_number, body.citizen.phone),
        fields=fields, trace_headers=current_trace_headers())
    # Written with the filings that arrive meanwhile, in one transaction (see flows).
    status, answer = await flows.filing_writer(runtime).submit(filing)
    return JSONResponse(answer, status_code=status)


NOT_FOUND = "no such ticket, or the access code does not match"


async def _require_access_code(runtime: ServiceRuntime, ticket_no: str, code: str) -> None:
    """The citizen's code for the ticket, else 404 (the same as for a ticket that does not exist).
    A malformed code is a 422; after too many wrong codes within the hour, 429 with Retry-After,
    for every caller without a clerk token and whatever the code (SPEC §6.1)."""
    given = rules.normalise_access_code(code)
    if given is None:
        raise unprocessable([("code", "an access code is the 6 letters and digits printed on the receipt")],
                            where="query")
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        recent = rules.recent_wrong_codes(await store.wrong_codes_for_update(conn, ticket_no), now)
        wait = rules.guessing_wait(recent, now, runtime.town.rules.intake.wrong_codes_per_hour)
        if wait is not None:
            raise HTTPException(429, detail="too many wrong access codes for this ticket; try again later",
                                headers={"Retry-After": str(wait)})
        issued = await store.access_code_of(conn, ticket_no)
        if issued is not None and rules.codes_match(issued, given):
            return
        await store.save_wrong_codes(conn, ticket_no, [*recent, now])
    raise HTTPException(404, detail=NOT_FOUND)


@router.get("/v1/requests/{ticket_no}")
async def request_status(
    ticket_no: str,
    runtime: Runtime,
    principal: Annotated[Principal | None, Depends(optional_principal)],
    code: Annotated[str | None, Query(max_length=12)] = None,
) -> dict[str, Any]:
    """The status timeline. Ticket numbers are guessable: without the access code (or a clerk
    token) the answer is 404, the same as for a ticket that does not exist; guessing is limited."""
    staff_view = principal is not None and principal.has_any(SEES_PERSONAL_DATA)
    if not staff_view:
        if code is None:
            raise HTTPException(404, detail=NOT_FOUND)
        await _require_access_code(runtime, ticket_no, code)
    row = await store.request_by_ticket(runtime.pool, ticket_no)
    if row is None:
        raise HTTPException(404, detail=NOT_FOUND)
    item = runtime.town.catalog.get(row["item_code"])
    result: dict[str, Any] = {
        "ticket_no": row["ticket_no"], "request_id": str(row["request_id"]),
        "item_code": row["item_code"], "item_name": item.name if item else None,
        "channel": row["channel"], "colour": row["colour"], "status": row["status"],
        "village": row["village"], "filed_at": row["filed_at"].isoformat(),
        "rating": row["rating"],
        "timeline": [{"at": t["at"].isoformat(), "step": t["step"], "detail": t["detail"]}
                     for t in await store.timeline_of(runtime.pool, row["request_id"])],
    }
    if staff_view:
        result["citizen"] = {"name": row["citizen_name"], "phone": row["citizen_phone"],
                             "id_number": row["citizen_id_number"]}
        result["description"] = row["description"]
        result["location"] = row["location"]
    return result


@router.post("/v1/requests/{ticket_no}/rating")
async def rate_request(ticket_no: str, body: RatingBody, runtime: Runtime,
                       code: Annotated[str, Query(max_length=12)]) -> dict[str, Any]:
    """The citizen rates the outcome: once, after completion, with the ticket's access code."""
    await _require_access_code(runtime, ticket_no, code)  # before any row is locked
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        row = await store.request_for_update(conn, ticket_no)
        if row is None:
            raise HTTPException(404, detail=NOT_FOUND)
        link_to(row["trace_headers"])
        refusal = rules.may_rate(row["status"], row["rating"] is not None)
        if refusal:
            raise HTTPException(409, detail=refusal)
        await store.save_rating(conn, row["request_id"], body.rating, now)
        await store.add_timeline(conn, row["request_id"], now, "rated", {"rating": body.rating}, None)
        await enqueue(conn, new_event(
            RequestRated,
            RequestRatedData(request_id=str(row["request_id"]), ticket_no=ticket_no,
                             rating=body.rating, rated_at=now),
            source="intake", town_code=runtime.town.code, subject=str(row["request_id"]),
            correlation_id=str(row["request_id"]), time=now))
    return {"ticket_no": ticket_no, "rating": body.rating, "rated_at": now.isoformat()}


@router.get("/v1/catalog")
async def catalog(runtime: Runtime, _: Annotated[Principal, Depends(require())]) -> list[dict[str, Any]]:
    return [item.model_dump(include={"code", "name", "kind", "time_limit", "default_colour",
                                     "legal_basis", "delegated", "department", "joint_units"})
            | {"task_kind": item.task_kind}
            for item in runtime.town.catalog.values()]


