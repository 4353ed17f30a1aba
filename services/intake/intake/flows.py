"""Intake's command handlers (SPEC §5.2, §6.1, §10): each takes `(deps, actor, command)`, works in
one unit of work (`store.UnitOfWork`: the store's operations and the outbox, one transaction) and
returns its result, or raises a refusal from `refusals`. The event handlers' flows (`follow_*`, at
the end) take the unit of work they run in: the consumer's transaction, which holds the event's
inbox row.

Filings are written a batch at a time: `file_request` validates a filing and hands it to the
service's `GroupCommit` (`Deps.filing_writer`); the filings that wait together are written by
`file_requests` in one transaction: idempotency keys claimed, ticket numbers and then repeat
counts, the requests with their first timeline step, the `intake.request.filed` events into the
outbox (each with its own request's trace), the idempotent answers saved. Each filing gets its
own answer: (status, body) or the refusal meant for it. A batch may hold filings of several towns
of a county (SPEC §8): each is numbered, counted for the repeat rule and keyed within its own town.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from townflow_shared import audit_trail, events, promises
from townflow_shared.attachments import reference as attachment_ref
from townflow_shared.auth import Principal
from townflow_shared.checks import present
from townflow_shared.clock import Clock
from townflow_shared.county import County
from townflow_shared.events import new_event
from townflow_shared.group_commit import GroupCommit
from townflow_shared.objects import ObjectStore
from townflow_shared.privacy import mask_personal_numbers
from townflow_shared.problems import TOWN_REQUIRED, Refusal
from townflow_shared.scope import town_of_event, town_of_new_record, town_of_record, towns_to_read
from townflow_shared.telemetry import current_trace_headers, link_to
from townflow_shared.town import CatalogItem, Town

from . import models, personal_data, rules, sms
from .personal_data import CitizenSealer, Keyring
from .refusals import CODES
from .settings import IntakeSettings
from .store import IntakeStore, Row, UnitOfWork, UnitOfWorkFactory

Answer = tuple[int, dict[str, Any]]

FILERS = ("clerk", "proxy_agent", "village_station", "command_centre")
# Read a ticket by token, without its code (county_reader too, for reading); of those, the
# citizen's personal data only for these (a county department never sees it, SPEC §1).
READ_BY_TOKEN = SEES_PERSONAL_DATA = ("clerk", "command_centre")
MERGERS = ("command_centre",)


@dataclass(frozen=True)
class Filing:
    """A validated filing waiting to be written, in its town."""

    town: Town
    filed_by: str
    filer_scope: str  # whose Idempotency-Keys these are within the town (see filer_scope)
    idempotency_key: str | None
    fingerprint: str
    item: CatalogItem
    requested_colour: events.Colour | None
    citizen_ref: str
    fields: dict[str, Any]  # the request's columns that come from the body as they are
    trace_headers: dict[str, str]
    audit: audit_trail.Pending | None = None  # the filing request's audit record, written with the batch
    # A filing with photos (attachments.py): its id, chosen before its objects were put under it,
    # and its attachments' rows, written with it.
    request_id: uuid.UUID | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    # Citizens' SMS (issue #31): the citizen's choice at filing (不接收短信), and the filing's message
    # (None: opted out, or the deployment sends none) with the status page's address.
    sms_opt_out: bool = False
    sms_template: str | None = None
    status_url: str = ""

    @property
    def scope_and_key(self) -> tuple[str, str, str] | None:
        """(town, filer, key): a key belongs to the town filed in and its filer."""
        return (self.town.code, self.filer_scope, self.idempotency_key) if self.idempotency_key else None


@dataclass(frozen=True)
class Deps:
    """What intake's command and event handlers are handed, built once by the bootstrap (app.py)."""

    settings: IntakeSettings
    county: County
    clock: Clock
    unit_of_work: UnitOfWorkFactory
    filing_writer: GroupCommit[Filing, Answer]  # the service's one writer of filings
    citizen_ref_key: bytes | None  # the HMAC key of `citizen_ref`; filing refuses with 503 without it
    keyring: Keyring  # seals and opens the citizen's personal data at rest (personal_data.py)
    objects: ObjectStore | None = None  # the deployment's bucket (photos); None: photos are refused


def filing_writer(unit_of_work: UnitOfWorkFactory, clock: Clock, sealer: CitizenSealer,
                  shared_failures: tuple[type[Exception], ...] = (),
                  code_length: int = rules.ACCESS_CODE_LENGTH) -> GroupCommit[Filing, Answer]:
    """The writer of filings: the filings that wait together, in one unit of work, their citizens
    sealed by `sealer` (the keyring), their access codes `code_length` long. A failure in
    `shared_failures` (the bootstrap gives the database's outages) answers the whole batch at once."""

    async def write(filings: Sequence[Filing]) -> list[Answer | BaseException]:
        with audit_trail.batch() as audited:
            async with unit_of_work() as uow:
                answers = await file_requests(uow, filings, clock.now(), sealer, code_length)
                for filing, answer in zip(filings, answers, strict=True):
                    if filing.audit is not None and not isinstance(answer, BaseException):
                        filing.audit.target_type, filing.audit.target_id = "request", str(answer[1].get("ticket_no", ""))
                        audited.append(filing.audit)
            return answers

    return GroupCommit(write, shared_failures=shared_failures)


# --- commands -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileMatter:
    request: models.FileRequest
    idempotency_key: str | None


@dataclass(frozen=True)
class CitizenProof:
    """Beside the access code: the client's address (wrong codes are limited per address) and the
    contact's last four characters, which a ticket under attack asks for."""

    address: str = "unknown"
    contact_tail: str | None = None


@dataclass(frozen=True)
class ReadStatus:
    ticket_no: str
    code: str | None  # the citizen's access code; a token that reads the ticket's town needs none
    proof: CitizenProof | None = None  # where the citizen asks from, and what more they gave


@dataclass(frozen=True)
class RateMatter:
    ticket_no: str
    code: str
    rating: events.Rating
    proof: CitizenProof | None = None


@dataclass(frozen=True)
class MergeMatter:
    ticket_no: str
    into: str


@dataclass(frozen=True)
class UnmergeMatter:
    ticket_no: str


def filer_scope(principal: Principal) -> str:
    """Whose Idempotency-Keys these are within a town: county staff ids are not the towns' own."""
    return f"county:{principal.sub}" if principal.county_wide else principal.sub


async def file_request(deps: Deps, actor: Principal, command: FileMatter) -> Answer:
    """File a citizen's matter in the caller's town (a county_admin names it): (status, body) as
    first answered, for a repeated Idempotency-Key too."""
    # Written with the filings that arrive meanwhile, in one transaction (see file_requests).
    return await deps.filing_writer.submit(validated_filing(deps, actor, command))


