"""Fill the databases of the services whose records come from their own HTTP actions (intake's
filings, dispatch's task states, enforcement's inspections, cases and plans) from the generated
history, through each service's own `store` functions, in-process.

Why not through their consumers: dispatch turns every `request.filed` into a new task with a
fresh id and publishes it, and enforcement turns every enforcement task into a planned
inspection; fed the history, they would publish a second history beside it. Their consumer
groups are instead moved to the end of the history (offsets.py), as after a year of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from dispatch import rules as dispatch_rules
from dispatch import store as dispatch_store
from enforcement import rules as enforcement_rules
from enforcement import store as enforcement_store
from intake import store as intake_store
from townflow_shared import attachments, events
from townflow_shared.events import Envelope
from townflow_shared.objects import object_key
from townflow_shared.town import Town

from .history import Matter, TownMonth, bench_photo

FILED_BY = "s010"  # the 便民服务中心 clerk who filed them; no citizen's data: names are placeholders


def slice_key(matter: Matter) -> str:
    """Matters written on different connections at once must not meet on a unique key: those
    inspecting the same target would (enforcement keeps one planned inspection per target), so a
    matter is placed by its inspection's target, else by its own id."""
    done = next((e for e in matter.events if isinstance(e, events.InspectionDone)), None)
    return done.data.target if done else matter.request_id


async def load_intake(conn: asyncpg.Connection, month: TownMonth) -> None:
    """Each matter's request row and first timeline step, as intake's filing writes them."""
    rows, details, places = [], [], []
    for matter in month.matters:
        d: events.RequestFiledData = matter.events[0].data  # type: ignore[assignment]
        if d.point is not None:  # a located matter's place (issue #30), as intake's filing writes it
            places.append({"request_id": uuid.UUID(d.request_id), "town_code": month.town_code,
                           "item_code": d.item_code, "filed_at": d.filed_at, "grid_cell": d.grid_cell,
                           "point": f"SRID=4326;POINT({d.point.longitude!r} {d.point.latitude!r})"})
        rows.append({
            "request_id": uuid.UUID(d.request_id), "ticket_no": d.ticket_no, "access_code": matter.access_code,
            "item_code": d.item_code, "colour": d.colour, "channel": d.channel, "description": d.description,
            "village": d.village, "location": d.location, "target": d.target, "proxy_agent_id": None,
            "village_record_id": None, "citizen_name": "压测", "citizen_phone": None, "citizen_id_number": None,
            "citizen_ref": d.citizen_ref, "filed_by": FILED_BY, "filed_at": d.filed_at, "status": "filed",
            "status_at": d.filed_at, "trace_headers": {},
        })
        details.append({"channel": d.channel})
    if rows:
        await intake_store.insert_requests(conn, rows, "filed", details, places=places)
    await intake_store.PgStore(conn).insert_attachments(
        [photo_row(month.town_code, matter, attachment_id, seq) for matter in month.matters
         for seq, attachment_id in enumerate(matter.photos, 1)])


def photo_row(town_code: str, matter: Matter, attachment_id: uuid.UUID, seq: int) -> dict[str, Any]:
    """A photo filed with the matter, as intake records it (issue #29): the bench's one cleaned
    photo, without a capture time or position."""
    photo = bench_photo()
    d: events.RequestFiledData = matter.events[0].data  # type: ignore[assignment]
    ref = next(a for a in d.attachments if a.attachment_id == str(attachment_id))
    return {
        "attachment_id": attachment_id, "request_id": uuid.UUID(matter.request_id), "town_code": town_code,
        "kind": "photo", "seq": seq, "content_type": ref.content_type, "bytes": ref.size, "sha256": ref.sha256,
        "width": photo.width, "height": photo.height,
        "stored_key": object_key("intake", town_code, matter.request_id, attachment_id, "photo.jpg"),
        "thumbnail_key": object_key("intake", town_code, matter.request_id, attachment_id, "thumbnail.jpg"),
        "original_type": photo.original_type, "original_bytes": photo.original_bytes,
        "original_sha256": photo.original_sha256, "captured_at": None, "latitude": None, "longitude": None,
        "uploaded_by": FILED_BY, "uploaded_at": d.filed_at}


