"""A county-year of citizen matters, as the services would have published them: each matter's
whole event history (filed → dispatched → accepted → completed → verified → rated, with returns,
extensions, supervision, rework, joint inspections and cases), built with the services' own event
models, envelope builder and deadline rules, deterministic from a seed. Pure: no I/O."""

from __future__ import annotations

import functools
import hashlib
import io
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from PIL import Image, ImageFilter

from dispatch import rules as dispatch_rules
from enforcement import rules as enforcement_rules
from intake import rules as intake_rules
from townflow_shared import events
from townflow_shared.events import Envelope, EventData, new_event
from townflow_shared.photos import CleanPhoto, PhotoLimits, clean_photo
from townflow_shared.settings import PhotoTakingSettings
from townflow_shared.town import CatalogItem, Town

# How often each turn of a matter happens: a plausible county, not any real one.
RETURNED = 0.03          # handed back within the return window, redispatched by the command centre
ACCEPTED_LATE = 0.07     # accepted after respond_by
EXTENDED = 0.05          # an approved extension (延期)
COMPLETED_LATE = 0.12    # completed after resolve_by (overdue, some escalated)
REWORK = 0.04            # failing the closure check (返工)
RATED = 0.70
LEFT_OPEN = 0.01         # of the last month's matters: still open when the history ends
OUTCOMES: list[tuple[events.Outcome, float]] = [("compliant", 0.80), ("rectify", 0.10), ("violation", 0.07),
                                         ("not_delegated", 0.02), ("criminal", 0.01)]
RATINGS = [("satisfied", 0.85), ("basically_satisfied", 0.10), ("unsatisfied", 0.05)]
CHANNELS = ["window", "window", "window", "online", "hotline", "self_service"]
CASE_STEPS = [("investigated", 3), ("reviewed", 10), ("decided", 20), ("closed", 30)]  # days after filing


# Photos on a filing (issue #29): one matter in PHOTO_SHARE is filed with one or two, decided by
# its request id (not the history's random stream, so the same seed gives the same history as
# before photos). Every photo is the same cleaned phone photo (`bench_photo`), under its own id.
PHOTO_SHARE = 10
# Evidence photos (issue #29, 执法全过程记录): one inspection in EVIDENCE_SHARE has one or two
# photos taken during its visit, decided by its id as a filing's are; a case opened by such an
# inspection has one or two documenting its filing (立案) too. The town-month's first case always
# does: a small run has evidence to read.
EVIDENCE_SHARE = 4


@dataclass(frozen=True)
class Matter:
    """One matter's history in publishing order, and what only intake keeps (the access code, the
    ids of the photos filed with it)."""

    town_code: str
    request_id: str
    ticket_no: str
    access_code: str
    events: list[Envelope]
    photos: tuple[uuid.UUID, ...] = ()


@functools.cache
def bench_photo() -> CleanPhoto:
    """A phone photo's size (4032 × 3024, a textured scene: not a flat colour a JPEG shrinks to
    nothing), cleaned as the services clean one: what every generated photo stores."""
    rng = random.Random(29)  # noqa: S311 - a reproducible picture, not a secret
    small = Image.frombytes("RGB", (504, 378), bytes(rng.randrange(256) for _ in range(504 * 378 * 3)))
    scene = small.filter(ImageFilter.GaussianBlur(1.5)).resize((4032, 3024))
    out = io.BytesIO()
    scene.save(out, "JPEG", quality=90)
    return clean_photo(out.getvalue(), PhotoLimits.of(PhotoTakingSettings()))


