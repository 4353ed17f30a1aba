"""The unit tier's one fake: intake's unit of work in memory (cosmicpython's tests/unit/fakes.py).

`FakeStore` keeps the rows the real store keeps, in dicts; `FakeUnitOfWork` is one transaction over
it: what a command writes is kept when the block ends without an exception and undone when it
raises (as a rollback), and the events it publishes are recorded only when it commits. `deps()`
builds intake's `Deps` on it with a fixed clock and the demo county. No I/O anywhere.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from intake import flows
from intake.personal_data import Keyring
from intake.rules import WrongCode
from intake.settings import IntakeSettings
from intake.store import IntakeStore, Row, UnitOfWork
from shared.tests.fake_objects import FakeObjects  # noqa: F401 - the tests import it from here
from townflow_shared.clock import Clock
from townflow_shared.county import County, load_county
from townflow_shared.events import Envelope
from townflow_shared.settings import DEMO_COUNTY_DIR

COUNTY = load_county(DEMO_COUNTY_DIR)
_EWKT = re.compile(r"^SRID=4326;POINT\((\S+) (\S+)\)$")


def _metres_between(a: str | None, b: str | None) -> float | None:
    """What PostGIS's ST_Distance on geography answers for two EWKT points, near enough for a fake
    (haversine on a sphere of the earth's mean radius); None unless both are points."""
    if a is None or b is None:
        return None
    (lon1, lat1), (lon2, lat2) = ((math.radians(float(v)) for v in _EWKT.fullmatch(p).groups())  # type: ignore[union-attr]
                                  for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))
CITIZEN_KEY = b"unit-test-citizen-key"
# Fixed test keys (32 and 16 bytes): the unit tier's keyring seals as the service's does.
DATA_KEYS = {"k1": "aes-256-gcm:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", "sm4": "sm4-gcm:ZWZnaGlqa2xtbm9wcXJzdA=="}
KEYRING = Keyring(DATA_KEYS, "k1", b"unit-test-lookup-key")


@dataclass
class Tables:
    """What intake's database holds, as the fake keeps it."""

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # by ticket number
    timeline: dict[uuid.UUID, list[dict[str, Any]]] = field(default_factory=dict)
    sequences: dict[tuple[str, date], int] = field(default_factory=dict)
    keys: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    wrong_codes: dict[str, list[WrongCode]] = field(default_factory=dict)
    tasks: dict[str, uuid.UUID] = field(default_factory=dict)
    early_steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answers: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # by request id
    task_holders: dict[str, dict[str, Any]] = field(default_factory=dict)
    personal_data_reads: list[dict[str, Any]] = field(default_factory=list)
    citizens: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # request_citizens, by request id
    attachments: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # by attachment id
    task_photos: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # by attachment id
    places: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # request_places, by request id
    sms_choices: dict[uuid.UUID, bool] = field(default_factory=dict)  # request_sms: opted out, by request id
    sms: dict[tuple[uuid.UUID, str, uuid.UUID], dict[str, Any]] = field(default_factory=dict)  # sms_outbox, by (source, kind, request)


