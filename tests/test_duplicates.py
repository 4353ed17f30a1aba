"""重复件 on the real stack (SPEC §10): filing answers the possible duplicates; the command centre
merges a matter into its primary (the merged task closes as `merged`, the citizen follows the
primary) and can undo it until the primary closes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from devstack.stack import Stack
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import CLERK, COMMAND, Api, file_matter, filing, set_clocks, status_of, task_of
from .kafka_tools import event_of, wait_for_record

COUNTY_ADMIN = ("c001", "county_admin")


def unique_place() -> str:
    """A location no other test writes, so the duplicates found are this test's own."""
    return f"南塘村{uuid.uuid4().hex[:6]}号桥头"


def target() -> str:
    return f"91321003MA{uuid.uuid4().hex[:8].upper()}"


def hint(ticket: dict[str, Any], item: str, village: str, status: str, filed_at: str, reason: str,
         similarity: float) -> dict[str, Any]:
    return {"ticket_no": ticket["ticket_no"], "item_code": item, "village": village, "status": status,
            "filed_at": filed_at, "reason": reason, "location_similarity": similarity, "distance_m": None}


def task_event_of(task: dict[str, Any]) -> Any:
    def match(record: Any) -> bool:
        return bool(event_of(record)["data"].get("task_id") == task["task_id"])
    return match


async def test_filing_answers_the_open_matters_it_may_repeat(stack: Stack, intake: Api, dispatch: Api) -> None:
    await set_clocks(stack, "2026-12-07T09:00:00+08:00")
    place = unique_place()
    first = await file_matter(intake, item_code="T001", village="V04", location=place)
    assert first["possible_duplicates"] == []
    await status_of(intake, first, "dispatched")
    filed_at = "2026-12-07T09:00:00+08:00"

    # Same item, same village, the place written a little differently: a duplicate (containment).
    second = await file_matter(intake, item_code="T001", village="V04", location=f"{place}（东侧）")
    assert second["possible_duplicates"] == [hint(first, "T001", "V04", "dispatched", filed_at,
                                                  "similar_location", 1.0)]
    # Another village, or another item at the same place: not the same matter.
    assert (await file_matter(intake, item_code="T001", village="V03", location=place))["possible_duplicates"] == []
    assert (await file_matter(intake, item_code="T005", village="V04", location=place))["possible_duplicates"] == []

    # Same target (one enterprise), whatever the item and the village.
    enterprise = target()
    safety = await file_matter(intake, item_code="E003", village="V01", location="工业园区", target=enterprise)
    await status_of(intake, safety, "dispatched")
    food = await file_matter(intake, item_code="E004", village="V02", location="东门", target=enterprise)
    assert food["possible_duplicates"] == [hint(safety, "E003", "V01", "dispatched", filed_at, "same_target", 0.0)]

    # A retry with the same Idempotency-Key answers with the same hints.
    body = filing(item_code="T001", village="V04", location=place)
    key = {"Idempotency-Key": f"dup-{uuid.uuid4()}"}
    once = await intake.call("POST", "/v1/requests", as_=CLERK, json=body, headers=key)
    again = await intake.call("POST", "/v1/requests", as_=CLERK, json=body, headers=key)
    assert once.status_code == again.status_code == 201 and once.json() == again.json()
    assert [d["ticket_no"] for d in once.json()["possible_duplicates"]] == [second["ticket_no"], first["ticket_no"]]

    # Eight days on, outside the 7-day window (rules.yaml), nothing is proposed.
    await set_clocks(stack, "2026-12-15T09:00:00+08:00")
    assert (await file_matter(intake, item_code="T001", village="V04", location=place))["possible_duplicates"] == []


async def test_a_filing_names_the_ten_newest_of_its_likely_duplicates(stack: Stack, intake: Api) -> None:
    """However many open matters of one item a village holds, a filing weighs a bounded number and
    names the newest ten (issue #16: the unbounded list made every filing slower than the last)."""
    await set_clocks(stack, "2026-12-09T09:00:00+08:00")
    place = unique_place()
    earlier = [await file_matter(intake, item_code="T002", village="V05", location=place) for _ in range(12)]
    latest = await file_matter(intake, item_code="T002", village="V05", location=place)
    newest_first = [m["ticket_no"] for m in reversed(earlier)]
    assert [d["ticket_no"] for d in latest["possible_duplicates"]] == newest_first[:10]
    # Merged into the last one, the dozen no longer wait on a post (nor count as anyone's duplicates).
    for matter in earlier:
        merged = await intake.call("POST", f"/v1/requests/{matter['ticket_no']}/merge", as_=COMMAND,
                                   json={"into": latest["ticket_no"]})
        assert merged.status_code == 200, merged.text
    again = await file_matter(intake, item_code="T002", village="V05", location=place)
    assert [d["ticket_no"] for d in again["possible_duplicates"]] == [latest["ticket_no"]]


