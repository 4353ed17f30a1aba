"""Issue #18 in appraisal, on the real stack: a merged matter (重复件) counts once in every rate and
in points; a callback's rating (回访) enters the satisfaction rate exactly as a citizen's would, and
a citizen's own rating always wins; a reopened matter (重办) counts once in 重办率 and is unresolved
until worked again; a rebuild reproduces all of it; a suspended task counts once in 挂起率 (issue
#27). Each test owns its months (2028-01…07)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from devstack.stack import Stack
from townflow_shared import events
from townflow_shared.events import new_event

from .conftest import COMMAND, QINGHE, Api, eventually, file_matter, set_clocks, status_of, task_of
from .kafka_tools import group_caught_up, produce, topics_consumed_by
from .test_appraisal import APPRAISER, _rebuild, complete, figures_when, rate

# T001 (农村道路破损报修) and T002 (生活垃圾清运不及时): yellow, difficulty 1.0 — 10 points done, +2 on time.
DONE_ON_TIME = 10 + 2
JSON = [("content-type", b"application/json")]


async def filed(intake: Api, dispatch: Api, item_code: str, village: str,
                *locations: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A matter filed at each location, in that order, with the task it was dispatched as."""
    tickets = [await file_matter(intake, item_code=item_code, village=village, location=loc) for loc in locations]
    return [(ticket, await task_of(dispatch, ticket["request_id"])) for ticket in tickets]


async def verify(dispatch: Api, task: dict[str, Any], passed: bool = True) -> None:
    response = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/verify", as_=COMMAND,
                                   json={"passed": passed, "note": "现场核实"})
    assert response.status_code == 200, response.text


async def callback(dispatch: Api, task: dict[str, Any], rating: str | None) -> dict[str, Any]:
    response = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/callback", as_=COMMAND,
                                   json={"reached": rating is not None, "rating": rating, "note": "电话回访"})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def ledger(appraisal: Api, subject_type: str, subject_id: str, period: str) -> dict[str, Any]:
    response = await appraisal.call("GET", f"/v1/scores/{subject_type}/{subject_id}/{period}/ledger", as_=APPRAISER)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def merge(intake: Api, duplicate: dict[str, Any], primary: dict[str, Any]) -> None:
    response = await intake.call("POST", f"/v1/requests/{duplicate['ticket_no']}/merge", as_=COMMAND,
                                 json={"into": primary["ticket_no"]})
    assert response.status_code == 200, response.text


