"""Intake's command handlers on the fake unit of work, with a fixed clock: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake import flows, models, rules
from services.intake.tests.fakes import COUNTY, FakeDatabase, deps
from townflow_shared import events
from townflow_shared.auth import Principal
from townflow_shared.dlq import Rejected
from townflow_shared.events import EventData, new_event
from townflow_shared.problems import Refusal

NOW = datetime(2027, 3, 15, 1, 0, tzinfo=UTC)  # 09:00 in the towns
QINGHE, BAILU = "321003104", "321003107"
CLERK = Principal(sub="s010", roles=frozenset({"clerk"}), town=QINGHE)
COMMAND = Principal(sub="s030", roles=frozenset({"command_centre"}), town=QINGHE)
BAILU_COMMAND = Principal(sub="s031", roles=frozenset({"command_centre"}), town=BAILU)
COUNTY_ADMIN = Principal(sub="c001", roles=frozenset({"county_admin"}))


def filing(**overrides: Any) -> models.FileRequest:
    body: dict[str, Any] = {"channel": "window", "item_code": "S001", "description": "为新生儿办理户口登记",
                            "village": "V01", "location": "青禾村五组",
                            "citizen": {"name": "测试群众", "phone": "13800000000"}}
    return models.FileRequest.model_validate(body | overrides)


async def file(db: FakeDatabase, actor: Principal = CLERK, key: str | None = None, now: datetime = NOW,
               **overrides: Any) -> dict[str, Any]:
    status, answer = await flows.file_request(deps(db, now), actor, flows.FileMatter(filing(**overrides), key))
    assert status == 201
    return answer


async def refusal_of(command: Any) -> Refusal:
    with pytest.raises(Refusal) as refused:
        await command
    return refused.value


def _code(refusal: Refusal) -> tuple[str, str | None]:
    return refusal.code.name, refusal.field


# --- filing ---------------------------------------------------------------------------------------
async def test_a_filing_gets_its_towns_ticket_an_access_code_and_one_event() -> None:
    db = FakeDatabase()
    first, second = await file(db), await file(db)
    assert first["ticket_no"] == f"{QINGHE}-20270315-00001" and second["ticket_no"] == f"{QINGHE}-20270315-00002"
    assert len(first["access_code"]) == rules.ACCESS_CODE_LENGTH == 9 and first["status"] == "filed" and first["colour"] == "yellow"
    assert [e.type for e in db.published] == ["intake.request.filed"] * 2
    assert isinstance(db.published[0], events.RequestFiled) and db.published[0].town_code == QINGHE
    # The second, at the same place and item, names the first as a possible duplicate.
    assert [d["ticket_no"] for d in second["possible_duplicates"]] == [first["ticket_no"]]
    assert second["possible_duplicates"][0]["reason"] == "similar_location"


async def test_a_repeated_key_answers_as_the_first_time_and_another_body_is_refused() -> None:
    db = FakeDatabase()
    first = await file(db, key="k1")
    assert await file(db, key="k1") == first
    assert len(db.published) == 1
    refused = await refusal_of(flows.file_request(deps(db, NOW), CLERK, flows.FileMatter(
        filing(description="另一件事"), "k1")))
    assert _code(refused) == ("idempotency.key_reused", "Idempotency-Key")


async def test_the_third_filing_of_one_item_by_one_citizen_is_raised_a_colour() -> None:
    db = FakeDatabase()
    colours = [(await file(db))["colour"] for _ in range(3)]
    assert colours == ["yellow", "yellow", "orange"]


async def test_an_unknown_item_names_the_closest_items() -> None:
    refused = await refusal_of(flows.file_request(deps(FakeDatabase(), NOW), CLERK,
                                                  flows.FileMatter(filing(item_code="农村建房"), None)))
    assert _code(refused) == ("item.unknown", "item_code") and refused.status == 409
    assert "J001" in refused.params["suggestions"]


async def test_every_field_the_town_refuses_is_named_with_its_code() -> None:
    refused = await refusal_of(flows.file_request(deps(FakeDatabase(), NOW), CLERK, flows.FileMatter(
        filing(item_code="E003", channel="proxy", proxy_agent_id="s999", village="V99"), None)))
    assert (refused.code.name, refused.status) == ("filing.village_unknown", 409)
    assert {(e.field, e.code) for e in refused.errors} == {
        ("village", "filing.village_unknown"), ("proxy_agent_id", "filing.proxy_agent_unknown"),
        ("target", "filing.target_missing")}


async def test_the_town_a_filing_goes_to() -> None:
    db = FakeDatabase()
    assert (await file(db, COUNTY_ADMIN, town_code=BAILU, village="V01"))["ticket_no"].startswith(BAILU)
    required = await refusal_of(flows.file_request(deps(db, NOW), COUNTY_ADMIN, flows.FileMatter(filing(), None)))
    assert _code(required) == ("town.required", "town_code")
    stray = Principal(sub="s010", roles=frozenset({"clerk"}), town="321003199")
    not_served = await refusal_of(flows.file_request(deps(db, NOW), stray, flows.FileMatter(filing(), None)))
    assert not_served.code.name == "town.not_served" and not_served.status == 404
    other = await refusal_of(flows.file_request(deps(db, NOW), CLERK, flows.FileMatter(filing(town_code=BAILU), None)))
    assert _code(other) == ("town.not_yours", "town_code") and other.status == 403


async def test_filing_without_the_citizen_key_is_a_503_and_writes_nothing() -> None:
    db = FakeDatabase()
    refused = await refusal_of(flows.file_request(deps(db, NOW, citizen_ref_key=None), CLERK,
                                                  flows.FileMatter(filing(), None)))
    assert refused.code.name == "filing.citizen_ref_key_unset" and refused.status == 503
    assert db.tables.requests == {} and db.published == []


# --- the citizen's status read and access code ----------------------------------------------------
def _wrong(code: str) -> str:
    return ("2" if code[0] != "2" else "3") + code[1:]


async def test_the_status_needs_the_code_or_a_token_of_the_town() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    read = flows.ReadStatus(ticket["ticket_no"], None)
    assert (await refusal_of(flows.read_status(deps(db, NOW), None, read))).code.name == "ticket.not_found"
    view = await flows.read_status(deps(db, NOW), None, flows.ReadStatus(ticket["ticket_no"], ticket["access_code"]))
    assert view.status == "filed" and view.citizen is None and [s.step for s in view.timeline] == ["filed"]
    clerk_view = await flows.read_status(deps(db, NOW), CLERK, read)
    assert clerk_view.citizen is not None and clerk_view.citizen.name == "测试群众"
    bailu_clerk = Principal(sub="s040", roles=frozenset({"clerk"}), town=BAILU)
    assert (await refusal_of(flows.read_status(deps(db, NOW), bailu_clerk, read))).code.name == "ticket.not_found"
    malformed = await refusal_of(flows.read_status(deps(db, NOW), None, flows.ReadStatus(ticket["ticket_no"], "WRONG1")))
    assert _code(malformed) == ("ticket.code_malformed", "code")


async def test_the_eleventh_wrong_code_within_the_hour_waits_even_for_the_right_one() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    wrong = flows.ReadStatus(ticket["ticket_no"], _wrong(ticket["access_code"]))
    right = flows.ReadStatus(ticket["ticket_no"], ticket["access_code"])
    for _ in range(10):  # each wrong code is counted though the answer is a refusal
        assert (await refusal_of(flows.read_status(deps(db, NOW), None, wrong))).code.name == "ticket.not_found"
    assert len(db.tables.wrong_codes[ticket["ticket_no"]]) == 10
    waiting = await refusal_of(flows.read_status(deps(db, NOW), None, right))
    assert waiting.code.name == "ticket.too_many_wrong_codes" and waiting.status == 429
    assert waiting.headers == {"Retry-After": "3600"} and waiting.params == {"retry_after": 3600}
    later = NOW + timedelta(hours=1, seconds=1)
    assert (await flows.read_status(deps(db, later), None, right)).ticket_no == ticket["ticket_no"]


async def test_a_strangers_wrong_codes_never_stop_the_citizens_right_code_from_another_address() -> None:
    db = FakeDatabase()
    ticket = await file(db, citizen={"name": "测试群众", "phone": "138 0000 4321"})
    number, code = ticket["ticket_no"], ticket["access_code"]

    def asking(given: str, address: str, tail: str | None = None) -> flows.ReadStatus:
        return flows.ReadStatus(number, given, flows.CitizenProof(address, tail))

    for n in range(10):  # ten strangers, one wrong code each: the ticket is now under attack
        refused = await refusal_of(flows.read_status(deps(db, NOW), None, asking(_wrong(code), f"10.9.0.{n}")))
        assert refused.code.name == "ticket.not_found"
    # The code alone no longer opens it, right or wrong (the answer tells nothing of the code) …
    for given in (code, _wrong(code)):
        more = await refusal_of(flows.read_status(deps(db, NOW), None, asking(given, "10.1.1.1")))
        assert _code(more) == ("ticket.more_proof_needed", "contact_tail") and more.status == 403
    # … the code with the phone's last four does, from the citizen's own address; a wrong four is a wrong code.
    assert (await flows.read_status(deps(db, NOW), None, asking(code, "10.1.1.1", "4321"))).ticket_no == number
    wrong_tail = await refusal_of(flows.read_status(deps(db, NOW), None, asking(code, "10.9.0.1", "1234")))
    assert wrong_tail.code.name == "ticket.not_found"
    malformed = await refusal_of(flows.read_status(deps(db, NOW), None, asking(code, "10.1.1.1", "43")))
    assert _code(malformed) == ("ticket.contact_tail_malformed", "contact_tail")
    # An hour later the attack has passed: the code alone again.
    later = NOW + timedelta(hours=1, seconds=1)
    assert (await flows.read_status(deps(db, later), None, asking(code, "10.1.1.1"))).ticket_no == number


async def test_one_address_that_guesses_waits_alone() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    number, code = ticket["ticket_no"], ticket["access_code"]
    for _ in range(10):
        await refusal_of(flows.read_status(deps(db, NOW), None,
                                           flows.ReadStatus(number, _wrong(code), flows.CitizenProof("10.6.6.6"))))
    waiting = await refusal_of(flows.read_status(deps(db, NOW), None,
                                                 flows.ReadStatus(number, code, flows.CitizenProof("10.6.6.6"))))
    assert waiting.code.name == "ticket.too_many_wrong_codes"
    rated = flows.RateMatter(number, code, "satisfied", flows.CitizenProof("10.6.6.6"))
    assert (await refusal_of(flows.rate(deps(db, NOW), None, rated))).code.name == "ticket.too_many_wrong_codes"
    # One address alone is no attack on the ticket: elsewhere, the code alone opens it.
    elsewhere = flows.ReadStatus(number, code, flows.CitizenProof("10.1.1.1"))
    assert (await flows.read_status(deps(db, NOW), None, elsewhere)).ticket_no == number


async def test_an_old_six_character_code_still_opens_its_ticket() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    old = "ABC234"
    db.tables.requests[ticket["ticket_no"]]["access_code"] = old  # as issued before 9-character codes
    view = await flows.read_status(deps(db, NOW), None, flows.ReadStatus(ticket["ticket_no"], "abc 234"))
    assert view.ticket_no == ticket["ticket_no"]


async def test_a_merged_matter_shows_its_primarys_progress() -> None:
    db = FakeDatabase()
    primary, duplicate = await file(db), await file(db)
    await flows.merge(deps(db, NOW), COMMAND, flows.MergeMatter(duplicate["ticket_no"], primary["ticket_no"]))
    view = await flows.read_status(deps(db, NOW), None, flows.ReadStatus(duplicate["ticket_no"],
                                                                         duplicate["access_code"]))
    assert view.merged_into is not None and view.merged_into.ticket_no == primary["ticket_no"]
    assert [s.step for s in view.timeline] == ["filed", "merged"]


# --- the rating -----------------------------------------------------------------------------------
async def test_a_rating_only_after_completion_and_only_once() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rate = flows.RateMatter(ticket["ticket_no"], ticket["access_code"], "satisfied")
    early = await refusal_of(flows.rate(deps(db, NOW), None, rate))
    assert early.code.name == "rating.not_completed" and early.params == {"status": "filed"}
    db.tables.requests[ticket["ticket_no"]]["status"] = "completed"
    rated = await flows.rate(deps(db, NOW), None, rate)
    assert rated.rating == "satisfied" and rated.rated_at == NOW.isoformat()
    again = await refusal_of(flows.rate(deps(db, NOW), None, rate))
    assert again.code.name == "rating.already_given" and again.status == 409
    assert [e.type for e in db.published if isinstance(e, events.RequestRated)] == ["intake.request.rated"]


# --- merge and unmerge ----------------------------------------------------------------------------
async def test_a_merge_and_its_undoing() -> None:
    db = FakeDatabase()
    primary, duplicate = await file(db), await file(db)
    merge = flows.MergeMatter(duplicate["ticket_no"], primary["ticket_no"])
    merged = await flows.merge(deps(db, NOW), COMMAND, merge)
    assert merged.merged_into == primary["ticket_no"]
    event = db.published[-1]
    assert isinstance(event, events.RequestMerged) and not event.data.reversed and event.data.by == "s030"

    twice = await refusal_of(flows.merge(deps(db, NOW), COMMAND, merge))
    assert _code(twice) == ("merge.already_merged", "ticket_no")
    assert twice.params == {"ticket": duplicate["ticket_no"], "primary": primary["ticket_no"]}
    back = await refusal_of(flows.merge(deps(db, NOW), COMMAND, flows.MergeMatter(primary["ticket_no"],
                                                                                   duplicate["ticket_no"])))
    assert _code(back) == ("merge.has_merged_matters", "ticket_no") and back.params["count"] == 1

    undone = await flows.unmerge(deps(db, NOW), COMMAND, flows.UnmergeMatter(duplicate["ticket_no"]))
    assert undone.unmerged_from == primary["ticket_no"]
    last = db.published[-1]
    assert isinstance(last, events.RequestMerged) and last.data.reversed
    not_merged = await refusal_of(flows.unmerge(deps(db, NOW), COMMAND, flows.UnmergeMatter(duplicate["ticket_no"])))
    assert _code(not_merged) == ("unmerge.not_merged", "ticket_no")

    await flows.merge(deps(db, NOW), COMMAND, merge)
    db.tables.requests[primary["ticket_no"]]["status"] = "closed"
    stands = await refusal_of(flows.unmerge(deps(db, NOW), COMMAND, flows.UnmergeMatter(duplicate["ticket_no"])))
    assert _code(stands) == ("unmerge.primary_closed", "ticket_no") and stands.params == {"primary": primary["ticket_no"]}


async def test_a_merge_names_what_is_wrong_and_writes_nothing() -> None:
    db = FakeDatabase()
    ours = await file(db)
    theirs = await file(db, COUNTY_ADMIN, town_code=BAILU, village="V01")
    published = len(db.published)

    async def refused(actor: Principal, ticket_no: str, into: str) -> tuple[str, str | None]:
        return _code(await refusal_of(flows.merge(deps(db, NOW), actor, flows.MergeMatter(ticket_no, into))))

    assert await refused(COMMAND, ours["ticket_no"], ours["ticket_no"]) == ("merge.into_itself", "into")
    assert await refused(COMMAND, ours["ticket_no"], f"{QINGHE}-20200101-99999") == ("merge.into_unknown", "into")
    assert await refused(COMMAND, f"{QINGHE}-20200101-99998", ours["ticket_no"]) == ("merge.ticket_not_found", None)
    assert await refused(COMMAND, ours["ticket_no"], "321003199-20200101-00001") == ("merge.into_unknown", "into")
    assert (await refused(COMMAND, ours["ticket_no"], theirs["ticket_no"]))[0] == "town.not_yours"
    assert (await refused(BAILU_COMMAND, ours["ticket_no"], theirs["ticket_no"]))[0] == "town.not_yours"
    assert await refused(COUNTY_ADMIN, ours["ticket_no"], theirs["ticket_no"]) == ("merge.other_town", "into")
    db.tables.requests[theirs["ticket_no"]]["status"] = "closed"
    primary_closed = await refusal_of(flows.merge(deps(db, NOW), COUNTY_ADMIN, flows.MergeMatter(
        (await file(db, COUNTY_ADMIN, town_code=BAILU, village="V01"))["ticket_no"], theirs["ticket_no"])))
    assert _code(primary_closed) == ("merge.primary_closed", "into")
    assert primary_closed.params == {"ticket": theirs["ticket_no"], "status": "closed"}
    assert [e for e in db.published[published:] if isinstance(e, events.RequestMerged)] == []
    assert all(r["merged_into"] is None for r in db.tables.requests.values())


# --- the catalog ----------------------------------------------------------------------------------
def test_the_catalog_is_one_towns() -> None:
    db = FakeDatabase()
    own = {e.code for e in flows.catalog(deps(db, NOW), CLERK, None)}
    assert "S001" in own and "T101" not in own
    assert "T101" in {e.code for e in flows.catalog(deps(db, NOW), COUNTY_ADMIN, BAILU)}
    with pytest.raises(Refusal) as required:
        flows.catalog(deps(db, NOW), COUNTY_ADMIN, None)
    assert _code(required.value) == ("town.required", "town")
    with pytest.raises(Refusal) as other:
        flows.catalog(deps(db, NOW), CLERK, BAILU)
    assert other.value.code.name == "town.not_found"
    assert len(COUNTY.towns) > 1


# --- events: the citizen's timeline, from what dispatch and enforcement publish -------------------
TASK = "a-task"


def event(kind: type[Any], data: EventData, town: str = QINGHE, at: datetime = NOW) -> Any:
    return new_event(kind, data, source="dispatch", town_code=town, subject=TASK, correlation_id=TASK, time=at)


def dispatched(request_id: str, at: datetime, town: str = QINGHE, *, lead_module: str = "social", post: str = "p1",
               assignee: str = "s017", task: str = TASK) -> events.TaskDispatched:
    return event(events.TaskDispatched, events.TaskDispatchedData(
        task_id=task, request_id=request_id, item_code="S001", kind="service", colour="yellow", village="V01",
        location="青禾村五组", lead_module=lead_module, post=post, assignee=assignee, assigned_via="A",
        respond_by=at + timedelta(hours=2), resolve_by=at + timedelta(days=5), dispatched_at=at), town, at)


def returned(request_id: str, at: datetime, by: str, reason: str) -> events.TaskReturned:
    return event(events.TaskReturned, events.TaskReturnedData(
        task_id=TASK, request_id=request_id, by=by, reason=reason, returned_at=at), at=at)


def accepted(request_id: str, at: datetime, town: str = QINGHE) -> events.TaskAccepted:
    return event(events.TaskAccepted, events.TaskAcceptedData(task_id=TASK, request_id=request_id, by="s017", accepted_at=at),
                 town, at)


def completed(request_id: str, at: datetime) -> events.TaskCompleted:
    return event(events.TaskCompleted, events.TaskCompletedData(task_id=TASK, request_id=request_id, by="s017",
                                                  resolution="已办结", completed_at=at, on_time=True), at=at)


def verified(request_id: str, at: datetime, passed: bool, resolve_by: datetime | None = None) -> events.TaskVerified:
    return event(events.TaskVerified, events.TaskVerifiedData(task_id=TASK, request_id=request_id, passed=passed, note="",
                                                by="s030", at=at, resolve_by=resolve_by), at=at)


def inspected(at: datetime) -> events.InspectionDone:
    return event(events.InspectionDone, events.InspectionDoneData(
        inspection_id="i-1", target="t", task_ids=[TASK], units=["u"], officers=["o1"],
        findings=[events.Finding(task_id=TASK, outcome="compliant")], started_at=at, finished_at=at), at=at)


async def follow(db: FakeDatabase, flow: Callable[[flows.Deps, Any, Any], Awaitable[None]], *delivered: Any) -> None:
    """Each event in a unit of work of its own, as the consumer hands it over."""
    for e in delivered:
        async with db.unit_of_work() as uow:
            await flow(deps(db, NOW), uow, e)


async def filed_and_dispatched(
        db: FakeDatabase, dispatch: Callable[[str, datetime], events.TaskDispatched] = dispatched) -> dict[str, Any]:
    """A matter filed at NOW and dispatched (by `dispatch`) a minute later: its ticket."""
    ticket = await file(db)
    await follow(db, flows.follow_task_dispatched, dispatch(ticket["request_id"], minutes(1)))
    return ticket


def timeline(db: FakeDatabase, request_id: str) -> list[tuple[str, datetime]]:
    """The steps as the citizen reads them: by time, then as written (the store's `at, seq`)."""
    return [(s["step"], s["at"]) for s in sorted(db.tables.timeline[uuid.UUID(request_id)], key=lambda s: s["at"])]


def request(db: FakeDatabase, ticket: dict[str, Any]) -> dict[str, Any]:
    return db.tables.requests[ticket["ticket_no"]]


def minutes(n: int) -> datetime:
    return NOW + timedelta(minutes=n)


async def test_a_tasks_life_steps_the_matters_timeline_and_status() -> None:
    db = FakeDatabase()
    ticket = await filed_and_dispatched(db)
    rid = ticket["request_id"]
    assert request(db, ticket)["status"] == "dispatched" and request(db, ticket)["status_at"] == minutes(1)
    assert db.tables.tasks == {TASK: uuid.UUID(rid)}
    step = db.tables.timeline[uuid.UUID(rid)][-1]
    assert step["detail"] == {"task_id": TASK, "module": "social", "colour": "yellow",
                              "resolve_by": (minutes(1) + timedelta(days=5)).isoformat()}
    await follow(db, flows.follow_task_accepted, accepted(rid, minutes(2)))
    assert request(db, ticket)["status"] == "in_progress"
    await follow(db, flows.follow_task_supervised, event(events.TaskSupervised, events.TaskSupervisedData(
        task_id=TASK, request_id=rid, level="reminder", notified=["s017"], at=minutes(3)), at=minutes(3)))
    await follow(db, flows.follow_task_extended, event(events.TaskExtended, events.TaskExtendedData(
        task_id=TASK, request_id=rid, days=3, reason="r", approved_by="s030",
        resolve_by=minutes(4) + timedelta(days=8)), at=minutes(4)))
    assert request(db, ticket)["status"] == "in_progress"  # supervision and extension change no status
    await follow(db, flows.follow_task_completed, completed(rid, minutes(5)))
    assert request(db, ticket)["status"] == "completed" and request(db, ticket)["completed_at"] == minutes(5)
    await follow(db, flows.follow_task_verified, verified(rid, minutes(6), passed=True))
    assert request(db, ticket)["status"] == "closed" and request(db, ticket)["completed_at"] == minutes(5)
    assert timeline(db, rid) == [("filed", NOW), ("dispatched", minutes(1)), ("accepted", minutes(2)),
                                 ("supervised", minutes(3)), ("extended", minutes(4)), ("completed", minutes(5)),
                                 ("verified", minutes(6))]
    assert db.tables.timeline[uuid.UUID(rid)][4]["detail"] == {
        "days": 3, "resolve_by": (minutes(4) + timedelta(days=8)).isoformat()}
    assert [e.type for e in db.published] == ["intake.request.filed"]  # following publishes nothing


async def test_a_return_a_failed_verification_and_an_unsatisfied_callback_set_their_status() -> None:
    db = FakeDatabase()
    ticket = await filed_and_dispatched(db)
    rid = ticket["request_id"]
    await follow(db, flows.follow_task_returned, returned(rid, minutes(2), by="s017", reason="非本岗"))
    assert request(db, ticket)["status"] == "returned"
    await follow(db, flows.follow_task_verified, verified(rid, minutes(3), passed=False))
    assert request(db, ticket)["status"] == "rework"

    def callback(at: datetime, reopened: bool) -> events.TaskCallback:
        return event(events.TaskCallback, events.TaskCallbackData(
            task_id=TASK, request_id=rid, reached=True, rating="unsatisfied" if reopened else "satisfied",
            by="s030", at=at, reopened=reopened), at=at)

    await follow(db, flows.follow_task_callback, callback(minutes(4), reopened=False))
    assert request(db, ticket)["status"] == "rework"  # a satisfied callback is a step, not a status
    await follow(db, flows.follow_task_callback, callback(minutes(5), reopened=True))
    assert request(db, ticket)["status"] == "reopened"
    assert db.tables.timeline[uuid.UUID(rid)][-1]["detail"] == {
        "task_id": TASK, "reached": True, "rating": "unsatisfied", "reopened": True}
    assert [s for s, _ in timeline(db, rid)] == ["filed", "dispatched", "returned", "verified", "callback", "callback"]


async def test_a_suspension_shows_its_category_and_the_resumption_its_promised_date() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    await follow(db, flows.follow_task_accepted, accepted(rid, minutes(2)))
    await follow(db, flows.follow_task_suspended, event(events.TaskSuspended, events.TaskSuspendedData(
        task_id=TASK, request_id=rid, category="awaiting_citizen", reason="等群众补正材料", requested_by="s017",
        approved_by="s030", suspended_at=minutes(3), resolve_by=minutes(3) + timedelta(days=1),
        working_left_seconds=3600), at=minutes(3)))
    assert request(db, ticket)["status"] == "suspended"
    # The citizen's timeline holds the category, never the holder's words; no date is promised meanwhile.
    assert db.tables.timeline[uuid.UUID(rid)][-1]["detail"] == {"task_id": TASK, "category": "awaiting_citizen"}
    read = flows.ReadStatus(ticket["ticket_no"], ticket["access_code"])
    waiting = await flows.read_status(deps(db, NOW), None, read)
    assert (waiting.stage, waiting.promised_by) == ("suspended", None)
    promised = minutes(4) + timedelta(days=2)
    await follow(db, flows.follow_task_resumed, event(events.TaskResumed, events.TaskResumedData(
        task_id=TASK, request_id=rid, by="s030", status="accepted", suspended_at=minutes(3), resumed_at=minutes(4),
        resolve_by=promised), at=minutes(4)))
    assert request(db, ticket)["status"] == "in_progress"
    assert db.tables.timeline[uuid.UUID(rid)][-1]["detail"] == {"task_id": TASK, "resolve_by": promised.isoformat()}
    assert [s for s, _ in timeline(db, rid)] == ["filed", "accepted", "suspended", "resumed"]
    resumed = await flows.read_status(deps(db, NOW), None, read)
    assert resumed.stage == "handling" and datetime.fromisoformat(resumed.promised_by or "") == promised

async def test_a_redelivered_event_adds_no_second_step() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    once = accepted(rid, minutes(2))
    await follow(db, flows.follow_task_accepted, once, once)
    assert timeline(db, rid) == [("filed", NOW), ("accepted", minutes(2))]


async def test_an_event_that_comes_late_steps_the_timeline_but_leaves_the_newer_status() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    await follow(db, flows.follow_task_completed, completed(rid, minutes(5)))
    await follow(db, flows.follow_task_accepted, accepted(rid, minutes(2)))
    assert request(db, ticket)["status"] == "completed" and request(db, ticket)["status_at"] == minutes(5)
    assert timeline(db, rid) == [("filed", NOW), ("accepted", minutes(2)), ("completed", minutes(5))]


async def test_an_event_steps_only_its_own_towns_matters() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    await follow(db, flows.follow_task_accepted, accepted(rid, minutes(2), town=BAILU))
    assert request(db, ticket)["status"] == "filed" and timeline(db, rid) == [("filed", NOW)]
    await follow(db, flows.follow_task_accepted, accepted(str(uuid.uuid4()), minutes(2)))  # not ours at all
    assert request(db, ticket)["status"] == "filed"
    with pytest.raises(Rejected):  # a town this deployment does not serve: poison, nothing written
        await follow(db, flows.follow_task_dispatched, dispatched(rid, minutes(1), town="321003199"))
    assert db.tables.tasks == {} and timeline(db, rid) == [("filed", NOW)]


async def test_an_inspection_before_the_dispatch_steps_the_matter_when_the_dispatch_arrives() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    early = inspected(minutes(3))
    await follow(db, flows.follow_inspection_done, early, early)  # redelivered: kept once
    assert timeline(db, rid) == [("filed", NOW)] and len(db.tables.early_steps[TASK]) == 1
    await follow(db, flows.follow_task_dispatched, dispatched(rid, minutes(1)))
    assert timeline(db, rid) == [("filed", NOW), ("dispatched", minutes(1)), ("inspected", minutes(3))]
    step = db.tables.timeline[uuid.UUID(rid)][-1]
    assert step["detail"] == {"inspection_id": "i-1", "outcome": "compliant"} and step["event_id"] == early.id
    assert db.tables.early_steps == {} and request(db, ticket)["status"] == "dispatched"
    await follow(db, flows.follow_inspection_done, early)  # once more after the dispatch: no second step
    assert [s for s, _ in timeline(db, rid)].count("inspected") == 1


async def test_an_inspection_after_the_dispatch_steps_the_matter_at_once() -> None:
    db = FakeDatabase()
    ticket = await filed_and_dispatched(db)
    rid = ticket["request_id"]
    await follow(db, flows.follow_inspection_done, inspected(minutes(3)))
    assert timeline(db, rid) == [("filed", NOW), ("dispatched", minutes(1)), ("inspected", minutes(3))]
    assert db.tables.early_steps == {} and request(db, ticket)["status"] == "dispatched"


# --- what the citizen is told (issue #27) ---------------------------------------------------------
def _local(moment: datetime) -> str:
    return moment.astimezone(COUNTY.towns[QINGHE].calendar.tz).isoformat()


async def _status(db: FakeDatabase, ticket: dict[str, Any]) -> models.RequestStatus:
    return await flows.read_status(deps(db, NOW), None, flows.ReadStatus(ticket["ticket_no"], ticket["access_code"]))


def answered(request_id: str, at: datetime, reply: str | None) -> events.TaskCompleted:
    return event(events.TaskCompleted, events.TaskCompletedData(
        task_id=TASK, request_id=request_id, by="s017", resolution="已办结", completed_at=at, on_time=True,
        reply=reply), at=at)


async def test_the_receipt_names_the_filing_time_the_promised_date_and_the_department() -> None:
    db = FakeDatabase()
    ticket = await file(db)  # S001 新生儿落户: 3 working days, led by the police station
    town = COUNTY.towns[QINGHE]
    assert ticket["filed_at"] == "2027-03-15T09:00:00+08:00"
    assert ticket["promised_by"] == _local(town.calendar.deadline(NOW, "3wd"))
    assert ticket["promised_by"] > ticket["filed_at"]
    assert (ticket["handling_module"], ticket["department"]) == ("police", "派出所")
    red = await file(db, colour="red", location="另一处")  # red: the town's red limit, sooner than the item's
    assert red["promised_by"] == _local(town.calendar.deadline(NOW, town.rules.dispatch.resolve_by_red))
    assert red["promised_by"] < ticket["promised_by"]


async def test_the_citizen_reads_the_answer_the_department_and_the_promised_date() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    view = await _status(db, ticket)  # before dispatch: as the receipt promised
    assert (view.stage, view.may_rate, view.reply) == ("received", False, None)
    assert (view.department, view.promised_by) == ("派出所", ticket["promised_by"])
    # An extension reaching intake before the dispatch it follows (two topics): the newer date stays.
    extended_by = minutes(4) + timedelta(days=8)
    await follow(db, flows.follow_task_extended, event(events.TaskExtended, events.TaskExtendedData(
        task_id=TASK, request_id=rid, days=3, reason="r", approved_by="s030", resolve_by=extended_by), at=minutes(4)))
    await follow(db, flows.follow_task_dispatched, dispatched(rid, minutes(1)))  # lead module: social
    view = await _status(db, ticket)
    assert (view.stage, view.handling_module, view.department) == ("handling", "social", "社会事务办公室")
    assert view.promised_by == _local(extended_by) and not view.may_rate
    await follow(db, flows.follow_task_completed, answered(rid, minutes(5), "已为您办理落户，请携带户口簿到派出所领取。"))
    view = await _status(db, ticket)
    assert (view.stage, view.may_rate) == ("answered", True)
    assert view.reply == "已为您办理落户，请携带户口簿到派出所领取。" and view.replied_at == minutes(5).isoformat()
    # A failed closure check withdraws the answer until the next one; the next completion gives it.
    await follow(db, flows.follow_task_verified, verified(rid, minutes(6), passed=False,
                                                         resolve_by=minutes(6) + timedelta(days=2)))
    view = await _status(db, ticket)
    assert (view.stage, view.may_rate, view.reply) == ("handling", False, None)
    assert view.promised_by == _local(minutes(6) + timedelta(days=2))  # the rework's date
    await follow(db, flows.follow_task_completed, answered(rid, minutes(8), "已补齐材料并办结。"),
                 answered(rid, minutes(7), "更早的答复"))  # an older completion arriving late changes nothing
    await follow(db, flows.follow_task_verified, verified(rid, minutes(9), passed=True))
    view = await _status(db, ticket)
    assert (view.stage, view.may_rate, view.reply) == ("closed", True, "已补齐材料并办结。")
    await flows.rate(deps(db, NOW), None, flows.RateMatter(ticket["ticket_no"], ticket["access_code"], "satisfied"))
    assert not (await _status(db, ticket)).may_rate  # once
    # An unsatisfied callback reopens it with a new promised date.
    await follow(db, flows.follow_task_callback, event(events.TaskCallback, events.TaskCallbackData(
        task_id=TASK, request_id=rid, reached=True, rating="unsatisfied", by="s030", at=minutes(10), reopened=True,
        resolve_by=minutes(10) + timedelta(days=3)), at=minutes(10)))
    view = await _status(db, ticket)
    assert (view.stage, view.reply, view.promised_by) == ("handling", None, _local(minutes(10) + timedelta(days=3)))


async def test_a_completion_of_the_previous_release_has_no_answer_and_another_towns_event_none_of_ours() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    await follow(db, flows.follow_task_completed, answered(rid, minutes(5), None))
    view = await _status(db, ticket)
    assert (view.stage, view.reply, view.may_rate) == ("answered", None, True)
    async with db.unit_of_work() as uow:  # a Bailu event naming a Qinghe matter sets nothing
        await flows.record_answer(uow, COUNTY.towns[BAILU], rid, minutes(6), reply="不是本镇的")
    assert (await _status(db, ticket)).reply is None


async def test_a_merged_matter_is_answered_with_its_primarys_answer() -> None:
    db = FakeDatabase()
    primary, duplicate = await file(db), await file(db)
    await flows.merge(deps(db, NOW), COMMAND, flows.MergeMatter(duplicate["ticket_no"], primary["ticket_no"]))
    view = await _status(db, duplicate)
    assert view.merged_into is not None and (view.stage, view.may_rate) == ("received", False)
    await follow(db, flows.follow_task_dispatched, dispatched(primary["request_id"], minutes(1)))
    await follow(db, flows.follow_task_completed, answered(primary["request_id"], minutes(5), "已办结"))
    view = await _status(db, duplicate)
    assert (view.stage, view.may_rate, view.reply, view.department) == ("answered", True, "已办结", "社会事务办公室")
# --- the matter in front of the handler (issue #27) ----------------------------------------------
HOLDER = Principal(sub="s049", roles=frozenset({"staff"}), town=QINGHE)  # A of post household (S001)
LEADER = Principal(sub="s048", roles=frozenset({"staff", "module_leader"}), town=QINGHE)  # 派出所
OTHER_STAFF = Principal(sub="s014", roles=frozenset({"staff"}), town=QINGHE)
APPRAISER = Principal(sub="s032", roles=frozenset({"staff", "appraisal_admin"}), town=QINGHE)


def household_dispatched(request_id: str, at: datetime, assignee: str = "s049",
                         task: str = TASK) -> events.TaskDispatched:
    return dispatched(request_id, at, lead_module="police", post="household", assignee=assignee, task=task)


async def matter(db: FakeDatabase, actor: Principal, task: str = TASK) -> models.Matter:
    return await flows.read_matter(deps(db, minutes(30)), actor, flows.ReadMatter(task))


async def test_the_assignee_reads_the_matter_with_its_citizen_and_the_read_is_recorded() -> None:
    db = FakeDatabase()
    ticket = await file(db, description="户口登记，联系电话 13912345678")
    await follow(db, flows.follow_task_dispatched, household_dispatched(ticket["request_id"], minutes(1)))
    seen = await matter(db, HOLDER)
    assert seen.citizen == models.MatterCitizen(name="测试群众", phone="13800000000")
    assert seen.citizen_seen_as == "assignee" and "13912345678" in seen.description
    assert (seen.item_name, seen.village_name, seen.channel, seen.filed_by) == ("新生儿落户", "青禾村", "window", "s010")
    assert seen.filed_at == "2027-03-15T09:00:00+08:00"  # the town's clock
    assert db.tables.personal_data_reads == [{
        "seq": 1, "town_code": QINGHE, "read_at": minutes(30), "staff_id": "s049", "basis": "assignee",
        "request_id": uuid.UUID(ticket["request_id"]), "ticket_no": ticket["ticket_no"], "task_id": TASK}]
    # Nothing personal is kept in the record: only who, as what, when, which matter.
    assert not {"测试群众", "13800000000"} & {str(v) for v in db.tables.personal_data_reads[0].values()}
    assert (await matter(db, LEADER)).citizen_seen_as == "module_leader"
    assert (await matter(db, COMMAND)).citizen_seen_as == "command_centre"
    assert [r["basis"] for r in db.tables.personal_data_reads] == ["assignee", "module_leader", "command_centre"]


async def test_other_staff_read_the_matter_without_its_citizen_and_nothing_is_recorded() -> None:
    db = FakeDatabase()
    ticket = await file(db, description="户口登记，联系电话 13912345678")
    await follow(db, flows.follow_task_dispatched, household_dispatched(ticket["request_id"], minutes(1)))
    for who in (OTHER_STAFF, CLERK, APPRAISER):
        seen = await matter(db, who)
        assert seen.citizen is None and seen.citizen_seen_as is None
        assert "13912345678" not in seen.description and seen.item_name == "新生儿落户"
    assert db.tables.personal_data_reads == []


async def test_another_towns_matter_is_as_absent_as_a_task_that_does_not_exist() -> None:
    db = FakeDatabase()
    await filed_and_dispatched(db, household_dispatched)
    other = await refusal_of(matter(db, BAILU_COMMAND))
    missing = await refusal_of(matter(db, COMMAND, "no-such-task"))
    assert {_code(other), _code(missing)} == {("matter.not_found", None)}
    assert other.status == 404 and db.tables.personal_data_reads == []
    county = await matter(db, Principal(sub="c002", roles=frozenset({"county_reader"})))
    assert county.citizen is None  # a county department reads the matter, never the citizen


async def test_the_assignee_sees_the_citizen_only_while_the_task_is_open_and_theirs() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    rid = ticket["request_id"]
    # Topics are consumed side by side: the acceptance may come before the dispatch.
    await follow(db, flows.follow_task_accepted, event(events.TaskAccepted, events.TaskAcceptedData(
        task_id=TASK, request_id=rid, by="s049", accepted_at=minutes(2)), at=minutes(2)))
    assert _code(await refusal_of(matter(db, HOLDER))) == ("matter.not_found", None)  # not linked yet
    await follow(db, flows.follow_task_dispatched, household_dispatched(rid, minutes(1)))
    assert db.tables.task_holders[TASK]["status"] == "accepted"  # the later status stays
    assert (await matter(db, HOLDER)).citizen is not None
    await follow(db, flows.follow_task_completed, completed(rid, minutes(3)))
    assert (await matter(db, HOLDER)).citizen is None and (await matter(db, LEADER)).citizen is None
    await follow(db, flows.follow_task_verified, verified(rid, minutes(4), passed=False))  # 返工: theirs again
    assert (await matter(db, HOLDER)).citizen is not None
    await follow(db, flows.follow_task_merged, event(events.TaskMerged, events.TaskMergedData(
        task_id=TASK, request_id=rid, into_request_id=str(uuid.uuid4()), status="merged",
        respond_by=minutes(60), resolve_by=minutes(600), at=minutes(5)), at=minutes(5)))
    assert (await matter(db, HOLDER)).citizen is None
    assert (await matter(db, COMMAND)).citizen is not None  # the command centre, whatever the state


async def test_a_returned_and_redispatched_matter_is_seen_by_its_new_assignee_only() -> None:
    db = FakeDatabase()
    ticket = await filed_and_dispatched(db, household_dispatched)
    rid = ticket["request_id"]
    await follow(db, flows.follow_task_returned, returned(rid, minutes(2), by="s049", reason="不属本岗"))
    await follow(db, flows.follow_task_dispatched, household_dispatched(rid, minutes(3), "s050", task="task-2"))
    assert (await matter(db, HOLDER)).citizen is None and (await matter(db, HOLDER, "task-2")).citizen is None
    seen = await matter(db, Principal(sub="s050", roles=frozenset({"staff"}), town=QINGHE), "task-2")
    assert seen.citizen is not None and db.tables.personal_data_reads[-1]["task_id"] == "task-2"


async def test_the_appraisal_office_pages_the_record_by_period_and_staff() -> None:
    db = FakeDatabase()
    await filed_and_dispatched(db, household_dispatched)
    for who, day in ((HOLDER, 1), (LEADER, 2), (HOLDER, 3)):
        await flows.read_matter(deps(db, NOW + timedelta(days=day)), who, flows.ReadMatter(TASK))
    # 2027-03-31 17:00 UTC is 04-01 01:00 in the towns: April's.
    await flows.read_matter(deps(db, datetime(2027, 3, 31, 17, 0, tzinfo=UTC)), COMMAND, flows.ReadMatter(TASK))

    async def reads(**query: Any) -> models.PersonalDataReads:
        command = flows.ReadRecord(**({"town": None, "period": None, "staff_id": None, "limit": 100, "offset": 0}
                                      | query))
        return await flows.personal_data_reads(deps(db, NOW), APPRAISER, command)

    every = await reads()
    assert [(r.staff_id, r.seen_as) for r in every.reads] == [
        ("s030", "command_centre"), ("s049", "assignee"), ("s048", "module_leader"), ("s049", "assignee")]
    assert every.reads[0].read_at == "2027-04-01T01:00:00+08:00" and every.next_offset is None
    march = await reads(period="2027-03")
    assert [r.staff_id for r in march.reads] == ["s049", "s048", "s049"]
    assert [r.read_at[:10] for r in (await reads(period="2027-03", staff_id="s049")).reads] == [
        "2027-03-18", "2027-03-16"]
    first = await reads(limit=3)
    assert len(first.reads) == 3 and first.next_offset == 3
    rest = await reads(limit=3, offset=3)
    assert [r.staff_id for r in rest.reads] == ["s049"] and rest.next_offset is None
    other = await refusal_of(reads(town=BAILU))
    assert _code(other) == ("town.not_found", "town")


async def test_a_staff_tokens_status_read_with_the_citizen_is_recorded_and_the_citizens_own_is_not() -> None:
    db = FakeDatabase()
    ticket = await file(db)
    read = flows.ReadStatus(ticket["ticket_no"], None)
    await flows.read_status(deps(db, NOW), None, flows.ReadStatus(ticket["ticket_no"], ticket["access_code"]))
    await flows.read_status(deps(db, NOW), Principal(sub="c002", roles=frozenset({"county_reader"})), read)
    assert db.tables.personal_data_reads == []  # the citizen's own read, and a county department's (no citizen)
    for who in (CLERK, COMMAND, COUNTY_ADMIN):
        assert (await flows.read_status(deps(db, minutes(5)), who, read)).citizen is not None
    assert [(r["staff_id"], r["basis"], r["ticket_no"], r["read_at"]) for r in db.tables.personal_data_reads] == [
        ("s010", "clerk", ticket["ticket_no"], minutes(5)), ("s030", "command_centre", ticket["ticket_no"], minutes(5)),
        ("c001", "county_admin", ticket["ticket_no"], minutes(5))]


# --- place (issue #30) ----------------------------------------------------------------------------
async def test_a_filing_with_a_point_is_placed_and_says_so_on_the_topic() -> None:
    db = FakeDatabase()
    answer = await file(db, item_code="T001", village=None, point={"longitude": 119.305, "latitude": 32.42})
    assert (answer["village"], answer["grid_cell"]) == ("V01", "321003104001001")
    filed = db.published[0]
    assert isinstance(filed, events.RequestFiled)
    assert filed.data.village == "V01" and filed.data.grid_cell == "321003104001001"
    assert filed.data.point == events.Position(longitude=119.305, latitude=32.42)
    plain = await file(db)
    assert (plain["village"], plain["grid_cell"]) == ("V01", None)
    assert isinstance(db.published[1], events.RequestFiled) and db.published[1].data.point is None


async def test_a_point_on_a_persons_own_matter_is_refused() -> None:
    refused = await refusal_of(flows.file_request(deps(FakeDatabase(), NOW), CLERK, flows.FileMatter(
        filing(point={"longitude": 119.305, "latitude": 32.42}), None)))
    assert (_code(refused), refused.status) == (("filing.point_not_located", "point"), 422)


def test_a_filing_names_its_village_or_a_point() -> None:
    with pytest.raises(ValueError, match=r"filing\.village_missing"):
        filing(village=None)
    with pytest.raises(ValueError, match="less than or equal to 90"):
        filing(point={"longitude": 119.3, "latitude": 119.3})


async def test_a_filing_30_m_from_an_open_one_of_its_item_names_it_nearby() -> None:
    db = FakeDatabase()
    metre = 1 / 111_320  # of latitude, in degrees
    first = await file(db, item_code="T001", village=None, location="村道东头",
                       point={"longitude": 119.305, "latitude": 32.42})
    near = await file(db, item_code="T001", village=None, location="小卖部门口",
                      point={"longitude": 119.305, "latitude": 32.42 + 30 * metre})
    [hint] = near["possible_duplicates"]
    assert (hint["ticket_no"], hint["reason"]) == (first["ticket_no"], "nearby")
    assert 29.5 <= hint["distance_m"] <= 30.5
    far = await file(db, item_code="T001", village=None, location="桥头",
                     point={"longitude": 119.305, "latitude": 32.42 - 80 * metre})
    assert far["possible_duplicates"] == []


async def test_the_status_a_citizen_or_clerk_reads_never_shows_the_point() -> None:
    db = FakeDatabase()
    ticket = await file(db, item_code="T001", village=None, point={"longitude": 119.305, "latitude": 32.42})
    for actor, code in ((None, ticket["access_code"]), (CLERK, None)):
        view = await flows.read_status(deps(db, NOW), actor, flows.ReadStatus(ticket["ticket_no"], code))
        shown = view.model_dump_json()
        assert "119.305" not in shown and "32.42" not in shown and "point" not in view.model_dump()
