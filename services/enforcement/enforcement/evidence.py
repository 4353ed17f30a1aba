"""Evidence photos (issue #29, 行政执法三项制度: 执法全过程记录): the command handlers that record
photos on an inspection (taken during its visit) or on a case's step, read one back, and sweep the
objects no record owns.

Written once, as townflow_shared.attachments does it: the caller and the record are checked, the
photos cleaned, put in the object store under enforcement's keys by town and matter **write-once**
(S3's conditional write: the store itself refuses a second put to a key), then recorded with their
event in one transaction; a recording refused after the put forgets its objects at once (they have
no record), and the sweep removes what a failed transaction left. Nothing removes or replaces the
objects of a recorded piece of evidence, and its row cannot change (the migration's trigger).

Evidence is read through enforcement, as the record is: whoever reads the inspection or the case.
Each read is recorded in the audit trail; the bytes are streamed back, no URL is handed out."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from townflow_shared import attachments as shared
from townflow_shared import audit_trail, events, scope
from townflow_shared.auth import Principal
from townflow_shared.checks import present
from townflow_shared.objects import ObjectStore
from townflow_shared.photos import PhotoLimits
from townflow_shared.problems import Code, Refusal
from townflow_shared.town import Town
from townflow_shared.views import record_id

from . import models, queries, rules
from .deps import Deps
from .flows import event
from .refusals import CODES
from .settings import EnforcementSettings
from .store import EvidenceOf, Row, Store
from .unit_of_work import UnitOfWork

OWNER = "enforcement"  # the prefix of enforcement's objects in the deployment's bucket
KIND = "photo"  # an evidence photo is a photo (events.AttachmentRef.kind); its topic says it is evidence
TOO_MANY, STORAGE_UNAVAILABLE, NOT_FOUND = shared.TOO_MANY, shared.STORAGE_UNAVAILABLE, shared.NOT_FOUND


@dataclass(frozen=True)
class RecordInspectionEvidence:
    inspection_id: str
    photos: tuple[bytes, ...]
    note: str = ""


@dataclass(frozen=True)
class RecordCaseEvidence:
    case_id: str
    photos: tuple[bytes, ...]
    note: str = ""
    step: str | None = None  # the step it documents; None: the case's current step


@dataclass(frozen=True)
class ReadEvidence:
    record: Literal["inspection", "case"]
    record_id: str
    attachment_id: uuid.UUID
    variant: Literal["photo", "thumbnail"] = "photo"


@dataclass(frozen=True)
class _Target:
    """What a recording is on, as checked: its town, the matter its keys name, and its event's fields."""

    town: Town
    column: EvidenceOf
    record_id: uuid.UUID
    matter_id: str
    request_id: str | None
    step: str | None
    first_seq: int


# --- inspections --------------------------------------------------------------------------------
async def _inspection_target(deps: Deps, store: Store, actor: Principal, inspection_id: str) -> _Target:
    """The started inspection the caller is on (or leads), locked: else its refusal."""
    not_found = CODES["inspection.not_found"]
    row = await store.inspection(record_id(inspection_id, not_found), lock=True)
    if row is None:
        raise not_found()
    town = scope.town_of_record(deps.county, actor, row["town_code"], acting=True, not_found=not_found)
    if refusal := rules.evidence_taker_error(actor, team=row["assigned_officers"] or row["officers"] or [], town=town):
        raise refusal
    if refusal := rules.inspection_evidence_error(row["status"]):
        raise refusal
    needs = (await store.needs_of_each([row["inspection_id"]]))[row["inspection_id"]]
    # The matter its keys name: the inspection's first matter (综合查一次 joins several), as its
    # events' correlation; an inspection whose needs name none: its own id.
    request_id = next((str(n["request_id"]) for n in needs if n["request_id"]), None)
    recorded = (await store.evidence_of_each("inspection_id", [row["inspection_id"]]))[row["inspection_id"]]
    return _Target(town, "inspection_id", row["inspection_id"], request_id or str(row["inspection_id"]), request_id,
                   None, len(recorded) + 1)


