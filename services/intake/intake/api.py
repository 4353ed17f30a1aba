"""Intake's HTTP API (SPEC §5.2): validate → rules → store + outbox, in one transaction.

In a county (SPEC §8) every call is about one town: a filing goes to the caller's town (a
county_admin names it), a ticket number names its town, the catalog is a town's."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from townflow_shared.auth import Principal, optional_principal, require, town_to_act, town_to_read
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
from townflow_shared.town import Town

from . import flows, rules, store

router = APIRouter(tags=["requests"])
FILERS = ("clerk", "proxy_agent", "village_station", "command_centre")
# Read a ticket by token, without its code (county_reader too, for reading); of those, the
# citizen's personal data only for these (a county department never sees it, SPEC §1).
READ_BY_TOKEN = SEES_PERSONAL_DATA = ("clerk", "command_centre")


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
    town_code: str | None = Field(
        default=None, min_length=1, max_length=20,
        description="the town filed in: required of county_admin; a town's staff file in their own town")


class PossibleDuplicate(BaseModel):
    ticket_no: str
    item_code: str
    village: str
    status: str
    filed_at: str
    reason: str = Field(description="same_target, or similar_location (same item and village)")
    location_similarity: float


class Filed(BaseModel):
    request_id: str
    ticket_no: str
    access_code: str
    colour: Colour
    status: str
    possible_duplicates: list[PossibleDuplicate] = Field(
        default_factory=list, description="重复件: open matters of the town this one may repeat, newest first, at most 10 (SPEC §10)")


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: str = Field(min_length=1, max_length=40, description="the primary matter's ticket number")


class RatingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: Rating


def _citizen_key(runtime: ServiceRuntime) -> bytes:
    key = getattr(runtime.settings, "citizen_ref_key", None)
    if key is None:
        raise HTTPException(503, detail="TOWNFLOW_CITIZEN_REF_KEY is not set")
    return key.get_secret_value().encode()


def _served(runtime: ServiceRuntime) -> str:
    return ", ".join(f"{t.code} {t.info.name}" for t in runtime.county.towns.values())


def _named_town(runtime: ServiceRuntime, code: str, field: str, where: str) -> Town:
    town = runtime.county.town(code)
    if town is None:
        raise unprocessable([(field, f"unknown town {code!r}; this deployment serves {_served(runtime)}")],
                            where=where)
    return town


def _callers_town(runtime: ServiceRuntime, principal: Principal, field: str, where: str) -> Town:
    """The town of a town's staff; for county roles, the only town of a one-town deployment, else
    the caller must name one (422 naming `field`)."""
    if principal.town is not None:
        town = runtime.county.town(principal.town)
        if town is None:
            raise HTTPException(403, detail=f"your token is for town {principal.town}, "
                                            "which this deployment does not serve")
        return town
    only = runtime.county.only_town
    if only is None:
        raise unprocessable([(field, f"county roles name the town: one of {_served(runtime)}")], where=where)
    return only


def filer_scope(principal: Principal) -> str:
    """Whose Idempotency-Keys these are within a town: county staff ids are not the towns' own."""
    return f"county:{principal.sub}" if principal.county_wide else principal.sub


@router.post("/v1/requests", status_code=201, response_model=Filed,
             responses={422: {"description": "an invalid field, named in detail[].loc"},
                        403: {"description": "a town's staff filing in another town"}})