def validated_filing(deps: Deps, actor: Principal, command: FileMatter) -> Filing:
    """The filing in its town, checked against the town's records, ready for the filing writer."""
    body = command.request
    town = town_of_new_record(deps.county, actor, body.town_code)
    item = town.catalog.get(body.item_code)
    if item is None:
        raise rules.unknown_item(body.item_code, town)
    place = rules.placed(town=town, item=item, village=body.village,
                         point=(body.point.longitude, body.point.latitude) if body.point else None)
    if isinstance(place, Refusal):
        raise place
    if refusal := rules.filing_refusal(town=town, item=item, village=place.village, target=body.target,
                                       proxy_agent_id=body.proxy_agent_id):
        raise refusal
    if deps.citizen_ref_key is None:
        raise CODES["filing.citizen_ref_key_unset"]()
    fields = body.model_dump(include={"channel", "description", "location", "target",
                                      "proxy_agent_id", "village_record_id"})
    fields |= {"village": place.village, "point": place.point, "grid_cell": place.cell}
    fields |= {"citizen_name": body.citizen.name, "citizen_phone": body.citizen.phone,
               "citizen_id_number": body.citizen.id_number}
    filing = Filing(
        town=town, filed_by=actor.sub, filer_scope=filer_scope(actor), idempotency_key=command.idempotency_key,
        # The key is the town's already: named or not, a retry is the same filing.
        # `sms_opt_out` left out unless set: a body the previous release fingerprinted is the same filing.
        fingerprint=hashlib.sha256(body.model_dump_json(
            exclude={"town_code"} if body.sms_opt_out else {"town_code", "sms_opt_out"}).encode()).hexdigest(),
        item=item, requested_colour=body.colour,
        citizen_ref=rules.citizen_ref(deps.citizen_ref_key, body.citizen.id_number, body.citizen.phone),
        fields=fields, trace_headers=current_trace_headers(), audit=audit_trail.pending(),
        sms_opt_out=body.sms_opt_out,
        sms_template=None if body.sms_opt_out else deps.settings.sms_template("filed"),
        status_url=deps.settings.sms_status_url)
    return filing


def _wrong_codes_per_hour(county: County, ticket_no: str) -> int:
    """The limit of the town the ticket names; for a town this deployment does not serve (no such
    ticket can exist), the strictest of its towns."""
    town = county.town(rules.town_of_ticket(ticket_no))
    towns = [town] if town is not None else list(county.towns.values())
    return min(t.rules.intake.wrong_codes_per_hour for t in towns)


async def check_access_code(deps: Deps, ticket_no: str, code: str, proof: CitizenProof | None = None) -> None:
    """The citizen's code for the ticket, else `ticket.not_found` (the same as for a ticket that
    does not exist). A malformed code is a 422. Guessing is limited per address (SPEC §6.1, issue
    #28): an address that gave `wrong_codes_per_hour` wrong codes within the hour waits (429 with
    Retry-After), the others do not, so a stranger never locks the citizen out. A ticket that saw
    that many wrong codes from more than one address is under attack: the code alone is not
    enough, the contact's last four characters are asked for too (`ticket.more_proof_needed`,
    answered before the code is looked at, so it tells nothing of the code). A wrong code is
    counted in a transaction of its own, committed before the refusal."""
    proof = proof or CitizenProof()
    given = rules.normalise_access_code(code)
    if given is None:
        raise CODES["ticket.code_malformed"]("code")
    tail = rules.normalise_contact_tail(proof.contact_tail) if proof.contact_tail else None
    if proof.contact_tail and tail is None:
        raise CODES["ticket.contact_tail_malformed"]("contact_tail")
    address = rules.address_ref(deps.citizen_ref_key, proof.address)
    allowed = _wrong_codes_per_hour(deps.county, ticket_no)
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        recent = rules.recent_wrong_codes(await uow.store.wrong_codes_for_update(ticket_no), now)
        wait = rules.guessing_wait(recent, address, now, allowed)
        if wait is not None:
            raise CODES["ticket.too_many_wrong_codes"](headers={"Retry-After": str(wait)}, retry_after=wait)
        attacked = rules.under_attack(recent, allowed)
        if attacked and tail is None:
            raise CODES["ticket.more_proof_needed"]("contact_tail")
        issued = await uow.store.request_by_ticket(ticket_no)
        if issued is not None and rules.codes_match(issued["access_code"], given) and (
                not attacked or await _contact_tail_matches(deps, uow.store, issued, tail or "")):
            return
        await uow.store.save_wrong_code(ticket_no, rules.WrongCode(now, address), now - rules.CODE_GUESS_WINDOW)
    raise CODES["ticket.not_found"]()


async def _contact_tail_matches(deps: Deps, store: IntakeStore, request: Row, tail: str) -> bool:
    """The last four of the phone (else the id number) the citizen gave, opened from its sealed row
    (the plaintext of a matter the previous release filed); an erased citizen has none to match."""
    citizen = deps.keyring.citizen_of(request, await store.sealed_citizen(request["request_id"]))
    return citizen is not None and rules.codes_match(rules.contact_tail(citizen.phone, citizen.id_number), tail)


def _steps(rows: list[Row]) -> list[models.Step]:
    return [models.Step(at=t["at"].isoformat(), step=t["step"], detail=t["detail"]) for t in rows]