async def record_inspection_evidence(deps: Deps, actor: Principal,
                                     command: RecordInspectionEvidence) -> models.Inspection:
    """Photos taken during an inspection's visit, by one of its officers or the enforcement
    module's leader, while it is started: the inspection as answered, with its evidence."""
    async def target(work: UnitOfWork) -> _Target:
        return await _inspection_target(deps, work.store, actor, command.inspection_id)

    checked = await _record(deps, actor, target, command.photos, command.note)
    async with deps.transactions.reading(snapshot=True) as work:
        row = present(await work.store.inspection(checked.record_id), "the inspection")
        return (await queries.inspection_answers(deps, work.store, [row]))[0]


# --- cases --------------------------------------------------------------------------------------
async def _case_target(deps: Deps, store: Store, actor: Principal, case_id: str, step: str | None) -> _Target:
    """The case the caller may take steps on, locked, and the step the evidence documents."""
    not_found = CODES["case.not_found"]
    row = await store.case(record_id(case_id, not_found), lock=True)
    if row is None:
        raise not_found()
    town = scope.town_of_record(deps.county, actor, row["town_code"], acting=True, not_found=not_found)
    taken = [s["step"] for s in await store.case_steps(row["case_id"])]
    documented, refusal = rules.evidence_step(row["step"], taken, step)
    if refusal:
        raise refusal
    recorded = (await store.evidence_of_each("case_id", [row["case_id"]]))[row["case_id"]]
    return _Target(town, "case_id", row["case_id"], str(row["request_id"]), str(row["request_id"]), documented,
                   len(recorded) + 1)


async def record_case_evidence(deps: Deps, actor: Principal, command: RecordCaseEvidence) -> models.CaseWithSteps:
    """Photos documenting a case's step (the step it has reached, one it took, or its next), by
    whoever may take its steps (as `POST /v1/cases/{id}/steps`): the case as answered, with its
    evidence."""
    async def target(work: UnitOfWork) -> _Target:
        return await _case_target(deps, work.store, actor, command.case_id, command.step)

    checked = await _record(deps, actor, target, command.photos, command.note)
    async with deps.transactions.reading(snapshot=True) as work:
        return await queries.case_view(deps, work.store, present(await work.store.case(checked.record_id), "the case"))


# --- recording, once for both -------------------------------------------------------------------
async def _record(deps: Deps, actor: Principal, target: Callable[[UnitOfWork], Awaitable[_Target]],
                  photos: Sequence[bytes], note: str) -> _Target:
    """Check the caller and the record (before a photo is looked at), clean the photos, put them
    write-once, then record them and their event in one transaction, the record checked again
    under its lock (it may have moved on meanwhile). The puts come before the transaction, as
    intake's: no lock is held, and no transaction left idle, while S3 answers. A refusal after the
    put forgets the objects, which no record owns. `target(work)` answers the record as checked,
    or raises its refusal."""
    async with deps.transactions.reading() as work:
        checked: _Target = await target(work)
    if deps.objects is None:
        raise STORAGE_UNAVAILABLE()
    limit = deps.settings.enforcement_evidence_max_photos
    if len(photos) > limit:
        raise TOO_MANY("photos", limit=limit)
    cleaned = await shared.cleaned(photos, PhotoLimits.of(deps.settings))
    stored = shared.placed(OWNER, checked.town.code, checked.matter_id, cleaned)
    await shared.put(deps.objects, stored, once=True)
    now = deps.clock.now()
    try:
        async with deps.transactions.writing() as work:
            checked = dataclasses.replace(await target(work), matter_id=checked.matter_id)  # the keys' matter
            # Numbered under the record's lock: a recording beside this one numbers after it.
            rows = [evidence_row(s, checked, note, actor.sub, now, checked.first_seq + i) for i, s in enumerate(stored)]
            await work.store.insert_evidence(rows)
            await work.publish(event(checked.town.code, events.EvidenceRecorded, events.EvidenceRecordedData(
                inspection_id=str(checked.record_id) if checked.column == "inspection_id" else None,
                case_id=str(checked.record_id) if checked.column == "case_id" else None,
                step=checked.step, request_id=checked.request_id,  # type: ignore[arg-type]
                evidence=[shared.reference(r) for r in rows], recorded_by=actor.sub, recorded_at=now),
                checked.record_id, checked.matter_id, now))
    except Refusal:  # nothing was recorded: the objects are no record's
        await shared.forget(deps.objects, [key for s in stored for key in s.keys])
        raise
    return checked