async def file_request(
    body: FileRequest,
    runtime: Runtime,
    principal: Annotated[Principal, Depends(require(*FILERS))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    if body.town_code is not None:
        town = _named_town(runtime, body.town_code, "town_code", "body")
        town_to_act(principal, town.code)
    else:
        town = _callers_town(runtime, principal, "town_code", "body")
    item = town.catalog.get(body.item_code)
    if item is None:
        suggestions = [{"code": i.code, "name": i.name} for i in rules.closest_items(body.item_code, town)]
        raise unprocessable([("item_code", f"unknown item code {body.item_code!r} in {town.info.name}")],
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
        town=town, filed_by=principal.sub, filer_scope=filer_scope(principal),
        idempotency_key=idempotency_key,
        # The key is the town's already: named or not, a retry is the same filing.
        fingerprint=hashlib.sha256(body.model_dump_json(exclude={"town_code"}).encode()).hexdigest(),
        item=item, requested_colour=body.colour,
        citizen_ref=rules.citizen_ref(_citizen_key(runtime), body.citizen.id_number, body.citizen.phone),
        fields=fields, trace_headers=current_trace_headers())
    # Written with the filings that arrive meanwhile, in one transaction (see flows).
    status, answer = await flows.filing_writer(runtime).submit(filing)
    return JSONResponse(answer, status_code=status)


NOT_FOUND = "no such ticket, or the access code does not match"


def _wrong_codes_per_hour(runtime: ServiceRuntime, ticket_no: str) -> int:
    """The limit of the town the ticket names; for a town this deployment does not serve (no such
    ticket can exist), the strictest of its towns."""
    town = runtime.county.town(rules.town_of_ticket(ticket_no))
    towns = [town] if town is not None else list(runtime.county.towns.values())
    return min(t.rules.intake.wrong_codes_per_hour for t in towns)


async def _require_access_code(runtime: ServiceRuntime, ticket_no: str, code: str) -> None:
    """The citizen's code for the ticket, else 404 (the same as for a ticket that does not exist).
    A malformed code is a 422; after too many wrong codes within the hour, 429 with Retry-After,
    for every caller who does not read the ticket by token and whatever the code (SPEC §6.1). The
    guard is per ticket, whichever town it names."""
    given = rules.normalise_access_code(code)
    if given is None:
        raise unprocessable([("code", "an access code is the 6 letters and digits printed on the receipt")],
                            where="query")
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        recent = rules.recent_wrong_codes(await store.wrong_codes_for_update(conn, ticket_no), now)
        wait = rules.guessing_wait(recent, now, _wrong_codes_per_hour(runtime, ticket_no))
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
    """The status timeline. Ticket numbers are guessable: without the access code (or a token that
    reads the ticket's town) the answer is 404, the same as for a ticket that does not exist;
    guessing is limited. The ticket number names its town: another town's staff need its code."""
    town_code = rules.town_of_ticket(ticket_no)
    by_token = (principal is not None and principal.has_any(READ_BY_TOKEN, reading=True)
                and principal.may_read(town_code))
    if not by_token:
        if code is None:
            raise HTTPException(404, detail=NOT_FOUND)
        await _require_access_code(runtime, ticket_no, code)
    row = await store.request_by_ticket(runtime.pool, ticket_no)
    if row is None:
        raise HTTPException(404, detail=NOT_FOUND)
    personal = by_token and principal is not None and principal.has_any(SEES_PERSONAL_DATA)
    primary = await store.request_by_id(runtime.pool, row["merged_into"]) if row["merged_into"] else None
    town = runtime.county.town(row["town_code"])
    item = town.catalog.get(row["item_code"]) if town is not None else None
    result: dict[str, Any] = {
        "ticket_no": row["ticket_no"], "request_id": str(row["request_id"]), "town_code": row["town_code"],
        "item_code": row["item_code"], "item_name": item.name if item else None,
        "channel": row["channel"], "colour": row["colour"], "status": row["status"],
        "village": row["village"], "filed_at": row["filed_at"].isoformat(),
        "rating": row["rating"],
        "timeline": [{"at": t["at"].isoformat(), "step": t["step"], "detail": t["detail"]}
                     for t in await store.timeline_of(runtime.pool, row["request_id"])],
    }
    if primary is not None:  # 重复件: the citizen follows the primary's progress (no one's personal data)
        result["status"] = primary["status"]
        result["merged_into"] = {
            "ticket_no": primary["ticket_no"], "status": primary["status"],
            "timeline": [{"at": t["at"].isoformat(), "step": t["step"], "detail": t["detail"]}
                         for t in await store.timeline_of(runtime.pool, primary["request_id"])]}
    if personal:
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
        primary = await store.request_by_id(conn, row["merged_into"]) if row["merged_into"] else None
        # A merged matter's outcome is its primary's (SPEC §10).
        status = primary["status"] if primary is not None else row["status"]
        refusal = rules.may_rate(status, row["rating"] is not None)
        if refusal:
            raise HTTPException(409, detail=refusal)
        await store.save_rating(conn, row["request_id"], body.rating, now)
        await store.add_timeline(conn, row["request_id"], now, "rated", {"rating": body.rating}, None)
        await enqueue(conn, new_event(
            RequestRated,
            RequestRatedData(request_id=str(row["request_id"]), ticket_no=ticket_no,
                             rating=body.rating, rated_at=now),
            source="intake", town_code=row["town_code"], subject=str(row["request_id"]),
            correlation_id=str(row["request_id"]), time=now))
    return {"ticket_no": ticket_no, "rating": body.rating, "rated_at": now.isoformat()}


MERGERS = ("command_centre",)


async def _merge_side(conn: asyncpg.Connection, principal: Principal, ticket_no: str, field: str) -> asyncpg.Record:
    """A matter a merge names, locked once the caller may act in its town (another town's: 403,
    as the town is in the ticket number anyway). Missing: 404 for the path, 422 for `into`."""
    town_to_act(principal, rules.town_of_ticket(ticket_no))
    row = await store.merge_side_for_update(conn, ticket_no)
    if row is None:
        if field == "into":
            raise unprocessable([("into", f"no matter with ticket number {ticket_no!r}")])
        raise HTTPException(404, detail="no such ticket")
    return row


def _side(row: asyncpg.Record) -> rules.MergeSide:
    return rules.MergeSide(row["ticket_no"], row["town_code"], row["status"], row["primary_ticket_no"],
                           int(row["followers"]))


@router.post("/v1/requests/{ticket_no}/merge",
             responses={409: {"description": "a state that refuses the merge, named in detail"},
                        422: {"description": "`into` unknown, the matter itself, or another town's"}})
async def merge_request(ticket_no: str, body: MergeBody, runtime: Runtime,
                        principal: Annotated[Principal, Depends(require(*MERGERS))]) -> dict[str, Any]:
    """重复件: the command centre merges this matter into another of its town (the primary); its
    task closes as `merged` and its citizen follows the primary's progress (SPEC §10)."""
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        # Locked in ticket order, so two merges naming the same two matters cannot deadlock.
        first, second = sorted([(ticket_no, "ticket_no"), (body.into, "into")])
        rows = {field: await _merge_side(conn, principal, t, field) for t, field in (first, second)}
        merged, into = rows["ticket_no"], rows["into"]
        link_to(merged["trace_headers"])
        if refusal := rules.merge_refusal(_side(merged), _side(into)):
            status, field, why = refusal
            if status == 422:
                raise unprocessable([(field, why)])
            raise HTTPException(status, detail=why)
        await flows.record_merge(conn, merged=merged, into_request_id=into["request_id"],
                                 into_ticket_no=into["ticket_no"], by=principal.sub, now=now)
    return {"ticket_no": ticket_no, "merged_into": into["ticket_no"], "merged_at": now.isoformat()}


@router.post("/v1/requests/{ticket_no}/unmerge", responses={409: {"description": "not merged, or the primary closed"}})
async def unmerge_request(ticket_no: str, runtime: Runtime,
                          principal: Annotated[Principal, Depends(require(*MERGERS))]) -> dict[str, Any]:
    """Undo a merge while the primary is not closed (SPEC §10): the matter's task reopens."""
    now = runtime.clock.now()
    async with transaction(runtime.pool) as conn:
        merged = await _merge_side(conn, principal, ticket_no, "ticket_no")
        link_to(merged["trace_headers"])
        if refusal := rules.unmerge_refusal(merged["primary_ticket_no"], merged["primary_status"]):
            raise HTTPException(409, detail=refusal)
        await flows.record_merge(conn, merged=merged, into_request_id=merged["merged_into"],
                                 into_ticket_no=merged["primary_ticket_no"], by=principal.sub, now=now,
                                 reversed_=True)
    return {"ticket_no": ticket_no, "unmerged_from": merged["primary_ticket_no"], "unmerged_at": now.isoformat()}


@router.get("/v1/catalog", responses={422: {"description": "county roles: `town` missing or unknown"}})
async def catalog(runtime: Runtime, principal: Annotated[Principal, Depends(require())],
                  town: Annotated[str | None, Query(max_length=20, description=(
                      "the town whose catalog (required of county roles in a county); "
                      "a town's staff read their own"))] = None) -> list[dict[str, Any]]:
    if town is not None:
        chosen = _named_town(runtime, town, "town", "query")
        town_to_read(principal, chosen.code)
    else:
        chosen = _callers_town(runtime, principal, "town", "query")
    return [item.model_dump(include={"code", "name", "kind", "time_limit", "default_colour",
                                     "legal_basis", "delegated", "department", "joint_units"})
            | {"task_kind": item.task_kind}
            for item in chosen.catalog.values()]