async def read_status(deps: Deps, actor: Principal | None, command: ReadStatus) -> models.RequestStatus:
    """The status timeline. Ticket numbers are guessable: without the access code (or a token that
    reads the ticket's town) the answer is `ticket.not_found`, the same as for a ticket that does
    not exist; guessing is limited. The ticket number names its town: another town's staff need
    its code."""
    town_code = rules.town_of_ticket(command.ticket_no)
    by_token = (actor is not None and actor.has_any(READ_BY_TOKEN, reading=True) and actor.may_read(town_code))
    if not by_token:
        if command.code is None:
            raise CODES["ticket.not_found"]()
        await check_access_code(deps, command.ticket_no, command.code, command.proof)
    async with deps.unit_of_work() as uow:
        row = await uow.store.request_by_ticket(command.ticket_no)
        if row is None:
            raise CODES["ticket.not_found"]()
        town = deps.county.town(row["town_code"])
        item = town.catalog.get(row["item_code"]) if town is not None else None
        status = models.RequestStatus(
            ticket_no=row["ticket_no"], request_id=str(row["request_id"]), town_code=row["town_code"],
            item_code=row["item_code"], item_name=item.name if item else None, channel=row["channel"],
            colour=row["colour"], status=row["status"], village=row["village"],
            filed_at=row["filed_at"].isoformat(), rating=row["rating"],
            timeline=_steps(await uow.store.timeline_of(row["request_id"])))
        followed = row
        sees_citizen = by_token and actor is not None and actor.has_any(SEES_PERSONAL_DATA)
        sealed = await uow.store.sealed_citizen(row["request_id"]) if sees_citizen else None
        if row["merged_into"]:  # 重复件: the citizen follows the primary's progress (no one's personal data)
            primary = present(await uow.store.request_by_id(row["merged_into"]), "a merged matter's primary")
            status.status = primary["status"]
            status.merged_into = models.Primary(
                ticket_no=primary["ticket_no"], status=primary["status"],
                timeline=_steps(await uow.store.timeline_of(primary["request_id"])))
            followed = primary
        await tell_the_citizen(deps, uow, status, followed)
        if by_token or (town is not None and town.rules.intake.citizen_sees_photos):
            # The filing's photos, then its task's after photos (issue #29), oldest first.
            photos = [models.PhotoSeen(
                attachment_id=str(p["attachment_id"]), content_type=p["content_type"], size=p["bytes"],
                width=p["width"], height=p["height"], sha256=p["sha256"])
                for p in await uow.store.attachments_of(row["request_id"])]
            photos += [models.PhotoSeen(
                attachment_id=str(p["attachment_id"]), stage=p["stage"], content_type=p["content_type"],
                size=p["bytes"], sha256=p["sha256"], taken_at=p["taken_at"].astimezone(town.calendar.tz).isoformat()
                if town is not None else p["taken_at"].isoformat())
                for p in await uow.store.task_photos_of(row["request_id"])]
            if photos:
                status.photos = photos
    if sees_citizen and actor is not None:
        status.description = row["description"]
        status.location = row["location"]
        citizen = deps.keyring.citizen_of(row, sealed)
        if citizen is not None:  # None: erased after the retention period, nothing personal to record
            status.citizen = models.CitizenSeen(name=citizen.name, phone=citizen.phone, id_number=citizen.id_number)
            await record_status_read(deps, actor, row)
    return status


# --- what the citizen is told (issue #27): the receipt's promise, the answer, who handles it --------
def department_of(town: Town, module: str | None) -> str | None:
    """A module's name as the town calls it (a module gone from the town's files: its code)."""
    if module is None:
        return None
    found = town.modules.get(module)
    return found.name if found is not None else module


def receipt_facts(town: Town, item: CatalogItem, colour: events.Colour, filed_at: datetime) -> dict[str, Any]:
    """What the receipt promises at filing: the date (the deadline dispatch will set from the same
    rules, 承诺办结时限) and the module that will handle it (the item's lead module)."""
    promised = promises.resolve_by(colour, item, filed_at, town.calendar, town.rules.dispatch)
    tz = town.calendar.tz
    return {"filed_at": filed_at.astimezone(tz).isoformat(), "promised_by": promised.astimezone(tz).isoformat(),
            "handling_module": item.lead_module, "department": department_of(town, item.lead_module)}


async def tell_the_citizen(deps: Deps, uow: UnitOfWork, status: models.RequestStatus, followed: Row) -> None:
    """The status read's answer to the citizen, from the matter it follows (its own, or a merged
    matter's primary): where it is, whether it may be rated, the answer once completed, the module
    handling it and the date promised (before dispatch: as the receipt promised)."""
    town = deps.county.town(followed["town_code"])
    answer = await uow.store.answer_of(followed["request_id"]) or {}
    status.stage = rules.citizen_stage(status.status)
    status.may_rate = rules.may_rate(status.status, status.rating is not None) is None
    if rules.reply_shown(status.status) and answer.get("reply"):
        status.reply = answer["reply"]
        status.replied_at = answer["replied_at"].isoformat()
    item = town.catalog.get(followed["item_code"]) if town is not None else None
    status.handling_module = answer.get("handling_module") or (item.lead_module if item else None)
    if town is None:
        return
    status.department = department_of(town, status.handling_module)
    if status.status == "suspended":
        status.promised_by = None  # 挂起: no date runs; resumption promises the new one
    elif answer.get("promised_by") is not None:
        status.promised_by = answer["promised_by"].astimezone(town.calendar.tz).isoformat()
    elif item is not None:
        status.promised_by = receipt_facts(town, item, followed["colour"], followed["filed_at"])["promised_by"]


async def record_answer(uow: UnitOfWork, town: Town, request_id: str, at: datetime, *, reply: str | None = None,
                        module: str | None = None, promised_by: datetime | None = None) -> None:
    """The parts of the citizen's answer an event of dispatch carries, each unless a newer event set it."""
    if reply is not None or module is not None or promised_by is not None:
        await uow.store.save_answer(town.code, uuid.UUID(request_id), at, reply, module, promised_by)


async def rate(deps: Deps, actor: Principal | None, command: RateMatter) -> models.Rated:
    """The citizen rates the outcome: once, after completion, with the ticket's access code. A
    merged matter's outcome is its primary's (SPEC §10)."""
    with audit_trail.preliminary():  # the rating's own transaction, or its refusal, is what is recorded
        await check_access_code(deps, command.ticket_no, command.code, command.proof)  # before any row is locked
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        row = await uow.store.request_for_update(command.ticket_no)
        if row is None:
            raise CODES["ticket.not_found"]()
        link_to(row["trace_headers"])
        primary = await uow.store.request_by_id(row["merged_into"]) if row["merged_into"] else None
        status = primary["status"] if primary is not None else row["status"]
        if refusal := rules.may_rate(status, row["rating"] is not None):
            raise refusal
        await uow.store.save_rating(row["request_id"], command.rating, now)
        await uow.store.add_timeline(row["request_id"], now, "rated", {"rating": command.rating}, None)
        await uow.publish(new_event(
            events.RequestRated,
            events.RequestRatedData(request_id=str(row["request_id"]), ticket_no=command.ticket_no,
                             rating=command.rating, rated_at=now),
            source="intake", town_code=row["town_code"], subject=str(row["request_id"]),
            correlation_id=str(row["request_id"]), time=now))
    return models.Rated(ticket_no=command.ticket_no, rating=command.rating, rated_at=now.isoformat())


def _side_missing(ticket_no: str, field: str) -> Exception:
    """A matter a merge names that does not exist: 404 for the path, 409 for `into` (a body as
    documented that names no matter)."""
    if field == "into":
        return CODES["merge.into_unknown"]("into", ticket=ticket_no)
    return CODES["merge.ticket_not_found"](ticket=ticket_no)


