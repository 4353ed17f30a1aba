"""Appraisal on the real stack (SPEC §5.5): the other services are driven through their APIs and
appraisal's figures are checked exactly. Each test owns a month, so figures do not mix."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from devstack.stack import REPO, Stack
from townflow_shared.events import ScoreUpdated, TaskDispatched, TaskDispatchedData, new_event

from .conftest import COMMAND, Api, eventually, file_matter, set_clocks, task_of
from .kafka_tools import event_of, group_caught_up, produce_together, read_all, topics_consumed_by

APPRAISER = ("s032", "appraisal_admin")


async def figures(appraisal: Api, period: str, subject_type: str, subject_id: str) -> dict[str, Any] | None:
    rows = (await appraisal.call("GET", "/v1/scores", as_=APPRAISER, params={
        "period": period, "subject_type": subject_type, "subject_id": subject_id})).json()
    return rows[0] if rows else None


async def figures_when(appraisal: Api, period: str, subject_type: str, subject_id: str,
                       ready: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        f = await figures(appraisal, period, subject_type, subject_id)
        return f if f is not None and ready(f) else None

    return await eventually(check, timeout=60, what=f"{subject_type} {subject_id} figures in {period}")


async def complete(dispatch: Api, task: dict[str, Any], resolution: str = "办结") -> None:
    response = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/complete",
                                   as_=(task["assignee"], "staff"), json={"resolution": resolution, "reply": "已为您办理完毕。"})
    assert response.status_code == 200, response.text


async def rate(intake: Api, ticket: dict[str, Any], rating: str) -> None:
    async def done() -> bool:
        view = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}",
                                  params={"code": ticket["access_code"]})).json()
        return view["status"] in ("completed", "closed")

    await eventually(done, what="intake to see the completion")
    response = await intake.call("POST", f"/v1/requests/{ticket['ticket_no']}/rating",
                                 params={"code": ticket["access_code"]}, json={"rating": rating})
    assert response.status_code == 200, response.text


async def test_17_of_19_resolved_on_time_is_a_resolution_rate_of_17_over_19(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    """The rate through the whole stack: filed in intake, dispatched, completed, counted. The
    arithmetic at a month's size (137 of 152) is the rules' unit test; here 19 matters keep it quick."""
    await set_clocks(stack, "2027-03-01T09:00:00+08:00")
    tickets = await asyncio.gather(*(file_matter(intake, item_code="S014") for _ in range(19)))
    tasks = await asyncio.gather(*(task_of(dispatch, t["request_id"]) for t in tickets))
    await asyncio.gather(*(complete(dispatch, t) for t in tasks[:17]))
    org = await figures_when(appraisal, "2027-03", "module", "org",
                             lambda f: f["counts"]["dispatched"] == 19 and f["counts"]["resolved"] == 17)
    assert org["rates"]["resolution"] == 17 / 19
    assert org["rates"]["response"] == 17 / 19  # a completion within respond_by is a response
    assert org["rates"]["satisfaction"] is None
    rates = (await appraisal.call("GET", "/v1/rates", as_=APPRAISER,
                                  params={"group_by": "module", "period": "2027-03"})).json()
    assert next(r for r in rates if r["subject_id"] == "org")["resolution"] == 17 / 19


async def test_rates_of_a_staff_member_who_took_over_as_b(stack: Stack, intake: Api, dispatch: Api,
                                                          appraisal: Api, bootstrap: str) -> None:
    await set_clocks(stack, "2027-04-05T09:00:00+08:00")
    away = {"from": "2027-04-05T08:00:00+08:00", "to": "2027-04-05T18:00:00+08:00", "reason": "培训"}
    assert (await dispatch.call("POST", "/v1/staff/s014/off-post", as_=COMMAND, json=away)).status_code == 201
    tickets = [await file_matter(intake, item_code="S005") for _ in range(4)]
    tasks = [await task_of(dispatch, t["request_id"]) for t in tickets]
    assert {(t["assignee"], t["assigned_via"]) for t in tasks} == {("s015", "B")}
    for task in tasks[:3]:
        await complete(dispatch, task)
    for ticket, rating in zip(tickets[:3], ("satisfied", "satisfied", "unsatisfied"), strict=True):
        await rate(intake, ticket, rating)
    staff = await figures_when(appraisal, "2027-04", "staff", "s015",
                               lambda f: f["counts"]["rated"] == 3 and f["counts"]["dispatched"] == 4)
    assert staff["rates"]["response"] == 3 / 4, staff
    assert staff["rates"]["resolution"] == 3 / 4
    assert staff["rates"]["satisfaction"] == 2 / 3
    # S005 is orange by default: 3 × 10 × 1.3 × 1.2 + 3 × 2 on time + 2 × 2 satisfied − 5 unsatisfied
    assert staff["points"] == pytest.approx(3 * 10 * 1.3 * 1.2 + 6 + 4 - 5)
    assert await figures(appraisal, "2027-04", "staff", "s014") is None
    expected = 100 * (0.30 * 0.75 + 0.35 * 0.75 + 0.35 * 2 / 3)
    assert staff["composite"] == pytest.approx(expected, abs=1e-3)
    ledger = (await appraisal.call("GET", "/v1/scores/staff/s015/2027-04/ledger", as_=APPRAISER)).json()
    assert ledger["points"] == pytest.approx(staff["points"])
    assert {e["reason"] for e in ledger["entries"]} == {"completed", "on_time", "satisfied", "unsatisfied"}
    assert all(e["event_id"] for e in ledger["entries"])
    updates = [event_of(r)["data"] for r in await read_all(bootstrap, "appraisal.score.updated.v1")
               if event_of(r)["data"]["subject_id"] == "s015" and event_of(r)["data"]["period"] == "2027-04"]
    assert updates and updates[-1]["rates"]["satisfaction"] == pytest.approx(2 / 3)
    assert {c for u in updates for c in u["cause_event_ids"]} >= {e["event_id"] for e in ledger["entries"] if e["reason"] == "unsatisfied"}


async def test_a_batch_publishes_each_changed_subjects_figures_once(bootstrap: str, appraisal: Api) -> None:
    """Three dispatches of one staff member arriving in one fetch: one score.updated per subject,
    with the final figures and every cause listed."""
    dispatched_at = datetime.fromisoformat("2031-01-15T09:00:00+08:00")
    events = [new_event(TaskDispatched, TaskDispatchedData(
        task_id=str(uuid.uuid4()), request_id=request_id, item_code="S005", kind="service", colour="yellow",
        village="V02", location="测试", lead_module="social", post="welfare", assignee="s014", assigned_via="A",
        respond_by=dispatched_at + timedelta(hours=4), resolve_by=dispatched_at + timedelta(days=5),
        dispatched_at=dispatched_at), source="dispatch", town_code="321003104", subject=request_id,
        correlation_id=request_id, time=dispatched_at)
        for request_id in (str(uuid.uuid4()) for _ in range(3))]
    key = b"one-partition"  # one partition and one producer batch: one fetch, one consumer batch
    await produce_together(bootstrap, TaskDispatched.topic, [(key, e.model_dump_json().encode()) for e in events])
    exact = await figures_when(appraisal, "2031-01", "staff", "s014", lambda f: f["counts"]["dispatched"] == 3)

    async def updates_of(subject_type: str, subject_id: str) -> list[dict[str, Any]]:
        return [d for d in (event_of(r)["data"] for r in await read_all(bootstrap, ScoreUpdated.topic))
                if d["period"] == "2031-01" and (d["subject_type"], d["subject_id"]) == (subject_type, subject_id)]

    for subject in (("staff", "s014"), ("module", "social"), ("village", "V02")):
        updates = await eventually(lambda s=subject: updates_of(*s), what=f"the score.updated of {subject}")
        assert len(updates) == 1, updates
        assert updates[0]["cause_event_ids"] == [str(e.id) for e in events]
        assert updates[0]["cause_event_id"] == str(events[-1].id)
        assert updates[0]["correlation_ids"] == [e.correlation_id for e in events]
        assert updates[0]["rank"] == 1  # the first of its kind scored this month
    staff_update = (await updates_of("staff", "s014"))[0]
    assert staff_update["rates"] == exact["rates"] and staff_update["points"] == exact["points"]
    assert staff_update["composite"] == pytest.approx(exact["composite"])


async def test_a_redispatched_matter_counts_once_against_the_final_assignee(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    await set_clocks(stack, "2027-05-10T09:00:00+08:00")
    ticket = await file_matter(intake, item_code="S013")
    first = await task_of(dispatch, ticket["request_id"])
    assert first["assignee"] == "s024"
    returned = await dispatch.call("POST", f"/v1/tasks/{first['task_id']}/return", as_=("s024", "staff"),
                                   json={"reason": "不归本岗"})
    assert returned.status_code == 200
    second = (await dispatch.call("POST", f"/v1/tasks/{first['task_id']}/redispatch", as_=COMMAND,
                                  json={"post": "veterans", "return_valid": False})).json()
    await complete(dispatch, second)
    final = await figures_when(appraisal, "2027-05", "staff", second["assignee"],
                               lambda f: f["counts"]["resolved"] == 1)
    assert final["counts"]["dispatched"] == 1
    returner = await figures_when(appraisal, "2027-05", "staff", "s024", lambda f: f["points"] == -3)
    assert returner["counts"]["dispatched"] == 0 and returner["rates"]["resolution"] is None
    modules = {r["subject_id"]: r for r in (await appraisal.call(
        "GET", "/v1/rates", as_=APPRAISER, params={"group_by": "module", "period": "2027-05"})).json()}
    assert modules["social"]["dispatched"] == 1
    assert "agri" not in modules or modules["agri"]["dispatched"] == 0


async def _alert_levels(appraisal: Api, staff: str, period: str) -> list[str]:
    rows = (await appraisal.call("GET", "/v1/alerts", as_=APPRAISER,
                                 params={"period": period, "staff_id": staff})).json()
    return sorted(r["level"] for r in rows)


async def test_each_accountability_level_is_raised_once_at_its_threshold(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api, bootstrap: str) -> None:
    # legal-aid (A s047) handles S012, 7 working days; no other test files it.
    async def overdue_batch(filed_at: str, n: int, overdue_at: str, total: int) -> None:
        await set_clocks(stack, filed_at)
        tasks = [await task_of(dispatch, (await file_matter(intake, item_code="S012"))["request_id"])
                 for _ in range(n)]
        assert {t["assignee"] for t in tasks} == {"s047"}
        await set_clocks(stack, overdue_at)
        await figures_when(appraisal, "2027-06", "staff", "s047", lambda f: f["counts"]["overdue"] == total)

    await overdue_batch("2027-06-01T09:00:00+08:00", 2, "2027-06-10T18:00:00+08:00", 2)
    assert await _alert_levels(appraisal, "s047", "2027-06") == []
    await overdue_batch("2027-06-10T18:10:00+08:00", 1, "2027-06-21T18:00:00+08:00", 3)
    assert await eventually(lambda: _alert_levels(appraisal, "s047", "2027-06")) == ["reminder"]
    await overdue_batch("2027-06-21T09:10:00+08:00", 2, "2027-06-30T18:00:00+08:00", 5)
    assert await _alert_levels(appraisal, "s047", "2027-06") == ["reminder", "talk"]

    await set_clocks(stack, "2027-06-30T18:10:00+08:00")
    tasks = [await task_of(dispatch, (await file_matter(intake, item_code="S012"))["request_id"]) for _ in range(3)]
    assert {t["assignee"] for t in tasks} == {"s047"}
    await set_clocks(stack, "2027-07-12T09:00:00+08:00")
    await figures_when(appraisal, "2027-06", "staff", "s047", lambda f: f["counts"]["overdue"] == 8)
    assert await _alert_levels(appraisal, "s047", "2027-06") == ["accountability", "reminder", "talk"]
    raised = [event_of(r)["data"] for r in await read_all(bootstrap, "appraisal.alert.raised.v1")
              if event_of(r)["data"]["staff_id"] == "s047" and event_of(r)["data"]["period"] == "2027-06"]
    assert sorted(a["level"] for a in raised) == ["accountability", "reminder", "talk"]  # once each


async def test_a_seconded_units_final_score_and_the_bonus_split(stack: Stack, intake: Api, dispatch: Api,
                                                               appraisal: Api) -> None:
    await set_clocks(stack, "2027-08-02T09:00:00+08:00")
    task = await task_of(dispatch, (await file_matter(intake, item_code="E008", target="SITE-GD-01"))["request_id"])
    assert task["assignee"] == "s042"
    await complete(dispatch, task)
    land = await figures_when(appraisal, "2027-08", "seconded_unit", "land", lambda f: f["counts"]["resolved"] == 1)
    assert land["composite"] == 100
    bad_unit = await appraisal.call("POST", "/v1/seconded-scores", as_=APPRAISER,
                                    json={"unit": "social", "period": "2027-08", "score": 90})
    assert bad_unit.status_code == 409  # a request as documented; the town's modules refuse it
    assert (bad_unit.json()["code"], bad_unit.json()["field"]) == ("score.unit_not_seconded", "unit")
    posted = await appraisal.call("POST", "/v1/seconded-scores", as_=APPRAISER,
                                  json={"unit": "land", "period": "2027-08", "score": 90})
    assert posted.status_code == 201, posted.text
    assert posted.json()["final"] == pytest.approx(0.6 * 100 + 0.4 * 90)
    land = await figures(appraisal, "2027-08", "seconded_unit", "land")
    assert land is not None and land["final"] == pytest.approx(96.0)

    split = await appraisal.call("GET", "/v1/bonus", as_=APPRAISER, params={"period": "2027-08", "pool": "10000.01"})
    assert split.status_code == 200, split.text
    shares = {s["staff_id"]: Decimal(s["share"]) for s in split.json()["shares"]}
    assert sum(shares.values()) == Decimal("10000.01")
    assert all(v >= 0 for v in shares.values())
    assert shares["s042"] == Decimal("10000.01")  # the only one with points this month
    to_the_fen = await appraisal.call("GET", "/v1/bonus", as_=APPRAISER, params={"period": "2027-08", "pool": "12.345"})
    assert to_the_fen.status_code == 422
    assert (to_the_fen.json()["code"], to_the_fen.json()["field"]) == ("value.too_many_digits", "pool")
    endless = await appraisal.call("GET", "/v1/bonus", as_=APPRAISER, params={"period": "2027-08", "pool": "1E+999999"})
    assert (endless.status_code, endless.json()["code"], endless.json()["field"]) == (
        422, "value.too_many_digits", "pool")
    not_theirs = await appraisal.call("GET", "/v1/bonus", as_=COMMAND, params={"period": "2027-08", "pool": "1"})
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (403, "auth.role_missing")


async def test_rankings_list_the_top_and_bottom(appraisal: Api) -> None:
    ranking = (await appraisal.call("GET", "/v1/rankings", as_=APPRAISER, params={"period": "2027-04"})).json()
    assert ranking["staff"]["red"][0]["subject_id"] == "s015"
    anonymous = await appraisal.call("GET", "/v1/rankings")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "auth.token_missing")


def _rebuild(stack: Stack, database: str) -> subprocess.CompletedProcess[str]:
    assert stack.postgres is not None
    stack.postgres.create_database(database)
    env = {**stack.services["appraisal"].env}
    import os
    return subprocess.run([sys.executable, "-m", "appraisal", "rebuild", "--into", stack.postgres.dsn(database),
                           "--compare"], env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True,
                          timeout=600)


async def test_replaying_all_topics_twice_gives_the_same_scores(stack: Stack, bootstrap: str) -> None:
    consumed = topics_consumed_by("appraisal")
    await eventually(lambda: group_caught_up(bootstrap, "appraisal", consumed), timeout=60,
                     what="appraisal to consume everything")
    for database in ("appraisal_rebuild_1", "appraisal_rebuild_2"):
        result = await asyncio.to_thread(_rebuild, stack, database)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "figures identical to the live database" in result.stdout
        assert "replaying" in result.stdout


async def test_running_totals_equal_the_sums_of_every_contribution(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str, databases: dict[str, asyncpg.Pool]) -> None:
    """The triggers' running totals (read on every event) against a SUM over all facts, for every subject."""
    await set_clocks(stack, "2026-11-23T09:00:00+08:00")
    for code in ("S001", "S002", "T001"):
        await task_of(dispatch, (await file_matter(intake, item_code=code))["request_id"])
    consumed = topics_consumed_by("appraisal")
    await eventually(lambda: group_caught_up(bootstrap, "appraisal", consumed), timeout=60,
                     what="appraisal caught up")
    counts = ("dispatched", "responded", "resolved", "completed", "reworked", "extended", "rated",
              "satisfied", "overdue", "escalated", "escalated_red", "closed", "reopened")
    summed = ", ".join(f"sum(c_{c})::int AS {c}" for c in counts)
    zeros = ", ".join(f"0 AS c_{c}" for c in counts)
    facts = ", ".join(f"c_{c}" for c in counts)
    expected = await databases["appraisal"].fetch(f"""
        SELECT subject_type, subject_id, period, {summed}, round(sum(points), 6) AS points FROM (
            SELECT 'staff' AS subject_type, assignee AS subject_id, period, {facts}, c_points::numeric AS points
              FROM task_facts WHERE assignee IS NOT NULL
            UNION ALL SELECT 'module', module, period, {facts}, c_points::numeric FROM task_facts WHERE module IS NOT NULL
            UNION ALL SELECT 'village', village, period, {facts}, c_points::numeric FROM task_facts WHERE village IS NOT NULL
            UNION ALL SELECT 'seconded_unit', seconded_unit, period, {facts}, c_points::numeric
              FROM task_facts WHERE seconded_unit IS NOT NULL
            UNION ALL SELECT 'staff', staff_id, period, {zeros}, points::numeric FROM inspection_points
            UNION ALL SELECT 'module', module, period, {zeros}, points::numeric FROM inspection_points WHERE module IS NOT NULL
            UNION ALL SELECT 'seconded_unit', seconded_unit, period, {zeros}, points::numeric
              FROM inspection_points WHERE seconded_unit IS NOT NULL) AS c
        WHERE period IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")
    totals = await databases["appraisal"].fetch(
        f"SELECT subject_type, subject_id, period, {', '.join(counts)}, round(points, 6) AS points"
        " FROM subject_totals ORDER BY 1, 2, 3")
    assert expected and [dict(r) for r in totals] == [dict(r) for r in expected]
