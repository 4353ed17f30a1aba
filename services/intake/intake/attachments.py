"""Photos on a filing (issue #29): the command handlers that file a matter with its photos, read a
photo back, and sweep the objects no record owns.

Nothing is half-stored. A filing's photos are checked and cleaned first (townflow_shared.photos),
then put in the object store under the matter's keys, then recorded with the filing in its one
transaction (the filing writer's batch). So a record always has its objects; what can be left is
an object without a record: a filing refused after the put (its objects are removed at once), or
one whose transaction failed or whose caller went away (the outcome unknown here: the transaction
may yet have committed). Those the sweep removes, once older than any filing takes to commit.

A photo is read through intake, as the matter is: the town's staff who read matters, or the
citizen with the ticket's access code where the town shows citizens their photos. Each read is
recorded in the audit trail; the bytes are streamed back, so no URL that works without intake's
check is ever handed out."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from townflow_shared import audit_trail
from townflow_shared.auth import Principal
from townflow_shared.objects import ObjectStore, StoreUnavailable, attachment_of, object_key
from townflow_shared.photos import CleanPhoto, PhotoLimits, clean_photo
from townflow_shared.problems import FieldError, Refusal, invalid

from . import flows, rules
from .flows import Answer, CitizenProof, Deps, FileMatter, Filing
from .refusals import CODES
from .store import UnitOfWorkFactory

log = logging.getLogger(__name__)

# Photos are cleaned in worker threads, at most this many at once in a replica: each holds a
# decoded image (a 12 MP JPEG decodes at a quarter, a PNG whole), and a replica has a core or two.
_CLEANING = asyncio.Semaphore(2)
# Who of the town's staff sees a matter's photos: whoever reads its matter, and those who file.
PHOTO_READERS = (*flows.MATTER_READERS, *flows.FILERS)


@dataclass(frozen=True)
class FileWithPhotos:
    filing: FileMatter
    photos: tuple[bytes, ...]


@dataclass(frozen=True)
class ReadPhoto:
    ticket_no: str
    attachment_id: uuid.UUID
    variant: Literal["photo", "thumbnail"]
    code: str | None  # the citizen's access code; a token that reads the ticket's town needs none
    proof: CitizenProof | None = None


async def file_with_photos(deps: Deps, actor: Principal, command: FileWithPhotos) -> Answer:
    """File a matter with its photos: (status, body) as `flows.file_request` answers it."""
    filing = flows.validated_filing(deps, actor, command.filing)
    if len(command.photos) > filing.item.photos_max:
        raise CODES["attachment.too_many"]("photos", limit=filing.item.photos_max, item=filing.item.code)
    cleaned = await _cleaned(command.photos, PhotoLimits.of(deps.settings))
    if deps.objects is None:
        raise CODES["attachment.storage_unavailable"]()
    request_id = uuid.uuid4()
    rows = [_record(filing, request_id, seq, photo, deps.clock.now()) for seq, photo in enumerate(cleaned, 1)]
    await _put(deps.objects, rows, cleaned)
    # A retry with the same key and the same photos is the same filing; other photos, another.
    digests = ",".join(photo.original_sha256 for photo in cleaned)
    filing = dataclasses.replace(filing, request_id=request_id, attachments=tuple(rows),
                                 fingerprint=hashlib.sha256(f"{filing.fingerprint}|{digests}".encode()).hexdigest())
    try:
        status, body = await deps.filing_writer.submit(filing)
    except Refusal:  # this filing was not written (the others of its batch may have been)
        await _forget(deps.objects, rows)
        raise
    if body.get("request_id") != str(request_id):  # a retry answered as the first time: not ours
        await _forget(deps.objects, rows)
    return status, body


async def _cleaned(photos: Sequence[bytes], limits: PhotoLimits) -> list[CleanPhoto]:
    """Every photo cleaned, or one 422 naming each photo at fault (`photos[0]`, `photos[2]`)."""
    async def one(index: int, data: bytes) -> CleanPhoto | FieldError:
        async with _CLEANING:
            try:
                return await asyncio.to_thread(clean_photo, data, limits, f"photos[{index}]")
            except Refusal as refusal:
                return refusal.code.error(refusal.field or "photos", **refusal.params)

    results = await asyncio.gather(*(one(i, data) for i, data in enumerate(photos)))
    errors = [r for r in results if isinstance(r, FieldError)]
    if errors:
        raise invalid(errors)
    return [r for r in results if isinstance(r, CleanPhoto)]


def _record(filing: Filing, request_id: uuid.UUID, seq: int, photo: CleanPhoto, now: datetime) -> dict[str, Any]:
    """The attachment's row, written with the filing; its keys name the town and the matter."""
    attachment_id = uuid.uuid4()
    town = filing.town.code
    latitude, longitude = photo.position or (None, None)
    return {
        "attachment_id": attachment_id, "request_id": request_id, "town_code": town, "kind": "photo", "seq": seq,
        "content_type": photo.content_type, "bytes": len(photo.stored),
        "sha256": hashlib.sha256(photo.stored).hexdigest(), "width": photo.width, "height": photo.height,
        "stored_key": object_key(town, request_id, attachment_id, "photo.jpg"),
        "thumbnail_key": object_key(town, request_id, attachment_id, "thumbnail.jpg"),
        "original_type": photo.original_type, "original_bytes": photo.original_bytes,
        "original_sha256": photo.original_sha256, "captured_at": photo.captured_at,
        "latitude": latitude, "longitude": longitude, "uploaded_by": filing.filed_by, "uploaded_at": now}