async def _merge_side(deps: Deps, uow: UnitOfWork, actor: Principal, ticket_no: str, field: str) -> Row:
    """A matter a merge names, locked once the caller may act in its town (another town's:
    `town.not_yours`, as the town is in the ticket number anyway)."""
    town_code = rules.town_of_ticket(ticket_no)
    if deps.county.town(town_code) is None:  # no matter of a town not served exists here
        raise _side_missing(ticket_no, field)
    town_of_record(deps.county, actor, town_code, acting=True, not_found=CODES["merge.ticket_not_found"])
    row = await uow.store.merge_side_for_update(ticket_no)
    if row is None:
        raise _side_missing(ticket_no, field)
    return row


def _side(row: Row) -> rules.MergeSide:
    return rules.MergeSide(row["ticket_no"], row["town_code"], row["status"], row["primary_ticket_no"],
                           int(row["followers"]))


async def merge(deps: Deps, actor: Principal, command: MergeMatter) -> models.Merged:
    """重复件: the command centre merges a matter into another of its town (the primary); its task
    closes as `merged` and its citizen follows the primary's progress (SPEC §10)."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        # Locked in ticket order, so two merges naming the same two matters cannot deadlock.
        first, second = sorted([(command.ticket_no, "ticket_no"), (command.into, "into")])
        rows = {field: await _merge_side(deps, uow, actor, t, field) for t, field in (first, second)}
        merged, into = rows["ticket_no"], rows["into"]
        link_to(merged["trace_headers"])
        if refusal := rules.merge_refusal(_side(merged), _side(into)):
            raise refusal
        await record_merge(uow, merged=merged, into_request_id=into["request_id"],
                           into_ticket_no=into["ticket_no"], by=actor.sub, now=now)
    return models.Merged(ticket_no=command.ticket_no, merged_into=into["ticket_no"], merged_at=now.isoformat())


async def unmerge(deps: Deps, actor: Principal, command: UnmergeMatter) -> models.Unmerged:
    """Undo a merge while the primary is not closed (SPEC §10): the matter's task reopens."""
    now = deps.clock.now()
    async with deps.unit_of_work() as uow:
        merged = await _merge_side(deps, uow, actor, command.ticket_no, "ticket_no")
        link_to(merged["trace_headers"])
        if refusal := rules.unmerge_refusal(merged["primary_ticket_no"], merged["primary_status"]):
            raise refusal
        await record_merge(uow, merged=merged, into_request_id=merged["merged_into"],
                           into_ticket_no=merged["primary_ticket_no"], by=actor.sub, now=now, reversed_=True)
    return models.Unmerged(ticket_no=command.ticket_no, unmerged_from=merged["primary_ticket_no"],
                           unmerged_at=now.isoformat())


def catalog(deps: Deps, actor: Principal, named: str | None) -> list[models.CatalogEntry]:
    """A town's catalog: the caller's own; a county role names the town (in a county)."""
    towns = towns_to_read(deps.county, actor, named)
    if len(towns) != 1:
        raise TOWN_REQUIRED("town", towns=sorted(t.code for t in towns))
    return [models.CatalogEntry(
        code=item.code, name=item.name, kind=item.kind, time_limit=item.time_limit,
        default_colour=item.default_colour, legal_basis=item.legal_basis, delegated=item.delegated,
        department=item.department, joint_units=item.joint_units, task_kind=item.task_kind)
        for item in towns[0].catalog.values()]


# --- the matter in front of the handler (issue #27) ------------------------------------------------
# Staff of the town read a matter (`read_matter`); who of them sees the citizen's name and phone is
# `rules.citizen_basis`, from the tasks intake follows (`hold_task`). Every answer with personal
# data is recorded, in the same transaction, as who, as what, when, which matter (never the data).
MATTER_READERS = ("staff", "clerk", "command_centre", "module_leader", "officer", "appraisal_admin")
READ_RECORD_READERS = ("appraisal_admin",)


@dataclass(frozen=True)
class ReadMatter:
    task_id: str  # the task whose page shows its matter: kept with a read of personal data


@dataclass(frozen=True)
class ReadRecord:
    town: str | None
    period: str | None  # YYYY-MM, the town's month; None: every read
    staff_id: str | None
    limit: int
    offset: int


def _holder(row: Row) -> rules.Holder:
    return rules.Holder(assignee=row["assignee"], post=row["post"], lead_module=row["lead_module"],
                        status=row["status"])


def _as_is(text: str) -> str:
    return text


async def read_matter(deps: Deps, actor: Principal, command: ReadMatter) -> models.Matter:
    """The matter for the town's staff: what was asked, where, by which channel, filed by whom;
    the citizen's name and phone only for those `rules.citizen_basis` names, each such read
    recorded. Another town's matter is not found, as one that does not exist."""
    async with deps.unit_of_work() as uow:
        row = await uow.store.request_of_task(command.task_id)
        if row is None:
            raise CODES["matter.not_found"]()
        town = town_of_record(deps.county, actor, row["town_code"], acting=False, not_found=CODES["matter.not_found"])
        holders = await uow.store.holders_of(row["request_id"])
        filed_photos = await uow.store.attachments_of(row["request_id"])  # issue #29: whoever reads the matter sees them
        basis = rules.citizen_basis(actor, town, [_holder(h) for h in holders])
        citizen = deps.keyring.citizen_of(row, await uow.store.sealed_citizen(row["request_id"])) \
            if basis is not None else None
        if citizen is not None:  # an erased citizen is no personal data read
            audit_trail.note_read("matter.citizen_read", "request", row["ticket_no"])
            await uow.store.record_personal_data_read({
                "town_code": town.code, "read_at": deps.clock.now(), "staff_id": actor.sub, "basis": basis,
                "request_id": row["request_id"], "ticket_no": row["ticket_no"], "task_id": command.task_id})
    item = town.catalog.get(row["item_code"])
    village = town.villages.get(row["village"])
    # Free text as the events carry it (a phone typed into it masked), unless the caller sees the citizen.
    shown = _as_is if citizen is not None else mask_personal_numbers
    return models.Matter(
        ticket_no=row["ticket_no"], request_id=str(row["request_id"]), town_code=town.code,
        status=row["status"], colour=row["colour"], channel=row["channel"], item_code=row["item_code"],
        item_name=item.name if item else None, village=row["village"],
        village_name=village.name if village else None, description=shown(row["description"]),
        location=shown(row["location"]), target=row["target"], filed_by=row["filed_by"],
        proxy_agent_id=row["proxy_agent_id"], filed_at=row["filed_at"].astimezone(town.calendar.tz).isoformat(),
        citizen=models.MatterCitizen(name=citizen.name, phone=citizen.phone) if citizen is not None else None,
        citizen_seen_as=basis if citizen is not None else None, photos=[models.PhotoSeen(
            attachment_id=str(p["attachment_id"]), content_type=p["content_type"], size=p["bytes"], width=p["width"],
            height=p["height"], sha256=p["sha256"]) for p in filed_photos])


