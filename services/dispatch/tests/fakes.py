"""The one fake of the unit tier: dispatch's unit of work in memory (dicts for the tables, a list
for the outbox), so the command handlers run with no database, no Kafka and no network."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from dispatch.rules import OPEN_STATUSES
from dispatch.store import Row, TaskStore, UnitOfWork, UnitOfWorkFactory
from townflow_shared.events import Envelope, RequestFiledData
from townflow_shared.objects import StoreUnavailable

# The columns a new task row gets from the database's defaults (migrations 002, 004, 008).
_DEFAULTS: dict[str, Any] = {
    "accepted_at": None, "completed_at": None, "completed_by": None, "resolution": None, "on_time": None,
    "returned_at": None, "return_reason": None, "inspection_id": None, "rework_count": 0, "extension_count": 0,
    "merged_into": None, "merged_at": None, "merged_from_status": None, "reopen_count": 0, "called_back": False,
}


class FakeTaskStore:
    """The tables a command handler touches, as dicts and lists."""

    def __init__(self) -> None:
        self.matters: dict[uuid.UUID, dict[str, Any]] = {}
        self.tasks: dict[uuid.UUID, dict[str, Any]] = {}
        self.supervisions: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
        self.extensions: dict[uuid.UUID, dict[str, Any]] = {}
        self.off_post: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.merges: dict[uuid.UUID, dict[str, Any]] = {}
        self.replies: dict[uuid.UUID, dict[str, Any]] = {}
        self.suspensions: dict[uuid.UUID, dict[str, Any]] = {}
        self.attachments: dict[uuid.UUID, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    async def record_matter(self, town_code: str, data: RequestFiledData, event_id: uuid.UUID,
                            received_at: datetime) -> None:
        self.matters[uuid.UUID(data.request_id)] = {"town_code": town_code, "event_id": event_id,
                                                    "received_at": received_at, **data.model_dump()}

    async def unavailable_staff(self, town_code: str, caps: dict[str, int], now: datetime) -> set[str]:
        away = {o["staff_id"] for o in self.off_post
                if o["town_code"] == town_code and o["from_at"] <= now < o["to_at"]}
        held = {staff: sum(1 for t in self.tasks.values() if t["town_code"] == town_code and t["assignee"] == staff
                           and t["status"] in OPEN_STATUSES) for staff in caps}
        return {s for s in caps if s in away or held[s] >= caps[s]}

    async def insert_task(self, row: dict[str, Any]) -> None:
        self.tasks[row["task_id"]] = {**_DEFAULTS, **row}

    async def task(self, task_id: uuid.UUID) -> Row | None:
        found = self.tasks.get(task_id)
        return dict(found) if found else None

    async def task_for_update(self, task_id: uuid.UUID) -> Row | None:
        return await self.task(task_id)

    async def tasks_for_update(self, town_code: str, task_ids: Iterable[uuid.UUID]) -> list[Row]:
        return [dict(self.tasks[t]) for t in sorted(set(task_ids))
                if t in self.tasks and self.tasks[t]["town_code"] == town_code]

    async def current_task_for_update(self, town_code: str, request_id: uuid.UUID) -> Row | None:
        mine = [t for t in self.tasks.values() if t["town_code"] == town_code and t["request_id"] == request_id
                and t["status"] != "redispatched"]
        return dict(max(mine, key=lambda t: t["dispatched_at"])) if mine else None

    async def update_task(self, task_id: uuid.UUID, **fields: Any) -> None:
        self.tasks[task_id].update(fields)

    async def claim_due_supervisions(self, towns: Sequence[str], now: datetime, limit: int) -> list[Row]:
        due = sorted((t for t in self.tasks.values() if t["status"] in OPEN_STATUSES and t["town_code"] in towns
                      and t["next_supervision_at"] is not None and t["next_supervision_at"] <= now),
                     key=lambda t: t["next_supervision_at"])[:limit]
        return [{**t, "sent": [level for (task_id, level) in self.supervisions if task_id == t["task_id"]]}
                for t in due]

    async def add_supervisions(self, levels: Sequence[tuple[uuid.UUID, str, str, list[str]]],
                               at: datetime) -> set[tuple[uuid.UUID, str]]:
        new = set()
        for task_id, town_code, level, notified in levels:
            if (task_id, level) not in self.supervisions:
                self.supervisions[(task_id, level)] = {"town_code": town_code, "at": at, "notified": notified}
                new.add((task_id, level))
        return new

    async def set_next_supervisions(self, nexts: Sequence[tuple[uuid.UUID, datetime | None]]) -> None:
        for task_id, next_at in nexts:
            self.tasks[task_id]["next_supervision_at"] = next_at

    async def supervisions_sent(self, task_id: uuid.UUID) -> set[str]:
        return {level for (t, level) in self.supervisions if t == task_id}

    async def forget_supervisions(self, task_id: uuid.UUID) -> None:
        for key in [k for k in self.supervisions if k[0] == task_id]:
            del self.supervisions[key]

    async def add_extension(self, town_code: str, task_id: uuid.UUID, days: int, reason: str, by: str,
                            at: datetime) -> uuid.UUID | None:
        if any(e["task_id"] == task_id and e["status"] == "pending" for e in self.extensions.values()):
            return None  # the table's partial unique index: one pending request per task
        extension_id = uuid.uuid4()
        self.extensions[extension_id] = {"extension_id": extension_id, "town_code": town_code, "task_id": task_id,
                                         "days": days, "reason": reason, "requested_by": by, "requested_at": at,
                                         "status": "pending", "decided_by": None, "decided_at": None, "note": None}
        return extension_id

    async def pending_extension(self, task_id: uuid.UUID) -> Row | None:
        return next((dict(e) for e in self.extensions.values()
                     if e["task_id"] == task_id and e["status"] == "pending"), None)

    async def decide_extension(self, extension_id: uuid.UUID, status: str, by: str, at: datetime,
                               note: str | None) -> None:
        self.extensions[extension_id].update(status=status, decided_by=by, decided_at=at, note=note)

    async def add_off_post(self, town_code: str, staff_id: str, from_at: datetime, to_at: datetime,
                           reason: str, by: str) -> int:
        entry = next(self._ids)
        self.off_post.append({"id": entry, "town_code": town_code, "staff_id": staff_id, "from_at": from_at,
                              "to_at": to_at, "reason": reason, "registered_by": by})
        return entry

    async def save_merge_state(self, town_code: str, request_id: uuid.UUID, into_request_id: uuid.UUID,
                               merged: bool, at: datetime, event_id: uuid.UUID) -> None:
        self.merges[request_id] = {"request_id": request_id, "town_code": town_code,
                                   "into_request_id": into_request_id, "merged": merged, "at": at,
                                   "event_id": event_id}

    async def merge_state(self, request_id: uuid.UUID) -> Row | None:
        found = self.merges.get(request_id)
        return dict(found) if found else None

    async def add_callback(self, town_code: str, task_id: uuid.UUID, reached: bool, rating: str | None,
                           note: str, by: str, at: datetime, reopened: bool) -> None:
        self.callbacks.append({"town_code": town_code, "task_id": task_id, "reached": reached, "rating": rating,
                               "note": note, "by": by, "at": at, "reopened": reopened})

    async def save_reply(self, town_code: str, task_id: uuid.UUID, reply: str, at: datetime) -> None:
        self.replies[task_id] = {"town_code": town_code, "reply": reply, "at": at}
    async def add_suspension(self, town_code: str, task_id: uuid.UUID, category: str, reason: str, by: str,
                             at: datetime) -> uuid.UUID | None:
        if any(s["task_id"] == task_id and s["status"] in ("pending", "suspended") for s in self.suspensions.values()):
            return None  # the table's partial unique index: one request pending or in force per task
        suspension_id = uuid.uuid4()
        self.suspensions[suspension_id] = {
            "suspension_id": suspension_id, "town_code": town_code, "task_id": task_id, "category": category,
            "reason": reason, "requested_by": by, "requested_at": at, "status": "pending", "decided_by": None,
            "decided_at": None, "note": None, "from_status": None, "resolve_by_then": None, "working_left": None,
            "resumed_by": None, "resumed_at": None, "resolve_by_after": None}
        return suspension_id

    async def open_suspension(self, task_id: uuid.UUID, status: str) -> Row | None:
        return next((dict(s) for s in self.suspensions.values()
                     if s["task_id"] == task_id and s["status"] == status), None)

    async def update_suspension(self, suspension_id: uuid.UUID, **fields: Any) -> None:
        self.suspensions[suspension_id].update(fields)

    async def add_attachments(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            assert row["attachment_id"] not in self.attachments  # the primary key
            self.attachments[row["attachment_id"]] = dict(row)

    async def known_attachments(self, attachment_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return set(attachment_ids) & set(self.attachments)


class FakeUnitOfWork:
    """The tables and the outbox; a unit that raises leaves both as they were (its rollback)."""

    def __init__(self) -> None:
        self.store: TaskStore = FakeTaskStore()
        self.published: list[Envelope] = []
        self._pending: list[Envelope] = []
        self.commits = 0

    async def publish(self, *events: Envelope) -> None:
        self._pending.extend(events)

    def factory(self) -> UnitOfWorkFactory:
        @asynccontextmanager
        async def unit_of_work() -> AsyncIterator[UnitOfWork]:
            saved = copy.deepcopy(self.store.__dict__)
            self._pending = []
            try:
                yield self
            except BaseException:
                self.store.__dict__.update(saved)
                self._pending = []
                raise
            self.published.extend(self._pending)
            self._pending = []
            self.commits += 1

        return unit_of_work

    @property
    def tables(self) -> FakeTaskStore:
        assert isinstance(self.store, FakeTaskStore)
        return self.store

    def types_published(self) -> list[str]:
        return [e.type for e in self.published]


class FakeObjects:
    """The object store in memory (townflow_shared.objects.ObjectStore's calls); `down` makes every
    call fail as an unreachable S3 does."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the fake store is down")

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self._check()
        self.objects[key] = data

    async def get(self, key: str) -> bytes:
        self._check()
        return self.objects[key]

    async def delete(self, keys: Sequence[str]) -> None:
        self._check()
        for key in keys:
            self.objects.pop(key, None)