async def _put(objects: ObjectStore, rows: list[dict[str, Any]], cleaned: list[CleanPhoto]) -> None:
    """Every object of the filing put, or none left behind and a 503."""
    puts = [(row["stored_key"], photo.stored) for row, photo in zip(rows, cleaned, strict=True)]
    puts += [(row["thumbnail_key"], photo.thumbnail) for row, photo in zip(rows, cleaned, strict=True)]
    outcomes = await asyncio.gather(*(objects.put(key, data, "image/jpeg") for key, data in puts),
                                    return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        log.warning("photos not stored: %s", failed[0])
        await _forget(objects, rows)
        raise CODES["attachment.storage_unavailable"]()


async def _forget(objects: ObjectStore, rows: list[dict[str, Any]]) -> None:
    """Remove the objects of photos no filing recorded; what fails here, the sweep removes later."""
    try:
        await objects.delete([key for row in rows for key in (row["stored_key"], row["thumbnail_key"])])
    except StoreUnavailable as error:
        log.warning("photos of a filing not written left for the orphan sweep: %s", error)


async def read_photo(deps: Deps, actor: Principal | None, command: ReadPhoto) -> tuple[bytes, str]:
    """A matter's photo (or its thumbnail) and its content type, for the town's staff who read
    matters, or the citizen with the access code where the town shows photos; else
    `attachment.not_found`, as for a photo that does not exist. Each read is recorded."""
    town_code = rules.town_of_ticket(command.ticket_no)
    by_token = actor is not None and actor.has_any(PHOTO_READERS, reading=True) and actor.may_read(town_code)
    if not by_token:
        town = deps.county.town(town_code)
        if command.code is None or town is None or not town.rules.intake.citizen_sees_photos:
            raise CODES["attachment.not_found"]()
        await flows.check_access_code(deps, command.ticket_no, command.code, command.proof)
    async with deps.unit_of_work() as uow:
        request = await uow.store.request_by_ticket(command.ticket_no)
        row = await uow.store.attachment_of(request["request_id"], command.attachment_id) if request else None
    if row is None:
        raise CODES["attachment.not_found"]()
    if deps.objects is None:
        raise CODES["attachment.storage_unavailable"]()
    audit_trail.note_read("attachment.read", "attachment", str(command.attachment_id))
    key = row["thumbnail_key"] if command.variant == "thumbnail" else row["stored_key"]
    try:
        return await deps.objects.get(key), row["content_type"]
    except StoreUnavailable:
        raise CODES["attachment.storage_unavailable"]() from None
    except KeyError:  # a record without its object: removed outside intake (the put came first)
        log.error("attachment %s has a record and no object", command.attachment_id)
        raise CODES["attachment.not_found"]() from None


async def sweep_orphans(objects: ObjectStore, unit_of_work: UnitOfWorkFactory, older_than: datetime,
                        page: int = 1000) -> int:
    """Remove the attachment objects last written before `older_than` that no record owns; how many.
    A page of keys at a time, each page's attachment ids looked up in one query."""
    removed, after = 0, None
    while listed := await objects.listed("towns/", after, page):
        after = listed[-1].key
        old: dict[str, uuid.UUID] = {}
        for stored in listed:
            found = attachment_of(stored.key)
            if found is not None and stored.last_modified < older_than:
                try:
                    old[stored.key] = uuid.UUID(found)
                except ValueError:
                    continue  # not a key intake made
        if not old:
            continue
        async with unit_of_work() as uow:
            known = await uow.store.known_attachments(sorted(set(old.values())))
        orphans = [key for key, attachment_id in old.items() if attachment_id not in known]
        if orphans:
            await objects.delete(orphans)
            removed += len(orphans)
    return removed