async def personal_data_reads(deps: Deps, actor: Principal, command: ReadRecord) -> models.PersonalDataReads:
    """The appraisal office's record of who read citizens' personal data: newest first, a page."""
    towns = towns_to_read(deps.county, actor, command.town)
    since = until = None
    if command.period is not None:
        year, month = (int(part) for part in command.period.split("-"))
        tz = towns[0].calendar.tz  # a county's towns keep one clock
        since = datetime(year, month, 1, tzinfo=tz)
        until = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    async with deps.unit_of_work() as uow:
        rows = await uow.store.personal_data_reads([t.code for t in towns], since, until, command.staff_id,
                                                   command.limit + 1, command.offset)
    zones = {t.code: t.calendar.tz for t in towns}
    reads = [models.PersonalDataRead(
        town_code=r["town_code"], read_at=r["read_at"].astimezone(zones[r["town_code"]]).isoformat(),
        staff_id=r["staff_id"], seen_as=r["basis"], ticket_no=r["ticket_no"], task_id=r["task_id"])
        for r in rows[:command.limit]]
    more = len(rows) > command.limit
    return models.PersonalDataReads(reads=reads, next_offset=command.offset + command.limit if more else None)


async def record_status_read(deps: Deps, actor: Principal, row: Row) -> None:
    """A staff token's status read that carried the citizen's personal data (SEES_PERSONAL_DATA),
    recorded like the matter's (`rules.status_reader_role` names the role)."""
    audit_trail.note_read("request.citizen_read", "request", row["ticket_no"])
    async with deps.unit_of_work() as uow:
        await uow.store.record_personal_data_read({
            "town_code": row["town_code"], "read_at": deps.clock.now(), "staff_id": actor.sub,
            "basis": rules.status_reader_role(actor), "request_id": row["request_id"],
            "ticket_no": row["ticket_no"], "task_id": None})


async def hold_task(uow: UnitOfWork, town: Town, task_id: str, request_id: str, at: datetime, status: str,
                    dispatched: events.TaskDispatchedData | None = None) -> None:
    """What intake knows of a task: its holder, post and lead module (from its dispatch) and its
    status, the newer one when events arrive out of order (`rules.newer_task_status`)."""
    current = await uow.store.task_holder_for_update(task_id)
    held: dict[str, Any] = dict(current) if current is not None else {
        "task_id": task_id, "request_id": uuid.UUID(request_id), "town_code": town.code, "assignee": None,
        "post": None, "lead_module": None, "status": None, "status_at": None}
    if dispatched is not None:
        held |= {"assignee": dispatched.assignee, "post": dispatched.post, "lead_module": dispatched.lead_module}
    if rules.newer_task_status(held["status"], held["status_at"], status, at):
        held |= {"status": status, "status_at": at}
    await uow.store.save_task_holder(held)


# --- the filing writer's batch --------------------------------------------------------------------
def _key_reused(fingerprint: str, answer: Answer | BaseException, first_fingerprint: str) -> Answer | BaseException:
    """A repeated Idempotency-Key: the first answer for the same body, else a refusal."""
    if fingerprint != first_fingerprint:
        return CODES["idempotency.key_reused"]("Idempotency-Key")
    return answer


async def file_requests(uow: UnitOfWork, filings: Sequence[Filing], now: datetime,
                        sealer: CitizenSealer, code_length: int = rules.ACCESS_CODE_LENGTH,
                        ) -> list[Answer | BaseException]:
    """Every filing's answer, in order: replayed for a known Idempotency-Key, else a new request."""
    answers: list[Answer | BaseException | None] = [None] * len(filings)
    keys = await _claim_keys(uow.store, filings)
    for i, (fingerprint, answer) in keys.replayed.items():
        answers[i] = _key_reused(filings[i].fingerprint, answer, fingerprint)
    new = [i for i in range(len(filings)) if answers[i] is None and i not in keys.repeated]
    if new:
        answers_of_new = await _file_new(uow, [filings[i] for i in new], now, sealer, code_length)
        for i, answer in zip(new, answers_of_new, strict=True):
            answers[i] = answer
    for i, first in keys.repeated.items():  # after their first, whose answer they repeat
        key = present(filings[first].scope_and_key, "the key of a repeated filing")
        fingerprint, first_answer = keys.stored[key] if key in keys.stored else (
            filings[first].fingerprint, answers[first])
        if first_answer is None:
            raise RuntimeError("the first filing with a repeated key has no answer")
        answers[i] = _key_reused(filings[i].fingerprint, first_answer, fingerprint)
    if any(a is None for a in answers):
        raise RuntimeError("a filing was left without an answer")
    return answers  # type: ignore[return-value]  # none is None, checked above


@dataclass
class _Keys:
    replayed: dict[int, tuple[str, Answer]]      # filing -> (first fingerprint, first answer) from the database
    repeated: dict[int, int]                     # filing -> the earlier filing of this batch with its key
    stored: dict[tuple[str, str, str], tuple[str, Answer]]  # key -> what the database holds


async def _claim_keys(store: IntakeStore, filings: Sequence[Filing]) -> _Keys:
    """An Idempotency-Key answers as it did the first time: from the database, or from the
    first filing of this very batch that carried it."""
    first_with_key: dict[tuple[str, str, str], int] = {}
    repeated: dict[int, int] = {}
    for i, filing in enumerate(filings):
        if (key := filing.scope_and_key) is not None:
            if key in first_with_key:
                repeated[i] = first_with_key[key]
            else:
                first_with_key[key] = i
    if not first_with_key:
        return _Keys({}, repeated, {})
    rows = await store.claim_idempotency_keys(
        [(*key, filings[i].fingerprint) for key, i in first_with_key.items()])
    stored = {
        key: (row["fingerprint"], (row["status"], row["response"])) for key, row in rows.items()}
    replayed = {first_with_key[key]: stored[key] for key in rows}
    return _Keys(replayed, repeated, stored)