def _ids(owner: str, share: int, first: bool, tag: str = "") -> tuple[uuid.UUID, ...]:
    """Photo ids of a record, from its id: none for most, one or two for one in `share` and for
    the `first` the caller names."""
    n = int(owner[:8], 16)
    if n % share and not first:
        return ()
    return tuple(uuid.uuid5(uuid.NAMESPACE_URL, f"townflow-bench/{owner}/{tag}{seq}")
                 for seq in range(1, 2 + (n // share) % 2))


def photo_ids(request_id: str, first: bool = False) -> tuple[uuid.UUID, ...]:
    """The ids of the photos filed with the matter: none for most, one or two for one in PHOTO_SHARE
    and for the `first` the caller names."""
    return _ids(request_id, PHOTO_SHARE, first)


def evidence_ids(record_id: str, first: bool = False) -> tuple[uuid.UUID, ...]:
    """The ids of an inspection's (or case's) evidence photos: one in EVIDENCE_SHARE, and `first`."""
    return _ids(record_id, EVIDENCE_SHARE, first, "evidence/")


def matter_place(town: Town, item: CatalogItem, village: str, request_id: str) -> tuple[events.Position, str] | None:
    """Where a located matter is (issue #30): a point in one of its village's grid cells, both
    decided by its request id (not the history's random stream, so the same seed gives the same
    history as before points); None for an item that is not located or a town without places."""
    places = town.places
    if not item.located or places is None:
        return None
    number = places.numbers[village]
    cells = sorted(c for c in places.cells if c[9:12] == number)
    if not cells:
        return None
    digest = hashlib.sha256(f"townflow-bench/{request_id}/place".encode()).digest()
    cell = cells[digest[0] % len(cells)]
    west, south, east, north = places.cells[cell].bounds
    u, v = int.from_bytes(digest[1:5]) / 2**32, int.from_bytes(digest[5:9]) / 2**32
    # Inside the cell's box, away from its edges (a point on a border would be the neighbour's).
    longitude = round(west + (east - west) * (0.05 + 0.9 * u), 6)
    latitude = round(south + (north - south) * (0.05 + 0.9 * v), 6)
    located = places.locate(longitude, latitude)
    if located is None or located.village != village or located.cell is None:
        return None  # a cell that is not a box: the matter goes without a point
    return events.Position(longitude=longitude, latitude=latitude), located.cell


def after_photo_id(request_id: str) -> uuid.UUID:
    """The after photo (处置后照片) of a matter filed with photos: its holder photographs the fix."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"townflow-bench/{request_id}/after")


def photo_ref(attachment_id: uuid.UUID) -> events.AttachmentRef:
    photo = bench_photo()
    return events.AttachmentRef(attachment_id=str(attachment_id), kind="photo", content_type=photo.content_type,
                                size=len(photo.stored), sha256=hashlib.sha256(photo.stored).hexdigest(),
                                original_sha256=photo.original_sha256)


def months(last: date, count: int) -> list[date]:
    """The first days of `count` consecutive months ending with the month of `last`."""
    firsts, month = [], last.replace(day=1)
    for _ in range(count):
        firsts.append(month)
        month = (month - timedelta(days=1)).replace(day=1)
    return firsts[::-1]


def _month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


class _MatterWriter:
    """Writes one town-month's matters; every random draw comes from `rng`, every id too."""

    def __init__(self, town: Town, month: date, rng: random.Random, ends_history: bool) -> None:
        self.town, self.month, self.rng, self.ends_history = town, month, rng, ends_history
        self.tz = town.calendar.tz
        self.history_end = datetime.combine(_month_end(month), time(0), self.tz)
        self.officers = [s.id for s in town.staff.values() if s.enforcement_certificate]
        self.duty = town.info.command_centre_duty[0]
        self.villages = list(town.villages)
        items = list(town.catalog.values())
        # A realistic mix: service items most of the time, an inspection about one matter in seven.
        self.items = items
        self.weights = [1.0 if i.task_kind == "service" else 0.35 if i.task_kind == "enforcement" else 0.25
                        for i in items]
        self.sequence: dict[date, int] = {}
        self.photographed = False  # the current matter was filed with photos
        self.service_photographed = False  # a service matter of the town-month was
        self.cases = 0
        self.events: list[Envelope] = []

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def emit(self, event_type: type[Envelope], data: EventData, *, source: str, subject: str, request_id: str,
             at: datetime, cause: Envelope | None = None, event_id: UUID | None = None) -> Envelope:
        # new_event draws a fresh uuid4; the history must be the same for the same seed, so the id
        # is replaced by one from the seeded generator (or the caller's: an event added to the
        # history later, whose id is not drawn from it, so the draws after it stay as they were).
        event = new_event(event_type, data, source=source, town_code=self.town.code, subject=subject,
                          correlation_id=request_id, time=at, causation_id=cause.id if cause else None)
        event = event.model_copy(update={"id": event_id or self.uuid()})
        self.events.append(event)
        return event

    def pick(self, weighted: list[tuple[Any, float]]) -> Any:
        return self.rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]

    def filing_moment(self) -> datetime:
        days = (_month_end(self.month) - self.month).days
        day = self.month + timedelta(days=self.rng.randrange(days))
        minutes = self.rng.randrange(8 * 60 + 30, 17 * 60 + 30)
        return datetime.combine(day, time(minutes // 60, minutes % 60, self.rng.randrange(60)), self.tz)

    def matter(self) -> Matter:
        self.events = []
        item: CatalogItem = self.rng.choices(self.items, self.weights)[0]
        filed_at = self.filing_moment()
        day = filed_at.date()
        self.sequence[day] = self.sequence.get(day, 0) + 1
        request_id = str(self.uuid())
        ticket_no = f"{self.town.code}-{day:%Y%m%d}-{self.sequence[day]:05d}"
        colour = item.default_colour if self.rng.random() > 0.1 else self.pick([("orange", 0.7), ("red", 0.3)])
        target = f"SITE-{self.rng.randrange(400):03d}" if item.task_kind != "service" else None
        village = self.rng.choice(self.villages)
        # The town-month's first service matter has photos whatever its id: a small run has one to read.
        photos = photo_ids(request_id, first=not self.service_photographed and item.task_kind == "service")
        self.service_photographed |= bool(photos) and item.task_kind == "service"
        self.photographed = bool(photos)  # its completion carries an after photo too
        place = matter_place(self.town, item, village, request_id)
        filed = self.emit(events.RequestFiled, events.RequestFiledData(
            request_id=request_id, ticket_no=ticket_no, channel=self.rng.choice(CHANNELS), item_code=item.code,
            colour=colour, description="压测事项", village=village, location=f"{village}-{self.rng.randrange(90)}号",
            target=target, citizen_ref=f"{self.rng.getrandbits(256):064x}", filed_at=filed_at,
            attachments=[photo_ref(p) for p in photos], point=place[0] if place else None,
            grid_cell=place[1] if place else None),
            source="intake", subject=request_id, request_id=request_id, at=filed_at)
        self.task_life(filed, item, filed_at + timedelta(seconds=2))
        # Intake's own alphabet: a code it would never issue (one with an L) is refused as malformed.
        code = "".join(self.rng.choices(intake_rules.ACCESS_CODE_ALPHABET, k=intake_rules.ACCESS_CODE_LENGTH))
        return Matter(self.town.code, request_id, ticket_no, code, self.events, photos)

    def dispatched(self, filed: Envelope, item: CatalogItem, at: datetime, *, post: str, assignee: str, via: str,
                   redispatch_of: str | None = None, invalid_return: bool | None = None) -> Envelope:
        d: events.RequestFiledData = filed.data  # type: ignore[assignment]
        deadlines = dispatch_rules.deadlines(d.colour, item, at, self.town.calendar, self.town.rules.dispatch)
        task_id = str(self.uuid())
        return self.emit(events.TaskDispatched, events.TaskDispatchedData(
            task_id=task_id, request_id=d.request_id, item_code=item.code, kind=item.task_kind, colour=d.colour,
            village=d.village, location=d.location, target=d.target, lead_module=item.lead_module,
            cooperating_modules=item.cooperating_modules, post=post, assignee=assignee,
            assigned_via=via, respond_by=deadlines.respond_by, resolve_by=deadlines.resolve_by,  # type: ignore[arg-type]
            dispatched_at=at, redispatch_of=redispatch_of, invalid_return=invalid_return),
            source="dispatch", subject=task_id, request_id=d.request_id, at=at, cause=filed)

    def task_life(self, filed: Envelope, item: CatalogItem, at: datetime) -> None:
        post = dispatch_rules.post_of_matter(self.town, item, filed.data.grid_cell)  # type: ignore[attr-defined]
        draw = self.rng.random()
        assignee, via = ((post.a_holder, "A") if draw < 0.90 else (post.b_holder, "B") if draw < 0.98
                         else (self.town.modules[post.module].leader, "leader"))
        task = self.dispatched(filed, item, at, post=post.code, assignee=assignee, via=via)
        if item.task_kind == "service" and self.rng.random() < RETURNED:
            returned_at = at + timedelta(minutes=self.rng.randrange(5, 90))
            t: events.TaskDispatchedData = task.data  # type: ignore[assignment]
            self.emit(events.TaskReturned, events.TaskReturnedData(task_id=t.task_id, request_id=t.request_id, by=assignee,
                                                     reason="不属本岗职责", returned_at=returned_at),
                      source="dispatch", subject=t.task_id, request_id=t.request_id, at=returned_at)
            task = self.dispatched(filed, item, returned_at + timedelta(minutes=20), post=post.code,
                                   assignee=post.b_holder,
                                   via="command_centre", redispatch_of=t.task_id,
                                   invalid_return=self.rng.random() < 0.5)
        self.work(task, item)

    def task_event(self, event_type: type[Envelope], data: EventData, task: Envelope, at: datetime,
                   cause: Envelope | None = None) -> Envelope:
        t: events.TaskDispatchedData = task.data  # type: ignore[assignment]
        return self.emit(event_type, data, source="dispatch", subject=t.task_id, request_id=t.request_id, at=at,
                         cause=cause)

    def supervise(self, task: Envelope, window_start: datetime, resolve_by: datetime, until: datetime) -> None:
        """The levels that fell due before `until` (the completion, or the history's end)."""
        t: events.TaskDispatchedData = task.data  # type: ignore[assignment]
        moments = dispatch_rules.supervision_moments(window_start, resolve_by, self.town.rules.dispatch)
        for level, moment in moments.items():
            if moment < until:
                notified = dispatch_rules.notified_for(level, t.assignee, self.town.posts.get(t.post), self.town)
                self.task_event(events.TaskSupervised, events.TaskSupervisedData(
                    task_id=t.task_id, request_id=t.request_id, level=level, notified=notified, at=moment),
                    task, moment)

    def work(self, task: Envelope, item: CatalogItem) -> None:
        t: events.TaskDispatchedData = task.data  # type: ignore[assignment]
        start, resolve_by = t.dispatched_at, t.resolve_by
        window = resolve_by - start
        respond = t.respond_by - start
        accepted_at = (start + respond * self.rng.uniform(0.05, 0.9) if self.rng.random() > ACCEPTED_LATE
                       else t.respond_by + timedelta(minutes=self.rng.randrange(10, 180)))
        self.task_event(events.TaskAccepted, events.TaskAcceptedData(task_id=t.task_id, request_id=t.request_id, by=t.assignee,
                                                       accepted_at=accepted_at), task, accepted_at)
        if self.rng.random() < EXTENDED:
            resolve_by = dispatch_rules.extended_resolve_by(resolve_by, 3, self.town.calendar)
            self.task_event(events.TaskExtended, events.TaskExtendedData(
                task_id=t.task_id, request_id=t.request_id, days=3, reason="需补充材料", approved_by=self.duty,
                resolve_by=resolve_by), task, accepted_at + timedelta(minutes=30))
            window = resolve_by - start
        if self.ends_history and self.rng.random() < LEFT_OPEN:
            self.supervise(task, start, resolve_by, self.history_end)
            return
        late = self.rng.random() < COMPLETED_LATE
        done_at = (start + window * self.rng.uniform(0.1, 0.85) if not late
                   else resolve_by + window * self.rng.uniform(0.02, 0.9))
        done_at = max(done_at, accepted_at + timedelta(minutes=5))
        self.supervise(task, start, resolve_by, done_at)
        if item.task_kind != "service":
            self.inspect(task, item, done_at)
            return
        self.complete_and_verify(task, start, resolve_by, done_at)

    def complete_and_verify(self, task: Envelope, start: datetime, resolve_by: datetime, done_at: datetime) -> None:
        t: events.TaskDispatchedData = task.data  # type: ignore[assignment]
        # A matter filed with photos is completed with an after photo (处置后照片) of the fix.
        after = [photo_ref(after_photo_id(t.request_id))] if self.photographed else []
        completed = self.task_event(events.TaskCompleted, events.TaskCompletedData(
            task_id=t.task_id, request_id=t.request_id, by=t.assignee, resolution="已办结", completed_at=done_at,
            on_time=dispatch_rules.is_on_time(done_at, resolve_by), reply="已为您办理完毕。", attachments=after),
            task, done_at)
        checked_at = done_at + timedelta(hours=2)
        if self.rng.random() < REWORK:
            self.task_event(events.TaskVerified, events.TaskVerifiedData(task_id=t.task_id, request_id=t.request_id, passed=False,
                                                           note="材料不全，返工", by=self.duty, at=checked_at),
                            task, checked_at, completed)
            resolve_by = dispatch_rules.rework_resolve_by(checked_at, start, resolve_by)
            done_at = checked_at + (resolve_by - checked_at) * self.rng.uniform(0.2, 0.9)
            completed = self.task_event(events.TaskCompleted, events.TaskCompletedData(
                task_id=t.task_id, request_id=t.request_id, by=t.assignee, resolution="返工后办结",
                completed_at=done_at, on_time=True, reply="材料已补齐，已为您办理完毕。"), task, done_at)
            checked_at = done_at + timedelta(hours=2)
        self.task_event(events.TaskVerified, events.TaskVerifiedData(task_id=t.task_id, request_id=t.request_id, passed=True,
                                                       note="核查通过", by=self.duty, at=checked_at),
                        task, checked_at, completed)
        self.rate(t.request_id, checked_at + timedelta(days=1))

    def inspect(self, task: Envelope, item: CatalogItem, done_at: datetime) -> None:
        """综合查一次: an inspection of the task's target by two certified officers, its result
        completing (and verifying) the task, a violation opening a case."""
        t: events.TaskDispatchedData = task.data  # type: ignore[assignment]
        inspection_id = str(self.uuid())
        officers = self.rng.sample(self.officers, 2)
        # Every town-month holds at least one case, so a case can be read at every size.
        outcome: events.Outcome = self.pick(OUTCOMES) if self.cases else "violation"
        rectify_by = (done_at + timedelta(days=15)).date() if outcome == "rectify" else None
        opens_case = outcome in ("violation", "not_delegated", "criminal")
        photographed = self.evidence(inspection_id, t.request_id, officers[0], done_at - timedelta(minutes=40),
                                     first=opens_case and not self.cases)
        done = self.emit(events.InspectionDone, events.InspectionDoneData(
            inspection_id=inspection_id, target=t.target or t.location, task_ids=[t.task_id],
            units=enforcement_rules.need_units(item), officers=officers,
            findings=[events.Finding(task_id=t.task_id, outcome=outcome, note="现场检查", rectify_by=rectify_by)],
            started_at=done_at - timedelta(hours=1), finished_at=done_at),
            source="enforcement", subject=inspection_id, request_id=t.request_id, at=done_at)
        by = ",".join(officers)
        completed = self.task_event(events.TaskCompleted, events.TaskCompletedData(
            task_id=t.task_id, request_id=t.request_id, by=by, resolution=f"inspection {inspection_id}: {outcome}",
            completed_at=done_at, on_time=dispatch_rules.is_on_time(done_at, t.resolve_by),
            inspection_id=inspection_id, reply=dispatch_rules.inspection_reply(outcome)), task, done_at, done)
        self.task_event(events.TaskVerified, events.TaskVerifiedData(task_id=t.task_id, request_id=t.request_id, passed=True,
                                                       note=f"verified by inspection {inspection_id}", by=by,
                                                       at=done_at), task, done_at, completed)
        if opens_case:
            self.case(t, inspection_id, outcome, item, done_at, done, officers[0] if photographed else None)
        self.rate(t.request_id, done_at + timedelta(days=1))

    def evidence(self, record_id: str, request_id: str, by: str, at: datetime, first: bool = False,
                 step: events.CaseStep | None = None) -> bool:
        """Evidence photos on an inspection (during its visit) or on a case's `step`, for one
        record in EVIDENCE_SHARE and the `first`: whether there are any. Recorded as enforcement
        records them (`enforcement.evidence.recorded`), under an id from the record's, not drawn."""
        photos = evidence_ids(record_id, first)
        if photos:
            self.emit(events.EvidenceRecorded, events.EvidenceRecordedData(
                inspection_id=None if step else record_id, case_id=record_id if step else None, step=step,
                request_id=request_id, evidence=[photo_ref(p) for p in photos], recorded_by=by, recorded_at=at),
                source="enforcement", subject=record_id, request_id=request_id, at=at,
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"townflow-bench/{record_id}/evidence"))
        return bool(photos)

    def case(self, t: events.TaskDispatchedData, inspection_id: str, outcome: str, item: CatalogItem, filed_at: datetime,
             cause: Envelope, photographer: str | None = None) -> None:
        """A case opened by an inspection's finding; `photographer`: the officer who documents its
        filing with photos (its inspection had evidence)."""
        case_id = str(self.uuid())
        self.cases += 1

        def step(name: str, at: datetime, **more: Any) -> None:
            self.emit(events.CaseUpdated, events.CaseUpdatedData(case_id=case_id, task_id=t.task_id, request_id=t.request_id,
                                                   step=name, at=at, **more),  # type: ignore[arg-type]
                      source="enforcement", subject=case_id, request_id=t.request_id, at=at, cause=cause)

        step("filed", filed_at)
        if photographer is not None:
            self.evidence(case_id, t.request_id, photographer, filed_at + timedelta(minutes=10), first=True,
                          step="filed")
        if outcome != "violation":
            step("transferred", filed_at, transferred_to=item.department if outcome == "not_delegated" else "县公安局")
            return
        for name, days in CASE_STEPS:
            at = filed_at + timedelta(days=days)
            if at >= self.history_end:
                return  # still open when the history ends
            step(name, at, **({"decision": "责令改正并处罚款"} if name == "decided" else {}))

    def rate(self, request_id: str, at: datetime) -> None:
        if self.rng.random() < RATED and at < self.history_end:
            # The ticket number is on the filing, the first event of this matter.
            filed: events.RequestFiledData = self.events[0].data  # type: ignore[assignment]
            self.emit(events.RequestRated, events.RequestRatedData(request_id=request_id, ticket_no=filed.ticket_no,
                                                     rating=self.pick(RATINGS), rated_at=at),
                      source="intake", subject=request_id, request_id=request_id, at=at)

    def plan(self) -> Envelope:
        """The month's 双随机一公开 draw: a few targets, two certified officers each."""
        self.events = []
        plan_id = str(self.uuid())
        at = datetime.combine(self.month + timedelta(days=1), time(9), self.tz)
        targets = [events.PlannedTarget(target=f"SITE-{n:03d}", officers=self.rng.sample(self.officers, 2))
                   for n in sorted(self.rng.sample(range(400), 5))]
        return self.emit(events.PlanPublished, events.PlanPublishedData(plan_id=plan_id, seed=self.rng.getrandbits(31),
                                                          targets=targets, published_at=at),
                         source="enforcement", subject=plan_id, request_id=plan_id, at=at)


@dataclass(frozen=True)
class TownMonth:
    town_code: str
    month: date
    matters: list[Matter]
    plan: Envelope

    def events(self) -> list[Envelope]:
        """Every event of the town-month in the order it was published (by its time)."""
        return sorted([self.plan, *(e for m in self.matters for e in m.events)], key=lambda e: e.time)


def town_month(town: Town, month: date, count: int, seed: int, ends_history: bool) -> TownMonth:
    """`count` matters filed in `town` during `month`; the same arguments give the same history."""
    rng = random.Random(f"{seed}:{town.code}:{month:%Y-%m}")  # noqa: S311 - a reproducible history, not a secret
    writer = _MatterWriter(town, month, rng, ends_history)
    matters = [writer.matter() for _ in range(count)]
    return TownMonth(town.code, month, matters, writer.plan())