def _task_row(town: Town, event: Envelope, ticket_no: str) -> dict[str, Any]:
    t = event.data
    assert isinstance(event, events.TaskDispatched)
    return {
        "task_id": uuid.UUID(t.task_id), "town_code": town.code, "request_id": uuid.UUID(t.request_id),
        "ticket_no": ticket_no, "item_code": t.item_code, "kind": t.kind, "colour": t.colour, "village": t.village,
        "location": t.location, "target": t.target, "lead_module": t.lead_module,
        "cooperating_modules": t.cooperating_modules, "post": t.post, "assignee": t.assignee,
        "assigned_via": t.assigned_via, "status": "dispatched", "dispatched_at": t.dispatched_at,
        "window_start": t.dispatched_at, "respond_by": t.respond_by, "resolve_by": t.resolve_by,
        "redispatch_of": uuid.UUID(t.redispatch_of) if t.redispatch_of else None, "trace_headers": {},
        "rework_count": 0, "extension_count": 0,
        "next_supervision_at": dispatch_rules.next_supervision_at(t.dispatched_at, t.resolve_by, (),
                                                                  town.rules.dispatch),
    }


def dispatch_state(town: Town, matter: Matter) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, list[str], datetime]],
                                                        list[tuple[str, int, str, str, datetime]]]:
    """A matter's tasks as dispatch holds them after its history (the same transitions api.py
    makes), its supervision rows and its approved extensions."""
    ticket_no = matter.ticket_no
    tasks: dict[str, dict[str, Any]] = {}
    supervisions: list[tuple[str, str, list[str], datetime]] = []
    extensions: list[tuple[str, int, str, str, datetime]] = []
    sent: dict[str, set[str]] = {}
    for event in matter.events:
        d: Any = event.data
        task = tasks.get(getattr(d, "task_id", ""), {})
        if isinstance(event, events.TaskDispatched):
            tasks[d.task_id] = _task_row(town, event, ticket_no)
            if d.redispatch_of:
                tasks[d.redispatch_of]["status"] = "redispatched"
        elif isinstance(event, events.TaskAccepted):
            task |= {"status": "accepted", "accepted_at": d.accepted_at}
        elif isinstance(event, events.TaskReturned):
            task |= {"status": "returned", "returned_at": d.returned_at, "return_reason": d.reason,
                     "next_supervision_at": None}
        elif isinstance(event, events.TaskExtended):
            task |= {"resolve_by": d.resolve_by, "extension_count": task["extension_count"] + 1}
            extensions.append((d.task_id, d.days, d.reason, d.approved_by, event.time))
        elif isinstance(event, events.TaskSupervised):
            supervisions.append((d.task_id, d.level, d.notified, d.at))
            sent.setdefault(d.task_id, set()).add(d.level)
            task["next_supervision_at"] = dispatch_rules.next_supervision_at(
                task["window_start"], task["resolve_by"], sent[d.task_id], town.rules.dispatch)
        elif isinstance(event, events.TaskCompleted):
            task |= {"status": "closed" if d.inspection_id else "completed", "completed_at": d.completed_at,
                     "completed_by": d.by, "resolution": d.resolution, "on_time": d.on_time,
                     "inspection_id": d.inspection_id, "next_supervision_at": None}
        elif isinstance(event, events.TaskVerified):
            if d.passed:
                task["status"] = "closed"
            else:
                resolve_by = dispatch_rules.rework_resolve_by(d.at, task["window_start"], task["resolve_by"])
                task |= {"status": "rework", "window_start": d.at, "resolve_by": resolve_by,
                         "rework_count": task["rework_count"] + 1,
                         "next_supervision_at": dispatch_rules.next_supervision_at(d.at, resolve_by, (),
                                                                                   town.rules.dispatch)}
    return tasks, supervisions, extensions


