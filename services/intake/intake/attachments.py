"""Photos on a filing (issue #29): the command handlers that file a matter with its photos, read a
photo back, and sweep the objects no record owns.

Nothing is half-stored (townflow_shared.attachments): a filing's photos are cleaned, put in the
object store under intake's keys by town and matter, then recorded with the filing in its one
transaction (the filing writer's batch); a filing refused after the put forgets its objects at
once, and the sweep removes what no record owns.

A photo is read through intake, as the matter is: the town's staff who read matters, or the
citizen with the ticket's access code where the town shows citizens their photos. Each read is
recorded in the audit trail; the bytes are streamed back, so no URL that works without intake's
check is ever handed out. So are the after photos of the matter's task (处置后照片), which intake
knows by the references `dispatch.task.completed` carried: their objects are dispatch's, read at
the key the bucket's layout makes known (`object_key(DISPATCH, town, request id, attachment id,
variant)`, the contract docs/attachments.md states)."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from townflow_shared import attachments as shared
from townflow_shared import audit_trail
from townflow_shared.auth import Principal
from townflow_shared.objects import ObjectStore, object_key
from townflow_shared.photos import PhotoLimits
from townflow_shared.problems import Refusal

from . import flows, rules
from .flows import Answer, CitizenProof, Deps, FileMatter
from .store import UnitOfWorkFactory

OWNER = "intake"  # the prefix of intake's objects in the deployment's bucket
DISPATCH = "dispatch"  # the prefix of the task photos' objects: dispatch's, read here by their key
# Who of the town's staff sees a matter's photos: whoever reads its matter, and those who file.
PHOTO_READERS = (*flows.MATTER_READERS, *flows.FILERS)
TOO_MANY, STORAGE_UNAVAILABLE, NOT_FOUND = shared.TOO_MANY, shared.STORAGE_UNAVAILABLE, shared.NOT_FOUND


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
        raise shared.TOO_MANY("photos", limit=filing.item.photos_max)
    cleaned = await shared.cleaned(command.photos, PhotoLimits.of(deps.settings))
    request_id = uuid.uuid4()
    stored = shared.placed(OWNER, filing.town.code, request_id, cleaned)
    await shared.put(deps.objects, stored)
    keys = [key for s in stored for key in s.keys]
    rows = tuple({**s.columns(filing.town.code, "photo", filing.filed_by, deps.clock.now()), "request_id": request_id}
                 for s in stored)
    # A retry with the same key and the same photos is the same filing; other photos, another.
    digests = ",".join(photo.original_sha256 for photo in cleaned)
    filing = dataclasses.replace(filing, request_id=request_id, attachments=rows,
                                 fingerprint=hashlib.sha256(f"{filing.fingerprint}|{digests}".encode()).hexdigest())
    try:
        status, body = await deps.filing_writer.submit(filing)
    except Refusal:  # this filing was not written (the others of its batch may have been)
        await shared.forget(deps.objects, keys)  # type: ignore[arg-type]  # put() above had a store
        raise
    if body.get("request_id") != str(request_id):  # a retry answered as the first time: not ours
        await shared.forget(deps.objects, keys)  # type: ignore[arg-type]
    return status, body


async def read_photo(deps: Deps, actor: Principal | None, command: ReadPhoto) -> tuple[bytes, str]:
    """A matter's photo (or its thumbnail) and its content type, for the town's staff who read
    matters, or the citizen with the access code where the town shows photos; else
    `attachment.not_found`, as for a photo that does not exist. Each read is recorded."""
    town_code = rules.town_of_ticket(command.ticket_no)
    by_token = actor is not None and actor.has_any(PHOTO_READERS, reading=True) and actor.may_read(town_code)
    if not by_token:
        town = deps.county.town(town_code)
        if command.code is None or town is None or not town.rules.intake.citizen_sees_photos:
            raise shared.NOT_FOUND()
        await flows.check_access_code(deps, command.ticket_no, command.code, command.proof)
    async with deps.unit_of_work() as uow:
        request = await uow.store.request_by_ticket(command.ticket_no)
        row = await uow.store.photo_of(request["request_id"], command.attachment_id) if request else None
    if row is None:
        raise shared.NOT_FOUND()
    if row["owner"] == OWNER:
        key = row["thumbnail_key"] if command.variant == "thumbnail" else row["stored_key"]
    else:  # a task's after photo: dispatch's object, where the bucket's layout puts it
        key = object_key(DISPATCH, row["town_code"], row["request_id"], row["attachment_id"], f"{command.variant}.jpg")
    audit_trail.note_read("attachment.read", "attachment", str(command.attachment_id))
    return await shared.read(deps.objects, key, command.attachment_id), row["content_type"]


async def sweep_orphans(objects: ObjectStore, unit_of_work: UnitOfWorkFactory, older_than: datetime,
                        page: int = 1000) -> int:
    """Remove intake's attachment objects last written before `older_than` that no record owns."""
    return await shared.sweep_orphans(objects, OWNER, shared.known_in(unit_of_work), older_than, page)