async def _file_new(uow: UnitOfWork, filings: Sequence[Filing], now: datetime,
                    sealer: CitizenSealer, code_length: int) -> list[Answer]:
    """New requests: gap-free tickets of each town, then repeat counts within each town that see
    every committed filing, the rows (the citizen sealed), the events."""
    days = [filing.town.calendar.local(now).date() for filing in filings]
    wanted = Counter((filing.town.code, day) for filing, day in zip(filings, days, strict=True))
    last = await uow.store.claim_tickets(dict(wanted))
    next_sequence = {town_day: last[town_day] - count + 1 for town_day, count in wanted.items()}
    earlier = await uow.store.repeat_counts(
        [f.town.code for f in filings], [f.citizen_ref for f in filings], [f.item.code for f in filings],
        [now - timedelta(days=f.town.rules.intake.repeat_filing_window_days) for f in filings])
    in_this_batch: Counter[tuple[str, str, str]] = Counter()
    rows, citizens, outgoing = [], [], []
    places: list[dict[str, Any]] = []  # request_places: the filings with a point (issue #30)
    sms_choices: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []  # the filings' SMS (issue #31), sent by the sender loop
    attachments: list[dict[str, Any]] = []
    answers: list[Answer] = []
    for filing, day, earlier_filings in zip(filings, days, earlier, strict=True):
        town = filing.town
        sequence = next_sequence[(town.code, day)]
        next_sequence[(town.code, day)] += 1
        repeat_key = (town.code, filing.citizen_ref, filing.item.code)
        colour = rules.colour_for(filing.requested_colour, filing.item,
                                  earlier_filings + in_this_batch[repeat_key], town.rules.intake)
        in_this_batch[repeat_key] += 1
        request_id = filing.request_id or uuid.uuid4()
        attachments.extend({**row, "request_id": request_id} for row in filing.attachments)
        ticket_no = rules.ticket_number(town.code, day, sequence)  # the ticket names its town
        access_code = rules.new_access_code(code_length)
        fields = filing.fields
        in_requests, citizen = sealer.sealed(request_id, town.code, fields["citizen_name"], fields["citizen_phone"],
                                             fields["citizen_id_number"])
        if citizen is not None:
            citizens.append(citizen)
        point, cell = fields.get("point"), fields.get("grid_cell")  # a filing made without them: no place
        if point is not None:
            places.append({"request_id": request_id, "town_code": town.code, "item_code": filing.item.code,
                           "filed_at": now, "point": f"SRID=4326;POINT({point[0]!r} {point[1]!r})",  # EWKT
                           "grid_cell": cell})
        rows.append({
            "request_id": request_id, "ticket_no": ticket_no, "access_code": access_code,
            "item_code": filing.item.code, "colour": colour,
            **{k: v for k, v in fields.items()
               if k not in (*personal_data.PLAINTEXT_COLUMNS, "point", "grid_cell")}, **in_requests,
            "citizen_ref": filing.citizen_ref, "filed_by": filing.filed_by,
            "filed_at": now, "status": "filed", "status_at": now, "trace_headers": filing.trace_headers,
        })
        outgoing.append(new_event(
            events.RequestFiled,
            events.RequestFiledData(
                request_id=str(request_id), ticket_no=ticket_no, channel=fields["channel"],
                item_code=filing.item.code, colour=colour,
                # Free text leaves intake masked: a phone typed into it must not reach subscribers.
                description=mask_personal_numbers(fields["description"]),
                village=fields["village"], location=mask_personal_numbers(fields["location"]),
                target=fields["target"],
                citizen_ref=filing.citizen_ref, proxy_agent_id=fields["proxy_agent_id"],
                village_record_id=fields["village_record_id"], filed_at=now,
                attachments=[attachment_ref(row) for row in filing.attachments],
                point=events.Position(longitude=point[0], latitude=point[1]) if point else None,
                grid_cell=cell),
            source="intake", town_code=town.code, subject=str(request_id),
            correlation_id=str(request_id), time=now))
        body: dict[str, Any] = {"request_id": str(request_id), "ticket_no": ticket_no,
                                "access_code": access_code, "colour": colour, "status": "filed",
                                "village": fields["village"], "grid_cell": cell,
                                **receipt_facts(town, filing.item, colour, now)}
        answers.append((201, body))
        sms_choices.append({"request_id": request_id, "town_code": town.code, "opted_out": filing.sms_opt_out})
        if filing.sms_template is not None:
            messages.append(sms.message(
                request_id, town.code, "filed", request_id, filing.sms_template, colour, now,
                {"ticket": ticket_no, "code": access_code, "url": sms.status_address(filing.status_url, ticket_no)}))
    await uow.store.insert_requests(rows, "filed", [{"channel": f.fields["channel"]} for f in filings], citizens,
                                    places)
    await uow.store.save_sms_choices(sms_choices)
    await uow.store.enqueue_sms(messages)
    await uow.store.insert_attachments(attachments)
    duplicates = await possible_duplicates(uow.store, filings, [row["request_id"] for row in rows], now)
    for (_, answer), found in zip(answers, duplicates, strict=True):
        answer["possible_duplicates"] = found
    await uow.publish(*outgoing, trace_headers=[f.trace_headers for f in filings])
    saved = [(*key, *answer) for filing, answer in zip(filings, answers, strict=True)
             if (key := filing.scope_and_key) is not None]  # a retry answers with the same hints
    if saved:
        await uow.store.save_idempotent_responses(saved)
    return answers


async def possible_duplicates(store: IntakeStore, filings: Sequence[Filing],
                              request_ids: list[uuid.UUID], now: datetime) -> list[list[dict[str, Any]]]:
    """重复件 (SPEC §10): for each new filing, the open matters of its town that may be the same
    one (same target, same item within the town's distance, or same item and village with a similar
    location), newest first, at most
    rules.DUPLICATE_HINTS_MAX of them. Only what the filer needs to decide: no location text or
    personal data (a proxy agent files too)."""
    since = [now - timedelta(days=f.town.rules.intake.duplicate_window_days) for f in filings]
    within = [f.town.rules.intake.duplicate_distance_m for f in filings]
    found: list[list[dict[str, Any]]] = [[] for _ in filings]
    for row in await store.duplicate_candidates(request_ids, since, rules.OPEN_STATUSES,
                                                rules.DUPLICATE_CANDIDATES_PER_KIND, within):
        if len(found[row["n"] - 1]) == rules.DUPLICATE_HINTS_MAX:
            continue  # the rows come newest first: this filing's hints are complete
        filing = filings[row["n"] - 1]
        candidate = rules.Candidate(row["ticket_no"], row["item_code"], row["village"], row["location"],
                                    row["target"], row["distance_m"])
        why = rules.duplicate_reason(candidate, item_code=filing.item.code, village=filing.fields["village"],
                                     location=filing.fields["location"], target=filing.fields["target"],
                                     rules=filing.town.rules.intake)
        if why is not None:
            found[row["n"] - 1].append({
                "ticket_no": row["ticket_no"], "item_code": row["item_code"], "village": row["village"],
                "status": row["status"],
                "filed_at": row["filed_at"].astimezone(filing.town.calendar.tz).isoformat(), "reason": why[0],
                "location_similarity": why[1],
                "distance_m": None if row["distance_m"] is None else round(row["distance_m"], 1)})
    return found


