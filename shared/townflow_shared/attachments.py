"""What every service that takes photos does with them (issue #29): intake's on a filing, dispatch's
on a completion and a closure check, enforcement's as evidence. The rules of a photo itself are in
`photos` (plain functions over bytes); this is the I/O around them, written once.

Nothing is half-stored. Photos are cleaned first, then put in the object store under their owner's
keys, then recorded in the owner's transaction. So a record always has its objects; what can be
left is an object without a record: a command refused after the put (`forget` removes its objects
at once), or one whose transaction failed or whose caller went away (the outcome unknown: the
transaction may yet have commit). Those `sweep_orphans` removes, once older than any command takes
to commit. Each service sweeps only its own prefix (`owner`): one bucket serves the deployment, and
another service's objects are no orphans of this one's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from . import photos as photo_rules
from .events import AttachmentRef
from .objects import ObjectExists, ObjectStore, StoreUnavailable, attachment_of, object_key
from .photos import CleanPhoto, PhotoLimits, clean_photo
from .problems import BODY_TOO_LARGE, SHARED, FieldError, Refusal, invalid

if TYPE_CHECKING:
    from .settings import PhotoTakingSettings

log = logging.getLogger(__name__)

TOO_MANY = SHARED["attachment.too_many"]
STORAGE_UNAVAILABLE = SHARED["attachment.storage_unavailable"]
NOT_FOUND = SHARED["attachment.not_found"]
# What a route that takes photos may refuse, besides its own command's refusals.
PHOTO_REFUSALS = (photo_rules.TOO_LARGE, photo_rules.NOT_A_PHOTO, photo_rules.DAMAGED, photo_rules.TOO_MANY_PIXELS, TOO_MANY,
                  STORAGE_UNAVAILABLE, BODY_TOO_LARGE)
PHOTO_FILE = ("a photo (JPEG, PNG, WebP or HEIC), as the phone took it: checked, turned upright and stripped of "
              "its metadata here")
# Photos are cleaned in worker threads, at most this many at once in a replica: each holds a
# decoded image (a 12 MP JPEG decodes at a quarter, a PNG whole), and a replica has a core or two.
# One semaphore per event loop: a replica has one, but a semaphore a loop waited on is bound to it,
# and unit tests run each command on a loop of its own (asyncio.run).
CLEANING_AT_ONCE = 2
_CLEANING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _cleaning() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if (semaphore := _CLEANING.get(loop)) is None:
        semaphore = _CLEANING[loop] = asyncio.Semaphore(CLEANING_AT_ONCE)
    return semaphore


@dataclass(frozen=True)
class Stored:
    """One cleaned photo's place and digests: what its owner records (with who, when and why) and
    what its events carry (`reference`)."""

    attachment_id: uuid.UUID
    seq: int
    photo: CleanPhoto
    stored_key: str
    thumbnail_key: str
    sha256: str  # of the stored copy

    @property
    def keys(self) -> tuple[str, str]:
        return self.stored_key, self.thumbnail_key

    def columns(self, town_code: str, kind: str, uploaded_by: str, uploaded_at: datetime) -> dict[str, Any]:
        """The attachment's columns, as every owner's attachments table names them; the capture
        time and position read from the original stay in the owner's database, never on a topic."""
        latitude, longitude = self.photo.position or (None, None)
        return {
            "attachment_id": self.attachment_id, "town_code": town_code, "kind": kind, "seq": self.seq,
            "content_type": self.photo.content_type, "bytes": len(self.photo.stored), "sha256": self.sha256,
            "width": self.photo.width, "height": self.photo.height, "stored_key": self.stored_key,
            "thumbnail_key": self.thumbnail_key, "original_type": self.photo.original_type,
            "original_bytes": self.photo.original_bytes, "original_sha256": self.photo.original_sha256,
            "captured_at": self.photo.captured_at, "latitude": latitude, "longitude": longitude,
            "uploaded_by": uploaded_by, "uploaded_at": uploaded_at}


def reference(row: Mapping[str, Any]) -> AttachmentRef:
    """What a topic carries of an attachment (from its columns): never its bytes, keys or position."""
    return AttachmentRef(attachment_id=str(row["attachment_id"]), kind=row["kind"], content_type=row["content_type"],
                         size=row["bytes"], sha256=row["sha256"], original_sha256=row["original_sha256"])


async def cleaned(photos: Sequence[bytes], limits: PhotoLimits, field: str = "photos") -> list[CleanPhoto]:
    """Every photo cleaned, or one 422 naming each photo at fault (`photos[0]`, `photos[2]`)."""
    async def one(index: int, data: bytes) -> CleanPhoto | FieldError:
        async with _cleaning():
            try:
                return await asyncio.to_thread(clean_photo, data, limits, f"{field}[{index}]")
            except Refusal as refusal:
                return refusal.code.error(refusal.field or field, **refusal.params)

    results = await asyncio.gather(*(one(i, data) for i, data in enumerate(photos)))
    errors = [r for r in results if isinstance(r, FieldError)]
    if errors:
        raise invalid(errors)
    return [r for r in results if isinstance(r, CleanPhoto)]


