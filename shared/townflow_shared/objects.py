"""The object store (S3, the interface every county's government cloud offers; SeaweedFS in local
runs and tests): one thin adapter over boto3, the one place a service touches S3. Photos and evidence
live here, one bucket per deployment, under keys by town and matter (`object_key`); their records and
every rule about who may read them stay in the owning service's database and code.

boto3 is blocking: each call runs in a worker thread (`asyncio.to_thread`). A filing with photos
makes a few calls, each of a few hundred kilobytes, so a thread per call costs nothing that matters,
and AWS's own client (botocore underneath, released in step with it) is the best-kept S3 client
there is for Python (docs/attachments.md says more)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from .settings import PhotoTakingSettings


class StoreUnavailable(Exception):
    """The object store did not answer, or refused the call (a network fault, wrong credentials,
    no bucket): the caller refuses with 503, never half-stores."""


class ObjectExists(Exception):
    """A write-once put (`put_once`) found an object under its key already: the store refused to
    replace it (412). The object there is not the caller's to remove."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    last_modified: datetime


def object_key(owner: str, town_code: str, matter_id: uuid.UUID | str, attachment_id: uuid.UUID | str,
               variant: str) -> str:
    """Where an attachment's bytes live: under the service that owns it (its orphan sweep lists only
    its own), then by town and matter, so one town's or one matter's objects are one prefix (an
    erasure or an export lists a prefix, not the bucket). The matter is the request id everywhere."""
    return f"{owner}/towns/{town_code}/matters/{matter_id}/{attachment_id}/{variant}"


def attachment_of(key: str) -> str | None:
    """The attachment id in a key `object_key` made; None for a key it did not make."""
    parts = key.split("/")
    return parts[5] if len(parts) == 7 and parts[1] == "towns" and parts[3] == "matters" else None


class ObjectStore:
    """One bucket on one S3 endpoint. Thread-safe: boto3's clients are."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, region: str = "us-east-1",
                 timeout_seconds: float = 10.0, retention_days: int | None = None) -> None:
        self.bucket = bucket
        # A bucket created with Object Lock (enforcement's evidence bucket, when a county has one):
        # each `put_once` is retained in COMPLIANCE mode this many days, which no credentials can
        # shorten or delete before (docs/attachments.md#object-lock-a-bucket-of-its-own-for-evidence).
        self.retention_days = retention_days
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint, "aws_access_key_id": access_key, "aws_secret_access_key": secret_key,
            "region_name": region}
        self._timeout_seconds = timeout_seconds
        self._client_lock = threading.Lock()
        self._made: Any = None

    def _client(self) -> Any:
        """boto3's S3 client, made at the first call, in the worker thread that call runs in:
        importing boto3 and building the client take about half a second of CPU (0.47 s measured),
        which a service's start, and a replica restarted on a loaded machine, need not pay before
        its first photo. Path-style addressing: a county's S3 (and SeaweedFS) is on its own host
        name, without wildcard DNS for bucket sub-domains. Standard retries: a few, with back-off,
        then StoreUnavailable."""
        with self._client_lock:
            if self._made is None:
                import boto3  # on first use (above)
                from botocore.config import Config

                self._made = boto3.session.Session().client("s3", **self._client_options, config=Config(
                    s3={"addressing_style": "path"}, signature_version="s3v4",
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=min(self._timeout_seconds, 3.0), read_timeout=self._timeout_seconds))
            return self._made

    @classmethod
    def from_settings(cls, settings: PhotoTakingSettings, bucket: str | None = None,
                      retention_days: int | None = None) -> ObjectStore | None:
        """The store the settings name (on `bucket` in place of the deployment's, with its
        retention); None when they name none (the service runs without photos)."""
        bucket = bucket or settings.s3_bucket
        if not settings.s3_endpoint or not bucket:
            return None
        if settings.s3_access_key is None or settings.s3_secret_key is None:
            raise ValueError("TOWNFLOW_S3_ACCESS_KEY and TOWNFLOW_S3_SECRET_KEY are required with TOWNFLOW_S3_ENDPOINT")
        return cls(settings.s3_endpoint, bucket, settings.s3_access_key.get_secret_value(),
                   settings.s3_secret_key.get_secret_value(), settings.s3_region, retention_days=retention_days)

    async def _call(self, operation: str, **params: Any) -> Any:
        try:
            return await asyncio.to_thread(lambda: getattr(self._client(), operation)(Bucket=self.bucket, **params))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(params.get("Key")) from None
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise ObjectExists(params.get("Key")) from None
            raise StoreUnavailable(f"{operation}: {error.response.get('Error', {}).get('Code')}") from error
        except BotoCoreError as error:
            raise StoreUnavailable(f"{operation}: {type(error).__name__}") from error

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call("put_object", Key=key, Body=data, ContentType=content_type)

    async def put_once(self, key: str, data: bytes, content_type: str) -> None:
        """Put an object that can never be replaced through this call: S3's conditional write
        (`If-None-Match: *`), so the store itself refuses a second put to the key (412:
        ObjectExists), even one racing this. Evidence (enforcement) is written this way. On a store
        with a retention, the object is also locked in COMPLIANCE mode until then (the date on this
        machine's clock: the lock counts in days, a clock's skew is nothing to it)."""
        lock: dict[str, Any] = {}
        if self.retention_days:
            lock = {"ObjectLockMode": "COMPLIANCE",
                    "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=self.retention_days)}
        await self._call("put_object", Key=key, Body=data, ContentType=content_type, IfNoneMatch="*", **lock)

    async def get(self, key: str) -> bytes:
        """The object's bytes (photos are small: a stored copy is a few hundred kilobytes);
        KeyError when there is none."""
        answer = await self._call("get_object", Key=key)
        return await asyncio.to_thread(answer["Body"].read)  # type: ignore[no-any-return]

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove the objects (one that is not there is no error), up to 1000 per call as S3 takes them."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            answer = await self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            if answer.get("Errors"):
                raise StoreUnavailable(f"delete_objects: {answer['Errors'][0].get('Code')}")

    async def listed(self, prefix: str, after: str | None = None, limit: int = 1000) -> list[StoredObject]:
        """Up to `limit` objects under `prefix` in key order, after the key `after` (a page at a time)."""
        params: dict[str, Any] = {"Prefix": prefix, "MaxKeys": limit}
        if after:
            params["StartAfter"] = after
        answer = await self._call("list_objects_v2", **params)
        return [StoredObject(o["Key"], o["LastModified"]) for o in answer.get("Contents", [])]

    async def ensure_bucket(self, object_lock: bool = False) -> None:
        """Create the deployment's bucket when it is not there (local runs; a county's cloud creates
        it); with `object_lock`, as a bucket with Object Lock on (S3 turns it on at creation only,
        and versioning with it)."""
        try:
            await self._call("head_bucket")
        except (StoreUnavailable, KeyError):
            await self._call("create_bucket", **({"ObjectLockEnabledForBucket": True} if object_lock else {}))
