"""The object store in `make chaos` (issue #29): one filing in PHOTO_EVERY carries a photo (intake's
`POST /v1/filings`) while SeaweedFS is stopped and started again among the other faults. A filing
refused while the store is down (503 `attachment.storage_unavailable`) is retried with its
Idempotency-Key like any other, so none is lost; then, from intake's database and the bucket:

- every acknowledged filing's photos are recorded, and each recorded photo's copy and thumbnail are
  in the bucket with the digest its record (and its event) carries: no photo lost once acknowledged;
- no object without a record is left once the orphan sweep has run (the chaos stack sweeps every
  few seconds with a short grace, instead of hourly).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from PIL import Image

from devstack.stack import Stack
from townflow_shared.objects import ObjectStore, StoreUnavailable, attachment_of

PHOTO_EVERY = 5  # one filing in this many carries a photo
# The chaos stack's orphan sweep: every few seconds, for objects older than a filing takes to commit
# even through a fault (a database stopped for the incident's seconds, then its retries).
SWEEP_ENV = {"TOWNFLOW_INTAKE_PHOTO_SWEEP_SECONDS": "5", "TOWNFLOW_INTAKE_PHOTO_ORPHAN_GRACE_SECONDS": "60"}


def _photo() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((640, 480)).save(out, "JPEG", quality=85)
    return out.getvalue()


@dataclass
class PhotoFilings:
    """Which filings of a load carry a photo, and what became of them."""

    every: int = PHOTO_EVERY
    photo: bytes = field(default_factory=_photo)
    filed: dict[str, int] = field(default_factory=dict)  # request id -> photos acknowledged with it
    refused_unavailable: int = 0  # answers 503: the store was down (the filing is retried)

    def takes(self, n: int) -> bool:
        return n % self.every == 0

    def files(self) -> list[tuple[str, tuple[str, bytes, str]]]:
        return [("photos", ("chaos.jpg", self.photo, "image/jpeg"))]


def object_store_of(stack: Stack) -> ObjectStore:
    assert stack.s3 is not None and stack.s3_bucket is not None
    return ObjectStore(stack.s3.endpoint, stack.s3_bucket, stack.s3.access_key, stack.s3.secret_key)


async def _every_key(store: ObjectStore, prefix: str) -> list[str]:
    keys: list[str] = []
    while listed := await store.listed(prefix, keys[-1] if keys else None, 1000):
        keys += [o.key for o in listed]
    return keys


async def judge_photos(stack: Stack, photos: PhotoFilings, orphans_within: float = 180.0) -> dict[str, Any]:
    """What became of the load's photos: lost ones (acknowledged, and not recorded or not stored as
    recorded), and the objects without a record still there once the sweep has had its time."""
    assert stack.postgres is not None
    store = object_store_of(stack)
    conn = await asyncpg.connect(stack.postgres.dsn("intake"))
    try:
        rows = await conn.fetch("SELECT request_id::text, attachment_id, stored_key, thumbnail_key, sha256"
                                " FROM attachments WHERE request_id::text = ANY($1)", list(photos.filed))
        recorded: dict[str, int] = {}
        for row in rows:
            recorded[row["request_id"]] = recorded.get(row["request_id"], 0) + 1
        lost = [rid for rid, n in photos.filed.items() if recorded.get(rid, 0) != n]
        for row in rows:
            try:
                stored = await store.get(row["stored_key"])
                await store.get(row["thumbnail_key"])
            except KeyError:
                lost.append(str(row["attachment_id"]))
                continue
            if hashlib.sha256(stored).hexdigest() != row["sha256"]:
                lost.append(str(row["attachment_id"]))
        deadline, orphans = time.monotonic() + orphans_within, ["?"]
        while orphans and time.monotonic() < deadline:
            known = {str(r["attachment_id"]) for r in await conn.fetch("SELECT attachment_id FROM attachments")}
            try:
                orphans = [k for k in await _every_key(store, "intake/") if attachment_of(k) not in known]
            except StoreUnavailable:
                orphans = ["?"]
            if orphans:
                await asyncio.sleep(2)
    finally:
        await conn.close()
    return {"photo_filings_acknowledged": len(photos.filed), "photos_recorded": len(rows),
            "photos_lost": len(lost), "photos_lost_ids": lost[:20], "photo_orphans_left": len(orphans),
            "photo_filings_refused_while_the_store_was_down": photos.refused_unavailable}