class FakeStore:
    """`IntakeStore` over `Tables`."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def _point(self, request_id: uuid.UUID) -> str | None:
        place = self.tables.places.get(request_id)
        return place["point"] if place else None

    def _by_id(self, request_id: uuid.UUID) -> dict[str, Any] | None:
        return next((r for r in self.tables.requests.values() if r["request_id"] == request_id), None)

    async def claim_tickets(self, wanted: dict[tuple[str, date], int]) -> dict[tuple[str, date], int]:
        for town_day, count in wanted.items():
            self.tables.sequences[town_day] = self.tables.sequences.get(town_day, 0) + count
        return {town_day: self.tables.sequences[town_day] for town_day in wanted}

    async def repeat_counts(self, town_codes: list[str], citizen_refs: list[str], item_codes: list[str],
                            since: list[datetime]) -> list[int]:
        return [sum(1 for r in self.tables.requests.values()
                    if (r["town_code"], r["citizen_ref"], r["item_code"]) == (town, ref, item) and r["filed_at"] >= at)
                for town, ref, item, at in zip(town_codes, citizen_refs, item_codes, since, strict=True)]

    async def claim_idempotency_keys(self, keys: list[tuple[str, str, str, str]]
                                     ) -> dict[tuple[str, str, str], Row]:
        earlier: dict[tuple[str, str, str], Row] = {}
        for town, scope, key, fingerprint in keys:
            stored = self.tables.keys.get((town, scope, key))
            if stored is None:
                self.tables.keys[(town, scope, key)] = {"fingerprint": fingerprint, "status": None, "response": None}
            else:
                earlier[(town, scope, key)] = dict(stored)
        return earlier

    async def save_idempotent_responses(self, answers: list[tuple[str, str, str, int, dict[str, Any]]]) -> None:
        for town, scope, key, status, response in answers:
            self.tables.keys[(town, scope, key)] |= {"status": status, "response": copy.deepcopy(response)}

    async def insert_requests(self, rows: list[dict[str, Any]], first_step: str,
                              details: list[dict[str, Any]], citizens: list[dict[str, Any]] | None = None,
                              places: list[dict[str, Any]] | None = None) -> None:
        for citizen in citizens or []:
            self.tables.citizens[citizen["request_id"]] = dict(citizen)
        for place in places or []:
            self.tables.places[place["request_id"]] = dict(place)
        for row, detail in zip(rows, details, strict=True):
            stored = {"town_code": row["ticket_no"].split("-", 1)[0], "rating": None, "rated_at": None,
                      "merged_into": None, "merged_at": None, "completed_at": None, **row}
            self.tables.requests[row["ticket_no"]] = stored
            self.tables.timeline[row["request_id"]] = [{"at": row["filed_at"], "step": first_step, "detail": detail}]

    async def add_timeline(self, request_id: uuid.UUID, at: datetime, step: str, detail: dict[str, Any],
                           event_id: uuid.UUID | None) -> None:
        steps = self.tables.timeline.setdefault(request_id, [])
        if event_id is None or all(s.get("event_id") != event_id for s in steps):
            steps.append({"at": at, "step": step, "detail": detail, "event_id": event_id})

    async def step_and_status(self, town_code: str, request_id: uuid.UUID, at: datetime, step: str,
                              detail: dict[str, Any], event_id: uuid.UUID | None) -> Row | None:
        row = self._by_id(request_id)
        if row is None or row["town_code"] != town_code:
            return None
        await self.add_timeline(request_id, at, step, detail, event_id)
        return {"status": row["status"], "status_at": row["status_at"]}

    async def link_task(self, task_id: str, request_id: uuid.UUID) -> list[Row]:
        self.tables.tasks.setdefault(task_id, request_id)
        return list(self.tables.early_steps.pop(task_id, []))

    async def requests_of_tasks(self, task_ids: list[str]) -> dict[str, str]:
        return {t: str(self.tables.tasks[t]) for t in task_ids if t in self.tables.tasks}

    async def keep_early_inspection_step(self, task_id: str, at: datetime, detail: dict[str, Any],
                                         event_id: uuid.UUID) -> None:
        kept = self.tables.early_steps.setdefault(task_id, [])
        if all(s["event_id"] != event_id for s in kept):  # the real table's key: (task_id, event_id)
            kept.append({"at": at, "detail": detail, "event_id": event_id})

    async def set_status(self, request_id: uuid.UUID, status: str, at: datetime,
                         completed_at: datetime | None = None) -> None:
        row = self._by_id(request_id)
        if row is not None:
            row |= {"status": status, "status_at": at, "completed_at": completed_at or row["completed_at"]}

    async def wrong_codes_for_update(self, ticket_no: str) -> list[WrongCode]:
        return list(self.tables.wrong_codes.get(ticket_no, []))

    async def save_wrong_code(self, ticket_no: str, wrong: WrongCode, since: datetime) -> None:
        kept = [w for w in self.tables.wrong_codes.get(ticket_no, []) if w.at > since]
        self.tables.wrong_codes[ticket_no] = [*kept, wrong]

    async def request_by_ticket(self, ticket_no: str) -> Row | None:
        return self.tables.requests.get(ticket_no)

    async def request_for_update(self, ticket_no: str) -> Row | None:
        return self.tables.requests.get(ticket_no)

    async def timeline_of(self, request_id: uuid.UUID) -> list[Row]:
        return sorted(self.tables.timeline.get(request_id, []), key=lambda s: s["at"])

    async def save_rating(self, request_id: uuid.UUID, rating: str, rated_at: datetime) -> None:
        row = self._by_id(request_id)
        if row is not None:
            row |= {"rating": rating, "rated_at": rated_at}

    async def duplicate_candidates(self, request_ids: list[uuid.UUID], since: list[datetime],
                                   open_statuses: Sequence[str], per_kind: int, within_m: list[float]) -> list[Row]:
        found: list[Row] = []
        for n, (request_id, at, radius) in enumerate(zip(request_ids, since, within_m, strict=True), start=1):
            new = self._by_id(request_id)
            if new is None:
                continue
            distance = functools.partial(_metres_between, self._point(request_id))
            others = sorted((r for r in self.tables.requests.values()
                             if r["town_code"] == new["town_code"] and r["request_id"] != request_id
                             and r["filed_at"] >= at and r["status"] in open_statuses and r["merged_into"] is None),
                            key=lambda r: (r["filed_at"], r["ticket_no"]), reverse=True)
            same_place = [r for r in others if (r["item_code"], r["village"]) == (new["item_code"], new["village"])]
            same_target = [r for r in others if new["target"] is not None and r["target"] == new["target"]]
            nearby = [r for r in others if r["item_code"] == new["item_code"]
                      and (d := distance(self._point(r["request_id"]))) is not None and d <= radius]
            chosen = {r["ticket_no"]: r for r in [*same_place[:per_kind], *same_target[:per_kind], *nearby[:per_kind]]}
            for r in sorted(chosen.values(), key=lambda r: (r["filed_at"], r["ticket_no"]), reverse=True):
                found.append({"n": n, **{k: r[k] for k in ("ticket_no", "item_code", "village", "location", "target",
                                                           "status", "filed_at")},
                              "distance_m": distance(self._point(r["request_id"]))})
        return found

    async def merge_side_for_update(self, ticket_no: str) -> Row | None:
        row = self.tables.requests.get(ticket_no)
        if row is None:
            return None
        primary = self._by_id(row["merged_into"]) if row["merged_into"] else None
        followers = sum(1 for r in self.tables.requests.values() if r["merged_into"] == row["request_id"])
        return {**row, "primary_ticket_no": primary["ticket_no"] if primary else None,
                "primary_status": primary["status"] if primary else None, "followers": followers}

    async def set_merged_into(self, request_id: uuid.UUID, into: uuid.UUID | None, at: datetime | None) -> None:
        row = self._by_id(request_id)
        if row is not None:
            row |= {"merged_into": into, "merged_at": at}

    async def request_by_id(self, request_id: uuid.UUID) -> Row | None:
        return self._by_id(request_id)

    async def save_answer(self, town_code: str, request_id: uuid.UUID, at: datetime, reply: str | None,
                          module: str | None, promised_by: datetime | None) -> None:
        request = self._by_id(request_id)
        if request is None or request["town_code"] != town_code:
            return
        row = self.tables.answers.setdefault(request_id, {
            "request_id": request_id, "town_code": town_code, "reply": None, "replied_at": None,
            "handling_module": None, "handling_since": None, "promised_by": None, "promised_at": None})
        for column, at_column, value in (("reply", "replied_at", reply), ("handling_module", "handling_since", module),
                                         ("promised_by", "promised_at", promised_by)):
            if value is not None and (row[at_column] is None or row[at_column] <= at):
                row |= {column: value, at_column: at}

    async def answer_of(self, request_id: uuid.UUID) -> Row | None:
        found = self.tables.answers.get(request_id)
        return dict(found) if found else None
    async def request_of_task(self, task_id: str) -> Row | None:
        request_id = self.tables.tasks.get(task_id)
        return self._by_id(request_id) if request_id is not None else None

    async def task_holder_for_update(self, task_id: str) -> Row | None:
        held = self.tables.task_holders.get(task_id)
        return dict(held) if held is not None else None

    async def save_task_holder(self, holder: dict[str, Any]) -> None:
        self.tables.task_holders[holder["task_id"]] = dict(holder)

    async def holders_of(self, request_id: uuid.UUID) -> list[Row]:
        return sorted((h for h in self.tables.task_holders.values() if h["request_id"] == request_id),
                      key=lambda h: h["status_at"])

    async def record_personal_data_read(self, read: dict[str, Any]) -> None:
        self.tables.personal_data_reads.append({"seq": len(self.tables.personal_data_reads) + 1, **read})

    async def personal_data_reads(self, town_codes: list[str], since: datetime | None, until: datetime | None,
                                  staff_id: str | None, limit: int, offset: int) -> list[Row]:
        found = [r for r in self.tables.personal_data_reads
                 if r["town_code"] in town_codes and (since is None or r["read_at"] >= since)
                 and (until is None or r["read_at"] < until) and (staff_id is None or r["staff_id"] == staff_id)]
        found.sort(key=lambda r: (r["read_at"], r["seq"]), reverse=True)
        return found[offset:offset + limit]

    async def sealed_citizen(self, request_id: uuid.UUID) -> Row | None:
        return self.tables.citizens.get(request_id)

    async def requests_to_reseal(self, key_id: str, after: uuid.UUID | None, limit: int, every: bool) -> list[Row]:
        def due(r: dict[str, Any]) -> bool:
            c = self.tables.citizens.get(r["request_id"])
            return c is None or (c["erased_at"] is None and (every or c["key_id"] != key_id))

        found = sorted((r for r in self.tables.requests.values()
                        if (after is None or r["request_id"] > after) and due(r)), key=lambda r: r["request_id"])
        return [{**r, **(self.tables.citizens.get(r["request_id"]) or {}),
                 "sealed": r["request_id"] if r["request_id"] in self.tables.citizens else None}
                for r in found[:limit]]

    async def save_resealed(self, citizens: list[dict[str, Any]]) -> None:
        for citizen in citizens:
            self.tables.citizens[citizen["request_id"]] = dict(citizen)
            row = self._by_id(citizen["request_id"])
            if row is not None:
                row |= {"citizen_name": "", "citizen_phone": None, "citizen_id_number": None}

    def _erased(self, request_id: uuid.UUID) -> bool:
        return (self.tables.citizens.get(request_id) or {}).get("erased_at") is not None

    async def personal_data_due(self, closed_before: datetime, limit: int) -> list[Row]:
        def closed_before_cutoff(r: Row | None) -> bool:
            return r is not None and r["status"] == "closed" and r["status_at"] < closed_before

        return [dict(r) for r in self.tables.requests.values() if not self._erased(r["request_id"]) and (
            closed_before_cutoff(r) or (r["merged_into"] is not None and closed_before_cutoff(self._by_id(r["merged_into"]))))
        ][:limit]

    async def erase_personal_data(self, rows: list[dict[str, Any]], at: datetime) -> None:
        for erased in rows:
            row = self._by_id(erased["request_id"])
            if row is not None:
                row |= {"citizen_name": "", "citizen_phone": None, "citizen_id_number": None,
                        "description": erased["description"], "location": erased["location"]}
            for attachment in self.tables.attachments.values():
                if attachment["request_id"] == erased["request_id"]:
                    attachment |= {"latitude": None, "longitude": None, "captured_at": None}
            self.tables.citizens[erased["request_id"]] = {
                "request_id": erased["request_id"], "town_code": erased["town_code"], "name_enc": None,
                "phone_enc": None, "id_number_enc": None, "phone_hash": None, "key_id": None, "erased_at": at}

    async def insert_attachments(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.tables.attachments[row["attachment_id"]] = dict(row)

    async def attachments_of(self, request_id: uuid.UUID) -> list[Row]:
        return sorted((a for a in self.tables.attachments.values() if a["request_id"] == request_id),
                      key=lambda a: a["seq"])

    async def photo_of(self, request_id: uuid.UUID, attachment_id: uuid.UUID) -> Row | None:
        filed, after = self.tables.attachments.get(attachment_id), self.tables.task_photos.get(attachment_id)
        if filed is not None and filed["request_id"] == request_id:
            return {**filed, "owner": "intake"}
        if after is not None and after["request_id"] == request_id:
            return {**after, "stored_key": None, "thumbnail_key": None, "owner": "dispatch"}
        return None

    async def known_attachments(self, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return set(attachment_ids) & set(self.tables.attachments)

    async def record_task_photos(self, town_code: str, request_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
        request = self._by_id(request_id)
        if request is None or request["town_code"] != town_code:
            return
        for row in rows:
            self.tables.task_photos.setdefault(row["attachment_id"], dict(row))

    async def task_photos_of(self, request_id: uuid.UUID) -> list[Row]:
        return sorted((p for p in self.tables.task_photos.values() if p["request_id"] == request_id),
                      key=lambda p: (p["taken_at"], p["seq"]))

    async def save_sms_choices(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.tables.sms_choices.setdefault(row["request_id"], row["opted_out"])

    async def enqueue_sms(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.tables.sms.setdefault((row["source_id"], row["kind"], row["request_id"]), {
                **row, "status": "pending", "attempts": 0, "last_error": None, "sent_at": None})

    async def sms_of(self, request_id: uuid.UUID) -> list[Row]:
        return [row for row in self.tables.sms.values() if row["request_id"] == request_id]

    async def sms_recipients(self, town_code: str, request_id: uuid.UUID) -> list[Row]:
        matters = sorted((r for r in self.tables.requests.values()
                          if request_id in (r["request_id"], r["merged_into"]) and r["town_code"] == town_code
                          and self.tables.sms_choices.get(r["request_id"]) is False),
                         key=lambda r: (r["request_id"] != request_id, r["ticket_no"]))
        return [{"request_id": r["request_id"], "ticket_no": r["ticket_no"], "colour": r["colour"]} for r in matters]



class FakeUnitOfWork:
    """One transaction over the fake's tables: kept on success, undone on a refusal."""

    def __init__(self, tables: Tables, published: list[Envelope]) -> None:
        self._store = FakeStore(tables)
        self._published = published
        self.pending: list[Envelope] = []

    @property
    def store(self) -> FakeStore:
        return self._store

    async def publish(self, *events: Envelope, trace_headers: Sequence[dict[str, str]] | None = None) -> None:
        if trace_headers is not None and len(trace_headers) != len(events):
            raise ValueError("give one trace context per event")
        self.pending.extend(events)