def placed(owner: str, town_code: str, matter_id: uuid.UUID | str, photos: Sequence[CleanPhoto],
           first_seq: int = 1) -> list[Stored]:
    """Each photo's attachment id and keys (by owner, town and matter), numbered from `first_seq`."""
    out = []
    for seq, photo in enumerate(photos, first_seq):
        attachment_id = uuid.uuid4()
        out.append(Stored(attachment_id, seq, photo,
                          object_key(owner, town_code, matter_id, attachment_id, "photo.jpg"),
                          object_key(owner, town_code, matter_id, attachment_id, "thumbnail.jpg"),
                          hashlib.sha256(photo.stored).hexdigest()))
    return out


async def put(objects: ObjectStore | None, stored: Sequence[Stored], *, once: bool = False) -> None:
    """Every object of the photos put (the copy and its thumbnail), or none left behind and a 503.
    `once`: write-once (evidence): the store refuses to replace an object already under a key
    (`ObjectStore.put_once`), and such an object, not this call's, is never removed here."""
    if objects is None:
        raise STORAGE_UNAVAILABLE()
    write = objects.put_once if once else objects.put
    puts = [(s.stored_key, s.photo.stored) for s in stored] + [(s.thumbnail_key, s.photo.thumbnail) for s in stored]
    outcomes = await asyncio.gather(*(write(key, data, "image/jpeg") for key, data in puts),
                                    return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        log.warning("photos not stored: %s", failed[0])
        # A put that failed may have stored its object all the same (a time-out): removed too. One
        # the store refused because an object was there already is someone else's: left alone (or
        # this call's own, when a retry followed a put whose answer was lost: the sweep removes it).
        await forget(objects, [key for (key, _), outcome in zip(puts, outcomes, strict=True)
                               if not isinstance(outcome, ObjectExists)])
        raise STORAGE_UNAVAILABLE()


async def forget(objects: ObjectStore, keys: Sequence[str]) -> None:
    """Remove the objects of photos no record owns; what fails here, the sweep removes later."""
    try:
        await objects.delete(list(keys))
    except StoreUnavailable as error:
        log.warning("photos not recorded left for the orphan sweep: %s", error)


async def read(objects: ObjectStore | None, key: str, attachment_id: uuid.UUID | str) -> bytes:
    """An attachment's bytes: 503 when the store does not answer, 404 for a record without its
    object (removed outside the service: the put comes before the record)."""
    if objects is None:
        raise STORAGE_UNAVAILABLE()
    try:
        return await objects.get(key)
    except StoreUnavailable:
        raise STORAGE_UNAVAILABLE() from None
    except KeyError:
        log.error("attachment %s has a record and no object", attachment_id)
        raise NOT_FOUND() from None


class _KnowsAttachments(Protocol):
    async def known_attachments(self, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]: ...


class _UnitOfWork(Protocol):
    @property
    def store(self) -> _KnowsAttachments: ...


def known_in(unit_of_work: Callable[[], AbstractAsyncContextManager[_UnitOfWork]]
             ) -> Callable[[list[uuid.UUID]], Awaitable[set[uuid.UUID]]]:
    """`sweep_orphans`'s `known` for a service whose unit of work's store answers `known_attachments`."""
    async def known(attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        async with unit_of_work() as uow:
            return await uow.store.known_attachments(attachment_ids)
    return known


async def sweep_orphans(objects: ObjectStore, owner: str, known: Callable[[list[uuid.UUID]], Awaitable[set[uuid.UUID]]],
                        older_than: datetime, page: int = 1000) -> int:
    """Remove `owner`'s attachment objects last written before `older_than` that no record owns
    (`known` answers which of a page's ids are recorded, in one query); how many were removed."""
    removed, after, prefix = 0, None, f"{owner}/towns/"
    while listed := await objects.listed(prefix, after, page):
        after = listed[-1].key
        old: dict[str, uuid.UUID] = {}
        for stored in listed:
            found = attachment_of(stored.key)
            if found is not None and stored.last_modified < older_than:
                try:
                    old[stored.key] = uuid.UUID(found)
                except ValueError:
                    continue  # not a key `object_key` made
        if not old:
            continue
        recorded = await known(sorted(set(old.values())))
        orphans = [key for key, attachment_id in old.items() if attachment_id not in recorded]
        if orphans:
            await objects.delete(orphans)
            removed += len(orphans)
    return removed


def sweep_loop(owner: str, objects: ObjectStore | None, known: Callable[[list[uuid.UUID]], Awaitable[set[uuid.UUID]]],
               settings: PhotoTakingSettings) -> Callable[[object], Awaitable[None]]:
    """A service's orphan sweep for its life (runtime.every): `sweep_orphans` of its own prefix every
    `photo_sweep_seconds` on the wall clock, not the service's (a test moves that one): an object's
    age is the object store's own clock. Replicas may sweep at once; removing an orphan twice is no
    harm. Nothing runs without an object store."""

    async def photo_sweep(_: object) -> None:
        if objects is None:
            return
        # The first sweep at a random moment of the first interval, not at start: a start (a replica
        # restarted on a loaded machine) does not wait on S3 (nor make its client: objects.py), and
        # replicas started together do not sweep in step.
        await asyncio.sleep(random.uniform(0, settings.photo_sweep_seconds))  # noqa: S311 - not a secret
        while True:
            older_than = datetime.now(UTC) - timedelta(seconds=settings.photo_orphan_grace_seconds)
            try:
                if removed := await sweep_orphans(objects, owner, known, older_than):
                    log.info("%s: removed %d objects no record owns", owner, removed)
            except StoreUnavailable as error:
                log.warning("%s's orphan sweep: the object store did not answer: %s", owner, error)
            await asyncio.sleep(settings.photo_sweep_seconds)

    return photo_sweep