async def load_dispatch(conn: asyncpg.Connection, town: Town, matters: Sequence[Matter]) -> None:
    for matter in matters:
        filed = matter.events[0]
        await dispatch_store.record_matter(conn, town.code, filed.data, filed.id, filed.time)  # type: ignore[arg-type]
        tasks, supervisions, extensions = dispatch_state(town, matter)
        for row in tasks.values():  # in dispatch order: a redispatch's original is there first
            await dispatch_store.insert_task(conn, row)
        for task_id, level, notified, at in supervisions:
            await dispatch_store.add_supervisions(conn, [(uuid.UUID(task_id), town.code, level, notified)], at)
        for task_id, days, reason, by, at in extensions:
            extension_id = await dispatch_store.add_extension(conn, town.code, uuid.UUID(task_id), days, reason,
                                                              by, at)
            assert extension_id is not None
            await dispatch_store.decide_extension(conn, extension_id, "approved", by, at, None)
        for event in matter.events:  # the answer to the citizen of each completion; the last one stays
            if isinstance(event, events.TaskCompleted) and event.data.reply is not None:
                await dispatch_store.save_reply(conn, town.code, uuid.UUID(event.data.task_id), event.data.reply,
                                                event.data.completed_at)
        await dispatch_store.add_attachments(conn, after_photo_rows(town.code, matter))


def after_photo_rows(town_code: str, matter: Matter) -> list[dict[str, Any]]:
    """The after photos of the matter's completions, as dispatch records them (issue #29)."""
    photo, rows = bench_photo(), []
    for event in matter.events:
        if not isinstance(event, events.TaskCompleted):
            continue
        d = event.data
        for seq, ref in enumerate(d.attachments, 1):
            rows.append({
                "attachment_id": uuid.UUID(ref.attachment_id), "town_code": town_code, "kind": "photo", "seq": seq,
                "content_type": ref.content_type, "bytes": ref.size, "sha256": ref.sha256, "width": photo.width,
                "height": photo.height,
                "stored_key": object_key("dispatch", town_code, matter.request_id, ref.attachment_id, "photo.jpg"),
                "thumbnail_key": object_key("dispatch", town_code, matter.request_id, ref.attachment_id,
                                            "thumbnail.jpg"),
                "original_type": photo.original_type, "original_bytes": photo.original_bytes,
                "original_sha256": photo.original_sha256, "captured_at": None, "latitude": None, "longitude": None,
                "uploaded_by": d.by, "uploaded_at": d.completed_at, "task_id": uuid.UUID(d.task_id),
                "request_id": uuid.UUID(matter.request_id), "stage": "after"})
    return rows


def evidence_rows(town_code: str, matter: Matter) -> list[dict[str, Any]]:
    """The evidence photos of the matter's inspections and cases (issue #29), as enforcement records
    them (evidence.evidence_row): under the matter's keys, numbered by record."""
    photo, rows = bench_photo(), []
    for event in matter.events:
        if not isinstance(event, events.EvidenceRecorded):
            continue
        d = event.data
        for seq, ref in enumerate(d.evidence, 1):
            attachment_id = uuid.UUID(ref.attachment_id)
            stored = attachments.Stored(
                attachment_id, seq, photo, object_key("enforcement", town_code, matter.request_id, attachment_id, "photo.jpg"),
                object_key("enforcement", town_code, matter.request_id, attachment_id, "thumbnail.jpg"), ref.sha256)
            rows.append(stored.columns(town_code, "photo", d.recorded_by, d.recorded_at) | {
                "inspection_id": d.inspection_id, "case_id": d.case_id, "step": d.step, "matter_id": matter.request_id,
                "note": "现场照片"})
    return rows


