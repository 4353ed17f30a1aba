"""Photos of a task (issue #29): the holder's after photos at completion (处置后照片, stage `after`)
and the command centre's own at the closure check (核查, stage `check`). What every service does
with a photo is townflow_shared.attachments; this is dispatch's side of it: how many a step takes,
where its objects go (dispatch's prefix, the task's town and matter), its rows and the sweep.

Nothing is half-stored: a step's photos are cleaned and put before its transaction, then recorded
in it with the task's change and its event (flows.complete_task, flows.verify_task); a step refused
in its transaction forgets its objects at once, and the sweep removes what no record owns.

The objects' keys are a contract with intake, which shows the citizen the after photos it learnt
of from `dispatch.task.completed`: `object_key("dispatch", town, request_id, attachment_id, variant)`
(docs/attachments.md)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from townflow_shared import attachments as shared
from townflow_shared.events import AttachmentRef
from townflow_shared.objects import ObjectStore
from townflow_shared.photos import PhotoLimits
from townflow_shared.town import Town

from . import rules
from .store import Row, UnitOfWorkFactory

OWNER = "dispatch"  # the prefix of dispatch's objects in the deployment's bucket
Stage = Literal["after", "check"]
TOO_MANY, STORAGE_UNAVAILABLE, NOT_FOUND = shared.TOO_MANY, shared.STORAGE_UNAVAILABLE, shared.NOT_FOUND


async def stored(objects: ObjectStore | None, limits: PhotoLimits, town: Town, task: Row,
                 photos: Sequence[bytes]) -> list[shared.Stored]:
    """The step's photos counted against the item, cleaned and put under the task's town and
    matter: each one's place and digests, or a refusal with nothing left in the bucket."""
    limit = rules.task_photos_max(town, task["item_code"])
    if len(photos) > limit:
        raise TOO_MANY("photos", limit=limit)
    cleaned = await shared.cleaned(photos, limits)
    placed = shared.placed(OWNER, town.code, task["request_id"], cleaned)
    await shared.put(objects, placed)
    return placed


def rows(placed: Sequence[shared.Stored], town_code: str, task: Row, stage: Stage, by: str,
         at: datetime) -> list[dict[str, Any]]:
    """The step's attachment rows: every owner's columns, then the task's."""
    return [{**s.columns(town_code, "photo", by, at), "task_id": task["task_id"], "request_id": task["request_id"],
             "stage": stage} for s in placed]


def references(recorded: Sequence[dict[str, Any]]) -> list[AttachmentRef]:
    return [shared.reference(row) for row in recorded]


async def forget(objects: ObjectStore | None, placed: Sequence[shared.Stored]) -> None:
    """A step refused in its transaction: its objects have no record, and never will."""
    if objects is not None and placed:
        await shared.forget(objects, [key for s in placed for key in s.keys])


async def sweep_orphans(objects: ObjectStore, unit_of_work: UnitOfWorkFactory, older_than: datetime,
                        page: int = 1000) -> int:
    """Remove dispatch's attachment objects last written before `older_than` that no record owns."""
    async def known(attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        async with unit_of_work() as uow:
            return await uow.store.known_attachments(attachment_ids)
    return await shared.sweep_orphans(objects, OWNER, known, older_than, page)