async def test_a_merged_matter_counts_once_in_every_rate_and_in_points(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    await set_clocks(stack, "2028-01-04T09:00:00+08:00")
    primary = await file_matter(intake, item_code="T001", village="V04", location="南塘村2028一号桥")
    duplicates = [await file_matter(intake, item_code="T001", village="V04", location="南塘村2028一号桥")
                  for _ in range(4)]  # five villagers, one pothole
    primary_task = await task_of(dispatch, primary["request_id"])
    dup_tasks = [await task_of(dispatch, d["request_id"]) for d in duplicates]
    staff = primary_task["assignee"]
    assert {t["assignee"] for t in dup_tasks} == {staff}
    # Before the merge: five tasks, one accepted; the duplicates go overdue (−5 each) and one is
    # escalated (−10), the primary is done on time.
    accepted = await dispatch.call("POST", f"/v1/tasks/{dup_tasks[0]['task_id']}/accept", as_=(staff, "staff"))
    assert accepted.status_code == 200, accepted.text
    await complete(dispatch, primary_task)
    await set_clocks(stack, "2028-01-25T09:00:00+08:00")  # past resolve_by (5wd) and 150% of the window
    before = await figures_when(appraisal, "2028-01", "staff", staff,
                                lambda f: f["counts"]["dispatched"] == 5 and f["counts"]["overdue"] == 4
                                and f["counts"]["escalated"] == 4)
    assert before["points"] == DONE_ON_TIME - 4 * 5 - 4 * 10

    await set_clocks(stack, "2028-01-25T10:00:00+08:00")
    for duplicate in duplicates:
        await merge(intake, duplicate, primary)
    await verify(dispatch, primary_task)
    after = await figures_when(appraisal, "2028-01", "staff", staff,
                               lambda f: f["counts"]["dispatched"] == 1 and f["counts"]["closed"] == 1)
    assert after["counts"] == {"dispatched": 1, "responded": 1, "resolved": 1, "completed": 1, "reworked": 0,
                               "extended": 0, "rated": 0, "satisfied": 0, "overdue": 0, "escalated": 0,
                               "escalated_red": 0, "closed": 1, "reopened": 0, "suspended": 0}
    assert after["rates"] == {"response": 1.0, "resolution": 1.0, "satisfaction": None, "rework": 0.0,
                              "extension": 0.0, "reopen": 0.0, "suspension": 0.0}
    assert after["points"] == DONE_ON_TIME  # the penalties of the merged tasks are gone with them
    assert after["composite"] == 100.0
    modules = (await appraisal.call("GET", "/v1/scores", as_=APPRAISER,
                                    params={"period": "2028-01", "subject_type": "module"})).json()
    assert [m["subject_id"] for m in modules] == ["econ"]  # T001's post, 基础设施, is 经济发展's
    village = await figures_when(appraisal, "2028-01", "village", "V04", lambda f: f["counts"]["dispatched"] == 1)
    assert modules[0]["counts"] == village["counts"] == after["counts"]
    assert modules[0]["points"] == village["points"] == DONE_ON_TIME
    entries = (await ledger(appraisal, "staff", staff, "2028-01"))["entries"]
    assert {e["ref"] for e in entries} == {primary_task["task_id"]}
    rates = (await appraisal.call("GET", "/v1/rates", as_=APPRAISER,
                                  params={"group_by": "village", "period": "2028-01"})).json()
    assert [(r["subject_id"], r["dispatched"], r["resolution"]) for r in rates] == [("V04", 1, 1.0)]


async def test_an_undone_merge_counts_the_task_again_with_its_new_window(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    await set_clocks(stack, "2028-02-01T09:00:00+08:00")
    (primary, primary_task), (duplicate, dup_task) = await filed(intake, dispatch, "T001", "V03", *["西山村2028二号路"] * 2)
    await complete(dispatch, primary_task)
    await merge(intake, duplicate, primary)
    await task_of(dispatch, duplicate["request_id"], status="merged")
    staff = dup_task["assignee"]
    await figures_when(appraisal, "2028-02", "staff", staff, lambda f: f["counts"]["dispatched"] == 1)
    # Undone long after the first window ended (2028-02-08): the new window starts now, and the
    # supervision ladder with it — nothing was overdue while merged.
    await set_clocks(stack, "2028-02-20T09:00:00+08:00")
    undone = await intake.call("POST", f"/v1/requests/{duplicate['ticket_no']}/unmerge", as_=COMMAND)
    assert undone.status_code == 200, undone.text
    back = await task_of(dispatch, duplicate["request_id"], status="dispatched")
    assert back["resolve_by"] > "2028-02-20"
    await set_clocks(stack, "2028-02-21T09:00:00+08:00")
    await complete(dispatch, back)
    f = await figures_when(appraisal, "2028-02", "staff", staff,
                           lambda f: f["counts"]["dispatched"] == 2 and f["counts"]["completed"] == 2)
    # Counted again, resolved on time against the new deadline; its response is the original window's.
    assert (f["counts"]["resolved"], f["counts"]["responded"], f["counts"]["overdue"]) == (2, 1, 0)
    assert f["rates"]["resolution"] == 1.0 and f["rates"]["response"] == 0.5
    assert f["points"] == 2 * DONE_ON_TIME


async def test_a_callback_rating_enters_the_satisfaction_rate_exactly_as_a_citizens_would(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    """The same work by the same post in two months: rated by the citizens in March, by callbacks
    in April (no citizen rated; one callback did not reach its citizen). Every figure is the same."""
    async def month(start: str, by_callback: bool) -> str:
        await set_clocks(stack, start)
        matters = await filed(intake, dispatch, "T002", "V05", *(f"北岗村垃圾点{i}" for i in range(3)))
        for (ticket, task), rating in zip(matters, ("satisfied", "basically_satisfied", None), strict=True):
            await complete(dispatch, task)
            if rating is not None and not by_callback:
                await rate(intake, ticket, rating)
            await verify(dispatch, task)
            if by_callback:
                assert (await callback(dispatch, task, rating))["status"] == "closed"
        return str(matters[0][1]["assignee"])

    staff = await month("2028-03-06T09:00:00+08:00", by_callback=False)
    assert await month("2028-04-03T09:00:00+08:00", by_callback=True) == staff
    citizens = await figures_when(appraisal, "2028-03", "staff", staff,
                                  lambda f: f["counts"]["rated"] == 2 and f["counts"]["closed"] == 3)
    callbacks = await figures_when(appraisal, "2028-04", "staff", staff,
                                   lambda f: f["counts"]["rated"] == 2 and f["counts"]["closed"] == 3)
    assert citizens["rates"]["satisfaction"] == 1.0 and citizens["counts"]["satisfied"] == 2
    assert citizens["points"] == 3 * DONE_ON_TIME + 2  # +2 for the satisfied, nothing for basically satisfied
    for name in ("counts", "rates", "points", "dimensions", "composite", "rank"):
        assert callbacks[name] == citizens[name], name
    april = (await ledger(appraisal, "staff", staff, "2028-04"))["entries"]
    assert [e["reason"] for e in april if e["reason"] == "satisfied"] == ["satisfied"]
    assert all(e["event_id"] for e in april)


async def test_the_citizens_own_rating_wins_over_a_callback_in_either_order(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    await set_clocks(stack, "2028-05-08T09:00:00+08:00")
    (first, task1), (second, task2) = await filed(intake, dispatch, "T002", "V02", "东湖村2028垃圾点甲", "东湖村2028垃圾点乙")
    # The citizen rates before the callback…
    await complete(dispatch, task1)
    await rate(intake, first, "basically_satisfied")
    await verify(dispatch, task1)
    await callback(dispatch, task1, "satisfied")
    # …or after it: their own rating stands either way.
    await complete(dispatch, task2)
    await verify(dispatch, task2)
    await callback(dispatch, task2, "satisfied")
    await rate(intake, second, "basically_satisfied")
    staff = task1["assignee"]
    # Any state with both ratings in is the final one: the citizen's wins in every order.
    f = await figures_when(appraisal, "2028-05", "staff", staff,
                           lambda f: f["counts"]["rated"] == 2 and f["counts"]["closed"] == 2
                           and f["points"] == 2 * DONE_ON_TIME)
    assert f["rates"]["satisfaction"] == 1.0 and f["counts"]["satisfied"] == 2
    reasons = [e["reason"] for e in (await ledger(appraisal, "staff", staff, "2028-05"))["entries"]]
    assert "satisfied" not in reasons  # basically satisfied earns nothing; the callbacks' +2 never counted


async def test_a_reopened_matter_counts_once_in_the_reopen_rate_and_is_unresolved_until_done_again(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    await set_clocks(stack, "2028-06-05T09:00:00+08:00")
    (reopened, task), (_, other) = await filed(intake, dispatch, "T002", "V01", "青禾村2028垃圾点", "青禾村2028垃圾点二")
    staff = task["assignee"]
    for t in (task, other):
        await complete(dispatch, t)
        await verify(dispatch, t)
    await set_clocks(stack, "2028-06-06T10:00:00+08:00")
    assert (await callback(dispatch, task, "unsatisfied"))["status"] == "rework"
    f = await figures_when(appraisal, "2028-06", "staff", staff, lambda f: f["counts"]["reopened"] == 1)
    assert (f["counts"]["closed"], f["counts"]["resolved"], f["counts"]["reworked"]) == (2, 1, 0)
    assert f["rates"]["reopen"] == 1 / 2 and f["rates"]["rework"] == 0.0 and f["rates"]["resolution"] == 1 / 2
    assert f["rates"]["satisfaction"] == 0.0
    assert f["points"] == 2 * 10 + 2 - 5  # done twice, on time once (the reopened one's +2 undone), unsatisfied

    # Worked again in the new window, closed, reopened a second time: still one reopened matter.
    await set_clocks(stack, "2028-06-07T09:00:00+08:00")
    await complete(dispatch, task)
    await verify(dispatch, task)
    await figures_when(appraisal, "2028-06", "staff", staff, lambda f: f["counts"]["resolved"] == 2)
    assert (await callback(dispatch, task, "unsatisfied"))["status"] == "rework"
    await figures_when(appraisal, "2028-06", "staff", staff, lambda f: f["counts"]["resolved"] == 1)
    await set_clocks(stack, "2028-06-08T09:00:00+08:00")
    await complete(dispatch, task)
    await verify(dispatch, task)
    assert (await callback(dispatch, task, "satisfied"))["status"] == "closed"
    f = await figures_when(appraisal, "2028-06", "staff", staff,
                           lambda f: f["counts"]["resolved"] == 2 and f["counts"]["satisfied"] == 1)
    assert f["counts"] == {"dispatched": 2, "responded": 2, "resolved": 2, "completed": 2, "reworked": 0,
                                "extended": 0, "rated": 1, "satisfied": 1, "overdue": 0, "escalated": 0,
                                "escalated_red": 0, "closed": 2, "reopened": 1, "suspended": 0}
    assert f["rates"]["reopen"] == 1 / 2 and f["rates"]["satisfaction"] == 1.0
    assert f["points"] == 2 * DONE_ON_TIME + 2  # the latest callback's satisfied
    await status_of(intake, reopened, "closed")
    for group_by in ("module", "village", "staff"):
        rows = (await appraisal.call("GET", "/v1/rates", as_=APPRAISER,
                                     params={"group_by": group_by, "period": "2028-06"})).json()
        assert [(r["reopen"], r["rework"]) for r in rows] == [(1 / 2, 0.0)], group_by


async def test_merges_and_callbacks_in_any_arrival_order_and_a_rebuild_give_the_same_figures(
        stack: Stack, bootstrap: str, appraisal: Api) -> None:
    """Events as no live run orders them — a callback before its task's dispatch, an undone merge
    before the merge (by their moments the undoing is the latest), a citizen's rating after a
    callback — give the figures their facts say; replayed from the start they give them again."""
    at = datetime.fromisoformat("2028-07-03T09:00:00+08:00")
    rid = {name: str(uuid.uuid4()) for name in "ABC"}
    tid = {name: str(uuid.uuid4()) for name in "ABC"}

    def envelope(kind: Any, data: Any, name: str, moment: datetime) -> Any:
        return new_event(kind, data, source="dispatch", town_code=QINGHE, subject=rid[name],
                         correlation_id=rid[name], time=moment)

    def dispatched(name: str) -> Any:
        return envelope(events.TaskDispatched, events.TaskDispatchedData(
            task_id=tid[name], request_id=rid[name], item_code="T001", kind="service", colour="yellow",
            village="V06", location="柳溪社区", lead_module="social", post="welfare", assignee="s014",
            assigned_via="A", respond_by=at + timedelta(hours=4), resolve_by=at + timedelta(days=5),
            dispatched_at=at), name, at)

    def merged(name: str, undone: bool, moment: datetime) -> Any:
        return envelope(events.TaskMerged, events.TaskMergedData(
            task_id=tid[name], request_id=rid[name], into_request_id=str(uuid.uuid4()), reversed=undone,
            status="dispatched" if undone else "merged", respond_by=at + timedelta(hours=4),
            resolve_by=moment + timedelta(days=5), at=moment), name, moment)

    def called_back(name: str, rating: str, reopened: bool, moment: datetime) -> Any:
        return envelope(events.TaskCallback, events.TaskCallbackData(
            task_id=tid[name], request_id=rid[name], reached=True, rating=rating, by="s030", at=moment,  # type: ignore[arg-type]
            reopened=reopened, resolve_by=moment + timedelta(days=2) if reopened else None), name, moment)

    def overdue(name: str) -> Any:
        return envelope(events.TaskSupervised, events.TaskSupervisedData(
            task_id=tid[name], request_id=rid[name], level="overdue", notified=["s014"],
            at=at + timedelta(days=5)), name, at + timedelta(days=5))

    sequence = [
        # A: reopened by an unsatisfied callback that arrives first; the citizen's own satisfied wins.
        called_back("A", "unsatisfied", True, at + timedelta(days=2)),
        envelope(events.TaskVerified, events.TaskVerifiedData(task_id=tid["A"], request_id=rid["A"], passed=True, note="核实",
                                                by="s030", at=at + timedelta(days=1)), "A", at + timedelta(days=1)),
        envelope(events.TaskCompleted, events.TaskCompletedData(task_id=tid["A"], request_id=rid["A"], by="s014",
                                                  resolution="办结", completed_at=at + timedelta(hours=1),
                                                  on_time=True), "A", at + timedelta(hours=1)),
        dispatched("A"),
        # B: the undoing (later moment) arrives before the merge: B counts, overdue and all.
        merged("B", True, at + timedelta(hours=3)), merged("B", False, at + timedelta(hours=2)),
        overdue("B"), dispatched("B"),
        # C: merged for good: its overdue and its callback's rating count for nothing.
        merged("C", False, at + timedelta(hours=1)), overdue("C"),
        called_back("C", "satisfied", False, at + timedelta(days=3)), dispatched("C"),
    ]
    for event in sequence:
        await produce(bootstrap, event.topic, event.model_dump_json().encode(), key=event.key.encode(), headers=JSON)
    await produce(bootstrap, events.RequestRated.topic, new_event(events.RequestRated, events.RequestRatedData(
        request_id=rid["A"], ticket_no="321003104-20280703-00001", rating="satisfied",
        rated_at=at + timedelta(days=4)), source="intake", town_code=QINGHE, subject=rid["A"],
        correlation_id=rid["A"], time=at + timedelta(days=4)).model_dump_json().encode(), key=rid["A"].encode(),
        headers=JSON)

    f = await figures_when(appraisal, "2028-07", "staff", "s014",
                           lambda f: f["counts"]["dispatched"] == 2 and f["counts"]["satisfied"] == 1
                           and f["counts"]["overdue"] == 1 and f["counts"]["reopened"] == 1)
    assert f["counts"] == {"dispatched": 2, "responded": 1, "resolved": 0, "completed": 1, "reworked": 0,
                           "extended": 0, "rated": 1, "satisfied": 1, "overdue": 1, "escalated": 0,
                           "escalated_red": 0, "closed": 1, "reopened": 1, "suspended": 0}
    assert f["points"] == 10 + 2 - 5  # A done (not on time: reopened since) and satisfied; B overdue
    assert f["rates"]["reopen"] == 1.0 and f["rates"]["satisfaction"] == 1.0

    await eventually(lambda: group_caught_up(bootstrap, "appraisal", topics_consumed_by("appraisal")), timeout=60,
                     what="appraisal to consume everything")
    database = f"appraisal_rebuild_{uuid.uuid4().hex[:8]}"
    result = await asyncio.to_thread(_rebuild, stack, database)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "figures identical to the live database" in result.stdout
    assert stack.postgres is not None
    rebuilt = await asyncpg.connect(stack.postgres.dsn(database))
    try:
        row = await rebuilt.fetchrow("SELECT dispatched, closed, reopened, points FROM subject_totals"
                                     " WHERE town_code = $1 AND subject_type = 'staff' AND subject_id = 's014'"
                                     " AND period = '2028-07'", QINGHE)
    finally:
        await rebuilt.close()
    assert row is not None and (row["dispatched"], row["closed"], row["reopened"], float(row["points"])) == (2, 1, 1, 7.0)


async def test_a_suspended_task_counts_once_in_the_suspension_rate_of_each_of_its_subjects(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    """挂起 (issue #27): of three matters of one post in July 2028, one suspended twice and one once:
    挂起率 2/3 for its staff member and its village."""
    await set_clocks(stack, "2028-07-03T09:00:00+08:00")
    (_, twice), (_, once), _ = await filed(intake, dispatch, "T002", "V05", *(f"北岗村垃圾点挂起{i}" for i in range(3)))
    for task in (twice, twice, once):
        for path, body, who in (("suspend", {"category": "awaiting_third_party", "reason": "等环卫公司答复"},
                                 (task["assignee"], "staff")), ("suspension/approve", None, COMMAND),
                                ("resume", None, COMMAND)):
            answer = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/{path}", as_=who, json=body)
            assert answer.status_code in (200, 202), answer.text

    def ready(f: dict[str, Any]) -> bool:
        return bool(f["counts"]["suspended"] == 2 and f["counts"]["dispatched"] == 3)

    staff = await figures_when(appraisal, "2028-07", "staff", str(twice["assignee"]), ready)
    village = await figures_when(appraisal, "2028-07", "village", "V05", ready)
    assert staff["rates"]["suspension"] == village["rates"]["suspension"] == 2 / 3
