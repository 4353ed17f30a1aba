"""Photos of a task (issue #29) on the fake unit of work and a fake object store: after photos at
completion and the command centre's at the closure check are stored and recorded with the step,
referenced by its event; an item that needs an after photo refuses a completion without one; what
is refused leaves nothing in the bucket; and who reads a task's photo. Real images made here."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import uuid
from typing import Any

import pytest
from PIL import Image

from dispatch import attachments, flows
from services.dispatch.tests.fakes import FakeObjects
from services.dispatch.tests.test_flows import CENTRE, OTHER_CENTRE, QINGHE, World, refused, staff
from townflow_shared import events
from townflow_shared.auth import Principal

READER = Principal(sub="c002", roles=frozenset({"county_reader"}))
J003_HOLDER = "s042"  # 国土资源岗's A holder in 青禾镇: J003 (地质灾害隐患核查) needs an after photo
DONE = ("已完成处置", "已为您处置完毕。")


def photo(width: int = 120, height: int = 90) -> bytes:
    """A JPEG with EXIF (a camera's name), as a phone writes one."""
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture
def world() -> World:
    w = World()
    w.objects = FakeObjects()  # type: ignore[attr-defined]
    w.deps = dataclasses.replace(w.deps, objects=w.objects)  # type: ignore[attr-defined]
    return w


def objects(world: World) -> dict[str, bytes]:
    return world.deps.objects.objects  # type: ignore[union-attr]


def complete(world: World, task_id: uuid.UUID, photos: list[bytes], by: str = "s010") -> Any:
    return flows.complete_task(world.deps, staff(by), flows.CompleteTask(task_id, *DONE, tuple(photos)))


def rows_of(world: World, task_id: uuid.UUID, stage: str) -> list[dict[str, Any]]:
    return sorted((r for r in world.uow.tables.attachments.values() if r["task_id"] == task_id and r["stage"] == stage),
                  key=lambda r: r["seq"])


async def test_after_photos_are_stored_recorded_and_referenced_by_the_completed_event(world: World) -> None:
    task_id = await world.file()
    originals = [photo(), photo(90, 120)]
    done = await complete(world, task_id, originals)
    assert done.on_time and world.task(task_id)["status"] == "completed"
    rows = rows_of(world, task_id, "after")
    request_id = world.task(task_id)["request_id"]
    assert [(r["seq"], r["request_id"], r["uploaded_by"]) for r in rows] == [(1, request_id, "s010"), (2, request_id, "s010")]
    assert all(r["stored_key"].startswith(f"dispatch/towns/{QINGHE}/matters/{request_id}/{r['attachment_id']}/")
               for r in rows)
    assert set(objects(world)) == {k for r in rows for k in (r["stored_key"], r["thumbnail_key"])}
    assert all(b"TestPhone" not in objects(world)[r["stored_key"]] for r in rows)  # no metadata kept
    completed = world.uow.published[-1]
    assert isinstance(completed, events.TaskCompleted)
    refs = completed.data.attachments
    assert [r.attachment_id for r in refs] == [str(r["attachment_id"]) for r in rows]
    assert [r.original_sha256 for r in refs] == [hashlib.sha256(p).hexdigest() for p in originals]
    assert [r.sha256 for r in refs] == [hashlib.sha256(objects(world)[r["stored_key"]]).hexdigest() for r in rows]
    assert "towns/" not in completed.model_dump_json()  # references, never where the bytes are


async def test_a_completion_without_photos_is_as_before(world: World) -> None:
    task_id = await world.file()
    await complete(world, task_id, [])
    completed = world.uow.published[-1]
    assert isinstance(completed, events.TaskCompleted) and completed.data.attachments == []
    assert world.uow.tables.attachments == {} and objects(world) == {}


async def test_an_item_that_needs_an_after_photo_is_not_completed_without_one(world: World) -> None:
    task_id = await world.file("J003")
    assert world.task(task_id)["assignee"] == J003_HOLDER
    refusal = await refused("task.completion_photo_required", complete(world, task_id, [], by=J003_HOLDER))
    assert (refusal.status, refusal.field, refusal.params) == (422, "photos", {"item_code": "J003"})
    assert world.task(task_id)["status"] == "dispatched"
    assert world.uow.types_published() == ["dispatch.task.dispatched"]
    await complete(world, task_id, [photo()], by=J003_HOLDER)
    assert world.task(task_id)["status"] == "completed" and len(rows_of(world, task_id, "after")) == 1


async def test_too_many_or_bad_photos_are_refused_before_anything_is_stored(world: World) -> None:
    task_id = await world.file()
    too_many = await refused("attachment.too_many", complete(world, task_id, [photo()] * 4))
    assert (too_many.field, too_many.params["limit"]) == ("photos", 3)
    bad = await refused("photo.not_a_photo", complete(world, task_id, [photo(), b"%PDF-1.7"]))
    assert [(e.field, e.code) for e in bad.errors] == [("photos[1]", "photo.not_a_photo")]
    assert objects(world) == {} and world.task(task_id)["status"] == "dispatched"


async def test_who_may_not_complete_stores_nothing(world: World) -> None:
    task_id = await world.file()
    await refused("task.not_assignee", complete(world, task_id, [photo()], by="s015"))
    await refused("task.not_found", complete(world, uuid.uuid4(), [photo()]))
    assert objects(world) == {}


async def test_without_an_object_store_photos_are_refused_with_503_and_the_task_stays_open(world: World) -> None:
    task_id = await world.file()
    world.deps = dataclasses.replace(world.deps, objects=None)
    refusal = await refused("attachment.storage_unavailable", complete(world, task_id, [photo()]))
    assert refusal.status == 503 and world.task(task_id)["status"] == "dispatched"
    await complete(world, task_id, [])  # without photos, as before
    assert world.task(task_id)["status"] == "completed"


async def test_a_completion_refused_in_its_transaction_forgets_its_objects(world: World) -> None:
    task_id = await world.file()
    real_finish = flows.finish_task

    async def accepted_meanwhile(*args: Any, **kwargs: Any) -> bool:
        raise flows.CODES["task.status_forbids"](action="complete", status="completed", allowed="open")

    flows.finish_task = accepted_meanwhile  # type: ignore[assignment]
    try:
        await refused("task.status_forbids", complete(world, task_id, [photo()]))
    finally:
        flows.finish_task = real_finish  # type: ignore[assignment]
    assert objects(world) == {} and world.uow.tables.attachments == {}


async def test_the_command_centres_check_photos_are_kept_with_the_check_either_way(world: World) -> None:
    task_id = await world.file()
    await complete(world, task_id, [photo()])
    failed = await flows.verify_task(world.deps, CENTRE, flows.VerifyTask(task_id, False, "不到位", (photo(60, 60),)))
    assert failed.status == "rework"
    (check,) = rows_of(world, task_id, "check")
    assert check["uploaded_by"] == CENTRE.sub
    verified = world.uow.published[-1]
    assert isinstance(verified, events.TaskVerified)
    assert [r.attachment_id for r in verified.data.attachments] == [str(check["attachment_id"])]
    assert verified.data.attachments[0].sha256 == hashlib.sha256(objects(world)[check["stored_key"]]).hexdigest()
    # Another town's command centre takes no photo of it; nor does a check of a task not completed.
    await refused("town.not_yours", flows.verify_task(world.deps, OTHER_CENTRE, flows.VerifyTask(task_id, True, "",
                                                                                                  (photo(),))))
    await refused("task.status_forbids", flows.verify_task(world.deps, CENTRE, flows.VerifyTask(task_id, True, "",
                                                                                                 (photo(),))))
    assert len(objects(world)) == 4  # the after photo's and the check photo's, each with its thumbnail


async def test_a_tasks_photos_are_read_by_its_towns_readers_each_read_recorded(world: World) -> None:
    task_id = await world.file()
    await complete(world, task_id, [photo()])
    (row,) = rows_of(world, task_id, "after")
    world.deps = dataclasses.replace(world.deps, database=FakeReads(world))  # type: ignore[arg-type]
    for reader in (CENTRE, staff("s015"), READER):
        data, content_type = await flows.read_photo(world.deps, reader, flows.ReadPhoto(
            task_id, row["attachment_id"], "photo"))
        assert (data, content_type) == (objects(world)[row["stored_key"]], "image/jpeg")
    thumbnail, _ = await flows.read_photo(world.deps, CENTRE, flows.ReadPhoto(task_id, row["attachment_id"], "thumbnail"))
    assert thumbnail == objects(world)[row["thumbnail_key"]]
    await refused("task.not_found", flows.read_photo(world.deps, OTHER_CENTRE, flows.ReadPhoto(
        task_id, row["attachment_id"], "photo")))
    await refused("attachment.not_found", flows.read_photo(world.deps, CENTRE, flows.ReadPhoto(
        task_id, uuid.uuid4(), "photo")))


async def test_the_sweep_removes_dispatchs_orphans_only(world: World) -> None:
    from datetime import UTC, datetime, timedelta

    from townflow_shared.objects import object_key

    task_id = await world.file()
    await complete(world, task_id, [photo()])
    kept = set(objects(world))
    orphan = object_key("dispatch", QINGHE, uuid.uuid4(), uuid.uuid4(), "photo.jpg")
    intakes = object_key("intake", QINGHE, uuid.uuid4(), uuid.uuid4(), "photo.jpg")
    store = world.deps.objects
    assert store is not None
    for key in (orphan, intakes):
        await store.put(key, b"x", "image/jpeg")
    store.listed = FakeListing(objects(world)).listed  # type: ignore[attr-defined]
    removed = await attachments.sweep_orphans(store, world.uow.factory(), datetime.now(UTC) + timedelta(minutes=5))
    assert removed == 1 and set(objects(world)) == kept | {intakes}


class FakeListing:
    """ObjectStore.listed over the fake's objects, every one written long ago."""

    def __init__(self, stored: dict[str, bytes]) -> None:
        self.stored = stored

    async def listed(self, prefix: str, after: str | None = None, limit: int = 1000) -> list[Any]:
        from datetime import UTC, datetime

        from townflow_shared.objects import StoredObject

        keys = sorted(k for k in self.stored if k.startswith(prefix) and (after is None or k > after))[:limit]
        return [StoredObject(k, datetime(2020, 1, 1, tzinfo=UTC)) for k in keys]


class FakeReads:
    """The reads' pool as flows.read_photo uses it (store.task, store.attachment_of), over the fake's tables."""

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def pool(self) -> FakeReads:
        return self

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        tables = self.world.uow.tables
        if "FROM tasks" in sql:
            return tables.tasks.get(args[0])
        found = tables.attachments.get(args[1])
        return found if found is not None and found["task_id"] == args[0] else None