@dataclass
class FakeDatabase:
    """The committed state, the events published, and how many units of work committed."""

    tables: Tables = field(default_factory=Tables)
    published: list[Envelope] = field(default_factory=list)
    commits: int = 0

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        before = copy.deepcopy(self.tables)
        uow = FakeUnitOfWork(self.tables, self.published)
        try:
            yield uow
        except BaseException:
            self.tables.__dict__.update(before.__dict__)  # rolled back
            raise
        self.published.extend(uow.pending)
        self.commits += 1


def fixed_clock(moment: datetime) -> Clock:
    clock = Clock()
    clock.set(moment)
    return clock


def deps(database: FakeDatabase, now: datetime, county: County = COUNTY,
         citizen_ref_key: bytes | None = CITIZEN_KEY) -> flows.Deps:
    """Intake's Deps on the fake database, a clock fixed at `now` and the demo county."""
    clock = fixed_clock(now)
    return flows.Deps(settings=IntakeSettings(), county=county, clock=clock, unit_of_work=database.unit_of_work,
                      filing_writer=flows.filing_writer(database.unit_of_work, clock, KEYRING),
                      citizen_ref_key=citizen_ref_key, keyring=KEYRING)


_checked: IntakeStore = FakeStore(Tables())  # mypy: the fake has the real store's shape