async def _load_inspection(conn: asyncpg.Connection, town: Town, done: events.InspectionDone,
                           dispatched: dict[str, events.TaskDispatched]) -> None:
    d = done.data
    inspection_id = uuid.UUID(d.inspection_id)
    # create_inspection draws its own id; the history's id is put in its place (the one statement
    # of ours: store has no such function, a service never renames a row) so the events other
    # services hold name this row.
    drawn = await enforcement_store.PgStore(conn).create_inspection(town.code, d.target, d.units, d.started_at)
    await conn.execute("UPDATE inspections SET inspection_id = $2 WHERE inspection_id = $1", drawn, inspection_id)
    await enforcement_store.PgStore(conn).set_inspection(inspection_id, status="done", started_at=d.started_at, started_by=d.officers[0],
        finished_at=d.finished_at, officers=d.officers, present_units=d.units,
        findings=[f.model_dump(mode="json") for f in d.findings],
        visits_saved=enforcement_rules.visits_saved([d.units]))
    for task_id in d.task_ids:
        task = dispatched[task_id].data
        await enforcement_store.PgStore(conn).add_need(town_code=town.code, inspection_id=inspection_id, source="task", task_id=task_id,
            request_id=task.request_id, item_code=task.item_code, target=d.target, units=d.units, due=None,
            now=task.dispatched_at, trace_headers={})


async def _load_case(conn: asyncpg.Connection, town: Town, steps: Sequence[events.CaseUpdated],
                     done: events.InspectionDone, dispatched: dict[str, events.TaskDispatched]) -> None:
    first, last = steps[0].data, steps[-1].data
    task = dispatched[first.task_id].data
    limits = town.rules.enforcement
    decided = next((s.data for s in steps if s.data.step == "decided"), None)
    await enforcement_store.PgStore(conn).create_case({
        "case_id": uuid.UUID(first.case_id), "town_code": town.code, "task_id": first.task_id,
        "request_id": first.request_id, "inspection_id": uuid.UUID(done.data.inspection_id),
        "item_code": task.item_code, "target": done.data.target, "step": last.step, "filed_at": first.at,
        "decision_due": enforcement_rules.decision_due(first.at, False, limits),
        "transferred_to": last.transferred_to, "decision": decided.decision if decided else None,
        "decided_at": decided.at if decided else None,
        "next_flag_at": (enforcement_rules.next_case_flag_at(first.at, False, (), limits)
                         if last.step in ("filed", "investigated", "reviewed") else None),
    })
    for step in steps:
        await enforcement_store.PgStore(conn).add_case_step(town.code, uuid.UUID(step.data.case_id), step.data.step,
                                              step.data.at, done.data.officers[0], step.data.decision)


async def load_enforcement(conn: asyncpg.Connection, town: Town, matters: Sequence[Matter]) -> None:
    for matter in matters:
        dispatched = {e.data.task_id: e for e in matter.events if isinstance(e, events.TaskDispatched)}
        inspections = [e for e in matter.events if isinstance(e, events.InspectionDone)]
        cases = [e for e in matter.events if isinstance(e, events.CaseUpdated)]
        for done in inspections:
            await _load_inspection(conn, town, done, dispatched)
        if cases:
            await _load_case(conn, town, cases, inspections[0], dispatched)
        await enforcement_store.PgStore(conn).insert_evidence(evidence_rows(town.code, matter))


async def load_plan(conn: asyncpg.Connection, town: Town, plan: Envelope) -> None:
    """The month's random inspection plan (双随机一公开), as enforcement saves it."""
    assert isinstance(plan, events.PlanPublished)
    p = plan.data
    targets = [t.model_dump() for t in p.targets]
    await enforcement_store.PgStore(conn).save_plan(town.code, uuid.UUID(p.plan_id), p.seed, len(targets),
                                      [t.target for t in p.targets], targets, p.published_at, "s026")
