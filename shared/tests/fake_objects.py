"""The object store in memory, for the unit tier of every service that takes photos (intake's
filings, dispatch's task photos, enforcement's evidence): townflow_shared.objects.ObjectStore's
calls, S3's conditional write included."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from townflow_shared.objects import ObjectExists, StoredObject, StoreUnavailable


class FakeObjects:
    """The object store in memory, with S3's conditional write (`put_once` refuses a key that has
    an object, as SeaweedFS does with 412); `down` makes every call fail as an unreachable S3
    does; `after_put` runs after each put (a test changes the world between put and record)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.written: dict[str, datetime] = {}
        self.down = False
        self.after_put: Callable[[], None] | None = None

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the fake store is down")

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self._check()
        self.objects[key], self.written[key] = data, datetime.now(UTC)
        if self.after_put is not None:
            self.after_put()

    async def put_once(self, key: str, data: bytes, content_type: str) -> None:
        self._check()
        if key in self.objects:
            raise ObjectExists(key)
        await self.put(key, data, content_type)

    async def get(self, key: str) -> bytes:
        self._check()
        return self.objects[key]

    async def delete(self, keys: Sequence[str]) -> None:
        self._check()
        for key in keys:
            self.objects.pop(key, None)

    async def listed(self, prefix: str, after: str | None = None, limit: int = 1000) -> list[StoredObject]:
        self._check()
        keys = sorted(k for k in self.objects if k.startswith(prefix) and (after is None or k > after))
        return [StoredObject(k, self.written[k]) for k in keys[:limit]]