async def record_merge(uow: UnitOfWork, *, merged: Row, into_request_id: uuid.UUID,
                       into_ticket_no: str, by: str, now: datetime, reversed_: bool = False) -> None:
    """Merge a matter into its primary, or undo that (`reversed_`): the row, the merged matter's
    timeline step, and `intake.request.merged` keyed by the merged matter, so dispatch closes (or
    reopens) its task in order with its other events."""
    await uow.store.set_merged_into(merged["request_id"], None if reversed_ else into_request_id,
                                    None if reversed_ else now)
    step = "unmerged" if reversed_ else "merged"
    await uow.store.add_timeline(merged["request_id"], now, step, {"into": into_ticket_no}, None)
    await uow.publish(new_event(
        events.RequestMerged,
        events.RequestMergedData(request_id=str(merged["request_id"]), ticket_no=merged["ticket_no"],
                          into_request_id=str(into_request_id), into_ticket_no=into_ticket_no,
                          reversed=reversed_, by=by, at=now),
        source="intake", town_code=merged["town_code"], subject=str(merged["request_id"]),
        correlation_id=str(merged["request_id"]), time=now))


# --- events: the citizen's status timeline, from what dispatch and enforcement publish ------------
# Each flow runs in the unit of work it is handed (the consumer's transaction, with the event's
# inbox row). Every event names its town (SPEC §8): it steps only that town's requests, and an
# event for a town this deployment does not serve is poison (`town_of_event` rejects it). A step
# is kept once per event and request (a redelivery adds none); a status only replaces a newer one
# when `rules.newer_status` says so, as events may arrive out of order.
async def record_step(uow: UnitOfWork, town: Town, request_id: str, at: datetime, step: str,
                      detail: dict[str, Any], event_id: uuid.UUID, status: str | None = None,
                      completed_at: datetime | None = None) -> None:
    """A step on a town's request's timeline, and its status when the step's is the newer one."""
    rid = uuid.UUID(request_id)
    current = await uow.store.step_and_status(town.code, rid, at, step, detail, event_id)
    if current is None:
        return  # not a matter of the event's town filed here: nothing of ours to update
    if status is not None and rules.newer_status(current["status"], current["status_at"], status, at):
        await uow.store.set_status(rid, status, at, completed_at)


async def follow_task_dispatched(deps: Deps, uow: UnitOfWork, event: events.TaskDispatched) -> None:
    """The matter's task is dispatched: the task is linked to it, and the inspection steps that
    came before the dispatch follow the dispatch step."""
    town, d = town_of_event(deps.county, event.town_code), event.data
    early_steps = await uow.store.link_task(d.task_id, uuid.UUID(d.request_id))
    await record_step(uow, town, d.request_id, d.dispatched_at, "dispatched",
                      {"task_id": d.task_id, "module": d.lead_module, "colour": d.colour,
                       "resolve_by": d.resolve_by.isoformat()}, event.id, status="dispatched")
    await hold_task(uow, town, d.task_id, d.request_id, d.dispatched_at, "dispatched", dispatched=d)
    for early in early_steps:
        await record_step(uow, town, d.request_id, early["at"], "inspected", early["detail"], early["event_id"])
    await record_answer(uow, town, d.request_id, d.dispatched_at, module=d.lead_module, promised_by=d.resolve_by)


async def follow_task_accepted(deps: Deps, uow: UnitOfWork, event: events.TaskAccepted) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.accepted_at, "accepted", {"task_id": d.task_id},
                      event.id, status="in_progress")
    await hold_task(uow, town, d.task_id, d.request_id, d.accepted_at, "accepted")


async def follow_task_returned(deps: Deps, uow: UnitOfWork, event: events.TaskReturned) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.returned_at, "returned", {"task_id": d.task_id},
                      event.id, status="returned")
    await hold_task(uow, town, d.task_id, d.request_id, d.returned_at, "returned")


async def follow_task_supervised(deps: Deps, uow: UnitOfWork, event: events.TaskSupervised) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.at, "supervised", {"level": d.level}, event.id)


async def follow_task_extended(deps: Deps, uow: UnitOfWork, event: events.TaskExtended) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, event.time, "extended",
                      {"days": d.days, "resolve_by": d.resolve_by.isoformat()}, event.id)
    await record_answer(uow, town, d.request_id, event.time, promised_by=d.resolve_by)


async def follow_task_completed(deps: Deps, uow: UnitOfWork, event: events.TaskCompleted) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.completed_at, "completed",
                      {"task_id": d.task_id, "on_time": d.on_time}, event.id,
                      status="completed", completed_at=d.completed_at)
    await record_answer(uow, town, d.request_id, d.completed_at, reply=d.reply)  # none from v1.1
    await hold_task(uow, town, d.task_id, d.request_id, d.completed_at, "completed")
    await sms.queue_completion(deps.settings, uow, town, d, event.id)
    # The after photos (处置后照片, issue #29), by reference: the objects stay dispatch's.
    await uow.store.record_task_photos(town.code, uuid.UUID(d.request_id), [
        {"attachment_id": uuid.UUID(ref.attachment_id), "request_id": uuid.UUID(d.request_id), "town_code": town.code,
         "task_id": d.task_id, "stage": "after", "seq": seq, "content_type": ref.content_type, "bytes": ref.size,
         "sha256": ref.sha256, "original_sha256": ref.original_sha256, "taken_at": d.completed_at,
         "event_id": event.id} for seq, ref in enumerate(d.attachments, 1)])


async def follow_task_verified(deps: Deps, uow: UnitOfWork, event: events.TaskVerified) -> None:
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.at, "verified", {"passed": d.passed}, event.id,
                      status="closed" if d.passed else "rework")
    await record_answer(uow, town, d.request_id, d.at, promised_by=d.resolve_by)  # a rework's new date
    await hold_task(uow, town, d.task_id, d.request_id, d.at, "closed" if d.passed else "rework")


async def follow_task_suspended(deps: Deps, uow: UnitOfWork, event: events.TaskSuspended) -> None:
    """挂起: the citizen sees why the matter waits (the category, never the holder's words)."""
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.suspended_at, "suspended",
                      {"task_id": d.task_id, "category": d.category}, event.id, status="suspended")