async def test_a_merged_matter_follows_its_primary_until_the_merge_is_undone(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2026-12-08T09:00:00+08:00")
    place = unique_place()
    primary = await file_matter(intake, item_code="T001", village="V04", location=place)
    duplicate = await file_matter(intake, item_code="T001", village="V04", location=place)
    primary_task = await task_of(dispatch, primary["request_id"])
    dup_task = await task_of(dispatch, duplicate["request_id"])
    merge = f"/v1/requests/{duplicate['ticket_no']}/merge"

    # Who may merge, and what.
    clerk = await intake.call("POST", merge, as_=CLERK, json={"into": primary["ticket_no"]})
    assert clerk.status_code == 403 and clerk.json()["code"] == "auth.role_missing"
    itself = await intake.call("POST", merge, as_=COMMAND, json={"into": duplicate["ticket_no"]})
    assert itself.status_code == 409 and (itself.json()["code"], itself.json()["field"]) == ("merge.into_itself", "into")
    unknown = await intake.call("POST", merge, as_=COMMAND, json={"into": "321003104-20200101-99999"})
    assert unknown.status_code == 409
    assert (unknown.json()["code"], unknown.json()["field"]) == ("merge.into_unknown", "into")
    assert unknown.json()["params"] == {"ticket": "321003104-20200101-99999"}
    missing = await intake.call("POST", "/v1/requests/321003104-20200101-99998/merge", as_=COMMAND,
                                json={"into": primary["ticket_no"]})
    assert missing.status_code == 404 and missing.json()["code"] == "merge.ticket_not_found"

    await set_clocks(stack, "2026-12-08T10:00:00+08:00")
    merged = await intake.call("POST", merge, as_=COMMAND, json={"into": primary["ticket_no"]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["ticket_no"] == duplicate["ticket_no"]
    assert merged.json()["merged_into"] == primary["ticket_no"]
    assert _at(merged.json()["merged_at"]) == _at("2026-12-08T10:00:00+08:00")
    twice = await intake.call("POST", merge, as_=COMMAND, json={"into": primary["ticket_no"]})
    assert twice.status_code == 409
    assert (twice.json()["code"], twice.json()["field"]) == ("merge.already_merged", "ticket_no")
    assert twice.json()["params"] == {"ticket": duplicate["ticket_no"], "primary": primary["ticket_no"]}
    # The primary has a follower now: it is not merged away in turn, and nothing merges into a follower.
    back = await intake.call("POST", f"/v1/requests/{primary['ticket_no']}/merge", as_=COMMAND,
                             json={"into": duplicate["ticket_no"]})
    assert back.status_code == 409
    assert (back.json()["code"], back.json()["field"]) == ("merge.has_merged_matters", "ticket_no")
    assert back.json()["params"] == {"ticket": primary["ticket_no"], "count": 1}

    event = event_of(await wait_for_record(bootstrap, "intake.request.merged.v1",
                                           lambda r: event_of(r)["subject"] == duplicate["request_id"]))
    assert event["type"] == "intake.request.merged" and event["correlation_id"] == duplicate["request_id"]
    assert _at(event["data"].pop("at")) == _at("2026-12-08T10:00:00+08:00")
    assert event["data"] == {"request_id": duplicate["request_id"], "ticket_no": duplicate["ticket_no"],
                             "into_request_id": primary["request_id"], "into_ticket_no": primary["ticket_no"],
                             "reversed": False, "by": "s030"}

    # Dispatch closes the duplicate's task as merged and says so; it is no longer supervised or overdue.
    closed = await task_of(dispatch, duplicate["request_id"], status="merged")
    assert closed["task_id"] == dup_task["task_id"] and closed["merged_from_status"] == "dispatched"
    assert closed["merged_into"] == primary["request_id"] and closed["overdue"] is False
    task_merged = event_of(await wait_for_record(bootstrap, "dispatch.task.merged.v1", task_event_of(dup_task)))
    times = {name: _at(task_merged["data"].pop(name)) for name in ("respond_by", "resolve_by", "at")}
    assert times == {"respond_by": _at(dup_task["respond_by"]), "resolve_by": _at(dup_task["resolve_by"]),
                     "at": _at("2026-12-08T10:00:00+08:00")}
    assert task_merged["data"] == {
        "task_id": dup_task["task_id"], "request_id": duplicate["request_id"],
        "into_request_id": primary["request_id"], "reversed": False, "status": "merged"}
    assert task_merged["causation_id"] == event["id"]
    refused = await dispatch.call("POST", f"/v1/tasks/{dup_task['task_id']}/accept",
                                  as_=(dup_task["assignee"], "staff"))
    assert refused.status_code == 409

    # The duplicate's citizen sees the primary's progress.
    accepted = await dispatch.call("POST", f"/v1/tasks/{primary_task['task_id']}/accept",
                                   as_=(primary_task["assignee"], "staff"))
    assert accepted.status_code == 200
    view = await status_of(intake, duplicate, "in_progress")
    assert view["merged_into"]["ticket_no"] == primary["ticket_no"]
    assert [s["step"] for s in view["merged_into"]["timeline"]] == ["filed", "dispatched", "accepted"]
    assert [s["step"] for s in view["timeline"]] == ["filed", "dispatched", "merged"]
    assert "citizen" not in view

    # Undone while the primary is open: the task takes back its status, with a new window of its length.
    await set_clocks(stack, "2026-12-09T10:00:00+08:00")
    undone = await intake.call("POST", f"/v1/requests/{duplicate['ticket_no']}/unmerge", as_=COMMAND)
    assert undone.status_code == 200, undone.text
    assert undone.json()["unmerged_from"] == primary["ticket_no"]
    reopened = await task_of(dispatch, duplicate["request_id"], status="dispatched")
    window = _at(dup_task["resolve_by"]) - _at(dup_task["dispatched_at"])
    assert _at(reopened["resolve_by"]) == _at("2026-12-09T10:00:00+08:00") + window
    assert reopened["window_start"] == "2026-12-09T10:00:00+08:00" and reopened["merged_into"] is None
    reversal = event_of(await wait_for_record(
        bootstrap, "dispatch.task.merged.v1",
        lambda r: task_event_of(dup_task)(r) and event_of(r)["data"]["reversed"]))
    assert reversal["data"]["status"] == "dispatched"
    assert _at(reversal["data"]["resolve_by"]) == _at(reopened["resolve_by"])
    again = await intake.call("POST", f"/v1/requests/{duplicate['ticket_no']}/unmerge", as_=COMMAND)
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["field"]) == ("unmerge.not_merged", "ticket_no")
    follows_nothing = await status_of(intake, duplicate, "dispatched")
    assert "merged_into" not in follows_nothing

    # Merged again, then the primary closes: the merge stands for good.
    assert (await intake.call("POST", merge, as_=COMMAND, json={"into": primary["ticket_no"]})).status_code == 200
    await task_of(dispatch, duplicate["request_id"], status="merged")
    done = await dispatch.call("POST", f"/v1/tasks/{primary_task['task_id']}/complete",
                               as_=(primary_task["assignee"], "staff"), json={"resolution": "路面已修复", "reply": "已为您办理完毕。"})
    assert done.status_code == 200
    verified = await dispatch.call("POST", f"/v1/tasks/{primary_task['task_id']}/verify", as_=COMMAND,
                                   json={"passed": True, "note": "现场核实"})
    assert verified.status_code == 200
    await status_of(intake, primary, "closed")
    assert (await status_of(intake, duplicate, "closed"))["merged_into"]["status"] == "closed"
    late = await intake.call("POST", f"/v1/requests/{duplicate['ticket_no']}/unmerge", as_=COMMAND)
    assert late.status_code == 409
    assert (late.json()["code"], late.json()["field"]) == ("unmerge.primary_closed", "ticket_no")
    assert late.json()["params"] == {"primary": primary["ticket_no"]}


async def test_a_merge_stays_within_the_matters_town(county_stack: Stack) -> None:
    qinghe, bailu = "321003104", "321003107"
    intake = Api(county_stack, "intake", qinghe)
    for name in county_stack.services:  # county roles name no town; the clock is the county's admin's
        moved = await Api(county_stack, name).call("POST", "/v1/admin/clock", as_=COUNTY_ADMIN,
                                                   json={"now": "2026-12-08T09:00:00+08:00"})
        assert moved.status_code == 200, moved.text
    ours = await file_matter(intake, item_code="T001", village="V04", location=unique_place())
    other = await file_matter(Api(county_stack, "intake", bailu), item_code="T001",
                              village=_first_village(bailu), location=unique_place())
    # Into another town's matter, or another town's matter into ours: the other town is not the caller's.
    into_other = await intake.call("POST", f"/v1/requests/{ours['ticket_no']}/merge", as_=COMMAND,
                                   json={"into": other["ticket_no"]})
    assert into_other.status_code == 403 and into_other.json()["code"] == "town.not_yours"
    theirs = await intake.call("POST", f"/v1/requests/{other['ticket_no']}/merge", as_=COMMAND,
                               json={"into": ours["ticket_no"]})
    assert theirs.status_code == 403 and theirs.json()["code"] == "town.not_yours"
    # The county's admin acts in every town, yet a matter merges only within its own.
    admin = Api(county_stack, "intake", None)
    across = await admin.call("POST", f"/v1/requests/{ours['ticket_no']}/merge", as_=COUNTY_ADMIN,
                              json={"into": other["ticket_no"]})
    assert across.status_code == 409
    assert (across.json()["code"], across.json()["field"]) == ("merge.other_town", "into")
    assert across.json()["params"] == {"ticket": other["ticket_no"]}


def _first_village(town: str) -> str:
    return load_county(DEMO_COUNTY_DIR).towns[town].info.villages[0].code


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