def evidence_row(stored: shared.Stored, target: _Target, note: str, by: str, at: datetime,
                 seq: int) -> dict[str, Any]:
    """A piece of evidence's row: the attachment's columns, the record and step it is on, its note."""
    return {**stored.columns(target.town.code, KIND, by, at), "seq": seq, "inspection_id": None, "case_id": None,
            target.column: target.record_id, "step": target.step, "matter_id": target.matter_id, "note": note}


# --- reading ------------------------------------------------------------------------------------
async def read_evidence(deps: Deps, actor: Principal, command: ReadEvidence) -> tuple[bytes, str]:
    """A piece of a record's evidence (or its thumbnail) and its content type, for whoever reads
    the record; else the record's not-found, or `attachment.not_found` for evidence it does not
    have. Each read is recorded."""
    not_found: Code = CODES["inspection.not_found"] if command.record == "inspection" else CODES["case.not_found"]
    column: EvidenceOf = "inspection_id" if command.record == "inspection" else "case_id"
    record = record_id(command.record_id, not_found)
    async with deps.transactions.reading() as work:
        row: Row | None = (await work.store.inspection(record) if command.record == "inspection"
                           else await work.store.case(record))
        if row is None:
            raise not_found()
        scope.town_of_record(deps.county, actor, row["town_code"], acting=False, not_found=not_found)
        item = await work.store.evidence_item(column, record, command.attachment_id)
    if item is None:
        raise NOT_FOUND()
    audit_trail.note_read("evidence.read", "attachment", str(command.attachment_id))
    key = item["thumbnail_key"] if command.variant == "thumbnail" else item["stored_key"]
    return await shared.read(deps.objects, key, command.attachment_id), item["content_type"]


# --- where evidence is kept ---------------------------------------------------------------------
def evidence_store(settings: EnforcementSettings) -> ObjectStore | None:
    """The store evidence is written to and read from: a bucket of its own under Object Lock, each
    object retained in COMPLIANCE mode, when the county has one (`TOWNFLOW_S3_EVIDENCE_BUCKET`);
    else the deployment's bucket, where it is written once and nothing more (docs/attachments.md)."""
    if settings.s3_evidence_bucket:
        return ObjectStore.from_settings(settings, settings.s3_evidence_bucket, settings.s3_evidence_retention_days)
    return ObjectStore.from_settings(settings)


# --- the orphan sweep ---------------------------------------------------------------------------
def known_evidence(deps: Deps) -> Callable[[list[uuid.UUID]], Awaitable[set[uuid.UUID]]]:
    """Which of the ids an evidence row records: the sweep's `known`."""
    async def known(attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        async with deps.transactions.reading() as work:
            return await work.store.known_evidence(attachment_ids)
    return known


async def sweep_orphans(objects: ObjectStore, deps: Deps, older_than: datetime, page: int = 1000) -> int:
    """Remove enforcement's objects last written before `older_than` that no evidence row owns
    (a recording whose transaction failed): never an object a row records."""
    return await shared.sweep_orphans(objects, OWNER, known_evidence(deps), older_than, page)