async def follow_task_resumed(deps: Deps, uow: UnitOfWork, event: events.TaskResumed) -> None:
    """恢复办理: the matter is worked on again, with the date now promised."""
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.resumed_at, "resumed",
                      {"task_id": d.task_id, "resolve_by": d.resolve_by.isoformat()}, event.id,
                      status=rules.RESUMED_STATUS.get(d.status, "in_progress"))
    await record_answer(uow, town, d.request_id, d.resumed_at, promised_by=d.resolve_by)


async def follow_inspection_done(deps: Deps, uow: UnitOfWork, event: events.InspectionDone) -> None:
    """An inspection steps the matter of each task it covered; a task whose dispatch has not
    reached intake yet keeps its step until it does (see `follow_task_dispatched`)."""
    town, d = town_of_event(deps.county, event.town_code), event.data
    known = await uow.store.requests_of_tasks(d.task_ids)
    outcomes = {f.task_id: f.outcome for f in d.findings}
    for task_id in d.task_ids:
        detail = {"inspection_id": d.inspection_id, "outcome": outcomes.get(task_id)}
        if task_id in known:
            await record_step(uow, town, known[task_id], d.finished_at, "inspected", detail, event.id)
        else:
            await uow.store.keep_early_inspection_step(task_id, d.finished_at, detail, event.id)


async def follow_task_callback(deps: Deps, uow: UnitOfWork, event: events.TaskCallback) -> None:
    """回访: a step on the citizen's timeline; an unsatisfied callback reopens the matter (重办)."""
    town, d = town_of_event(deps.county, event.town_code), event.data
    await record_step(uow, town, d.request_id, d.at, "callback",
                      {"task_id": d.task_id, "reached": d.reached, "rating": d.rating, "reopened": d.reopened},
                      event.id, status="reopened" if d.reopened else None)
    await record_answer(uow, town, d.request_id, d.at, promised_by=d.resolve_by if d.reopened else None)
    if d.reopened:  # 重办: the same assignee's again
        await hold_task(uow, town, d.task_id, d.request_id, d.at, "rework")


async def follow_task_merged(deps: Deps, uow: UnitOfWork, event: events.TaskMerged) -> None:
    """A merged matter's task closes as `merged` (or takes back its status when the merge is undone):
    only who may see its citizen changes; the timeline has its own merge steps."""
    town, d = town_of_event(deps.county, event.town_code), event.data
    await hold_task(uow, town, d.task_id, d.request_id, d.at, d.status)


# --- citizens' SMS (issue #31 item 3, sms.py): the delivery log ------------------------------------
async def sms_log(deps: Deps, actor: Principal, ticket_no: str) -> list[models.SmsMessage]:
    """The SMS sent (or held, or skipped) to a matter's citizen, oldest first, for the town's
    clerks and command centre: what and when, never the phone or the text."""
    town = deps.county.town(rules.town_of_ticket(ticket_no))
    if town is None or not actor.may_read(town.code):  # another town's: not found, as one that is not there
        raise CODES["sms.ticket_not_found"]("ticket_no", ticket=ticket_no)
    async with deps.unit_of_work() as uow:
        row = await uow.store.request_by_ticket(ticket_no)
        if row is None:
            raise CODES["sms.ticket_not_found"]("ticket_no", ticket=ticket_no)
        messages = await uow.store.sms_of(row["request_id"])
    tz = town.calendar.tz

    def local(moment: datetime | None) -> str | None:
        return moment.astimezone(tz).isoformat() if moment is not None else None

    return [models.SmsMessage(kind=m["kind"], status=m["status"], created_at=m["created_at"].astimezone(tz).isoformat(),
                              hold_until=local(m["hold_until"]), attempts=m["attempts"], last_error=m["last_error"],
                              sent_at=local(m["sent_at"])) for m in messages]


# --- the citizen's personal data at rest (issue #28 item 7, personal_data.py) ---------------------
async def erase_expired_personal_data(deps: Deps) -> int:
    """Erase the personal data of every matter closed longer ago than the retention period (a
    merged matter: its primary's closure), a batch per transaction: the sealed and plaintext
    columns blanked, a phone or id number typed into its free text masked; the matter, its
    timeline and its `citizen_ref` (a keyed pseudonym the topics keep anyway) stay. How many."""
    now = deps.clock.now()
    closed_before = now - timedelta(days=deps.settings.intake_personal_data_retention_days)
    erased = 0
    while True:
        async with deps.unit_of_work() as uow:
            due = await uow.store.personal_data_due(closed_before, deps.settings.intake_erasure_batch_size)
            if due:
                await uow.store.erase_personal_data([
                    {"request_id": r["request_id"], "town_code": r["town_code"],
                     "description": mask_personal_numbers(r["description"]),
                     "location": mask_personal_numbers(r["location"])} for r in due], now)
        erased += len(due)
        if len(due) < deps.settings.intake_erasure_batch_size:
            return erased


@dataclass
class Resealing:
    """What `reseal` did: matters moved to the current key, and those it could not open."""

    moved: int = 0
    unreadable: set[uuid.UUID] = dataclasses.field(default_factory=set)


async def reseal(unit_of_work: UnitOfWorkFactory, keyring: Keyring, batch_size: int, *, every: bool = False,
                 report: Callable[[str], None] = lambda _: None) -> Resealing:
    """`python -m intake data re-encrypt`: seal every matter's personal data under the current key
    (`every`: every matter's, for a new lookup key), the rows the previous release filed in the
    clear too, a batch per transaction in request-id order, while the service runs. Resumable: what
    is done is what the rows say, so a stopped run starts again where the data shows it. Passes
    until one moves nothing (a row another transaction held, or one a previous-release replica
    filed behind the pass, is taken by the next). A value that does not open (its key no longer
    configured) is reported and left; the others go on."""
    done = Resealing()
    while True:
        moved, after = 0, None
        while True:
            async with unit_of_work() as uow:
                rows = await uow.store.requests_to_reseal(keyring.current.key_id, after, batch_size, every)
                sealed = []
                for row in rows:
                    try:
                        if (columns := keyring.resealed(row, row if row["sealed"] is not None else None)) is not None:
                            sealed.append(columns)
                    except personal_data.UnreadableValue as exc:
                        if row["request_id"] not in done.unreadable:
                            report(f"left as it is: {exc}")
                        done.unreadable.add(row["request_id"])
                if sealed:
                    await uow.store.save_resealed(sealed)
            if not rows:
                break
            after, moved = rows[-1]["request_id"], moved + len(sealed)
            report(f"{done.moved + moved} matters sealed under {keyring.current.key_id}")
        done.moved += moved
        if every or moved == 0:
            return done
