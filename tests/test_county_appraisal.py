"""Appraisal in a county deployment (SPEC §8) on the demo county's own stack: events of two towns
produced straight onto the topics (the other services are made county-aware elsewhere), each
town's figures and the county's ranking of its towns checked against figures computed by hand."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from devstack.stack import REPO, Stack
from townflow_shared import events
from townflow_shared.events import Envelope, new_event

from .conftest import BAILU, QINGHE, SHIQIAO, Api, eventually
from .kafka_tools import event_of, produce_together, read_all, wait_for_record

PERIOD = "2032-07"
START = datetime.fromisoformat("2032-07-06T09:00:00+08:00")
APPRAISER = ("s032", "appraisal_admin")
COUNTY_READER = ("c001", "county_reader")


def _event(event_type: type[Envelope], data: Any, town: str, request_id: str, at: datetime) -> Envelope:
    return new_event(event_type, data, source="dispatch" if event_type is not events.RequestRated else "intake",
                     town_code=town, subject=request_id, correlation_id=request_id, time=at)


def matter(town: str, village: str, *, accepted_after: timedelta, completed_on_time: bool | None,
           rating: str | None) -> list[Envelope]:
    """One matter of s001 (T001, yellow, difficulty 1.0 in both towns), answered 4 hours after
    dispatch or later, completed on time or late or not at all, rated or not."""
    task_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    history: list[Envelope] = [_event(events.TaskDispatched, events.TaskDispatchedData(
        task_id=task_id, request_id=request_id, item_code="T001", kind="service", colour="yellow",
        village=village, location="测试", lead_module="econ", post="infrastructure", assignee="s001",
        assigned_via="A", respond_by=START + timedelta(hours=4), resolve_by=START + timedelta(days=5),
        dispatched_at=START), town, request_id, START)]
    accepted_at = START + accepted_after
    history.append(_event(events.TaskAccepted, events.TaskAcceptedData(task_id=task_id, request_id=request_id, by="s001",
                                                        accepted_at=accepted_at), town, request_id, accepted_at))
    if completed_on_time is not None:
        done = START + timedelta(days=2 if completed_on_time else 8)
        history.append(_event(events.TaskCompleted, events.TaskCompletedData(
            task_id=task_id, request_id=request_id, by="s001", resolution="办结", completed_at=done,
            on_time=completed_on_time), town, request_id, done))
        if rating is not None:
            rated = done + timedelta(hours=1)
            history.append(_event(events.RequestRated, events.RequestRatedData(
                request_id=request_id, ticket_no=f"T-{request_id[:8]}", rating=rating,  # type: ignore[arg-type]
                rated_at=rated), town, request_id, rated))
    return history


async def produce(bootstrap: str, history: list[Envelope]) -> None:
    for topic in dict.fromkeys(e.topic for e in history):
        await produce_together(bootstrap, topic, [(e.correlation_id.encode(), e.model_dump_json().encode())
                                                  for e in history if e.topic == topic])


@pytest.fixture(scope="module")
def bootstrap(county_stack: Stack) -> str:
    assert county_stack.kafka is not None
    return county_stack.kafka.bootstrap


@pytest.fixture(scope="module")
def appraisal(county_stack: Stack) -> Api:
    return Api(county_stack, "appraisal")


@pytest.fixture(scope="module")
async def two_towns(bootstrap: str, appraisal: Api) -> None:
    """青禾镇's s001: answered 2 of 3 in time, resolved 1 in time, 1 of 2 ratings satisfied.
    白鹭镇's s001: answered and resolved both in time, its one rating basically satisfied."""
    history = [
        *matter(QINGHE, "V01", accepted_after=timedelta(hours=1), completed_on_time=True, rating="satisfied"),
        *matter(QINGHE, "V02", accepted_after=timedelta(hours=2), completed_on_time=False, rating="unsatisfied"),
        *matter(QINGHE, "V03", accepted_after=timedelta(hours=6), completed_on_time=None, rating=None),
        *matter(BAILU, "V01", accepted_after=timedelta(hours=1), completed_on_time=True,
                rating="basically_satisfied"),
        *matter(BAILU, "V02", accepted_after=timedelta(hours=3), completed_on_time=True, rating=None),
    ]
    await produce(bootstrap, history)
    reader = appraisal.of_town(None)

    async def all_in() -> bool:
        for town, dispatched, rated in ((QINGHE, 3, 2), (BAILU, 2, 1)):
            rows = (await reader.call("GET", "/v1/scores", as_=COUNTY_READER, params={
                "town": town, "period": PERIOD, "subject_type": "staff", "subject_id": "s001"})).json()
            if not rows or (rows[0]["counts"]["dispatched"], rows[0]["counts"]["rated"]) != (dispatched, rated) \
                    or rows[0]["counts"]["completed"] != {QINGHE: 2, BAILU: 2}[town]:
                return False
        return True

    await eventually(all_in, timeout=90, what="appraisal to take in both towns' events")


async def test_the_same_staff_id_in_two_towns_is_two_subjects(two_towns: None, appraisal: Api) -> None:
    qinghe = (await appraisal.of_town(QINGHE).call("GET", "/v1/scores", as_=APPRAISER, params={
        "period": PERIOD, "subject_type": "staff", "subject_id": "s001"})).json()
    bailu = (await appraisal.of_town(None).call("GET", "/v1/scores", as_=COUNTY_READER, params={
        "town": BAILU, "period": PERIOD, "subject_type": "staff", "subject_id": "s001"})).json()
    q, b = qinghe[0], bailu[0]
    assert q["town_code"] == QINGHE and b["town_code"] == BAILU
    assert q["counts"] | {} == {"dispatched": 3, "responded": 2, "resolved": 1, "completed": 2, "reworked": 0,
                                "extended": 0, "rated": 2, "satisfied": 1, "overdue": 0, "escalated": 0,
                                "escalated_red": 0, "closed": 0, "reopened": 0, "suspended": 0}
    assert q["rates"]["response"] == pytest.approx(2 / 3)
    assert q["rates"]["resolution"] == pytest.approx(1 / 3)
    assert q["rates"]["satisfaction"] == 0.5
    # 100 × (0.30 × 2/3 + 0.35 × 1/3 + 0.35 × 0.5) = 49.1667
    assert q["composite"] == pytest.approx(49.1667)
    assert q["points"] == 19.0  # (10 + 2 on time + 2 satisfied) + (10 − 5 unsatisfied)
    assert b["rates"]["response"] == 1.0 and b["rates"]["resolution"] == 1.0 and b["rates"]["satisfaction"] == 1.0
    assert b["composite"] == 100.0
    assert b["points"] == 24.0  # 2 × (10 + 2 on time)
    assert q["rank"] == 1 and b["rank"] == 1  # each ranked within its own town

    updates = [event_of(r) for r in await read_all(
        appraisal.stack.kafka.bootstrap, "appraisal.score.updated.v1")]  # type: ignore[union-attr]
    mine = {(u["town_code"], u["data"]["subject_type"]) for u in updates
            if u["data"]["period"] == PERIOD and u["data"]["subject_id"] == "s001"}
    assert mine == {(QINGHE, "staff"), (BAILU, "staff")}


async def test_the_county_ranks_its_towns_by_composite_and_by_each_rate(two_towns: None, appraisal: Api) -> None:
    response = await appraisal.of_town(None).call("GET", "/v1/county/rankings", as_=COUNTY_READER,
                                                  params={"period": PERIOD})
    assert response.status_code == 200, response.text
    result = response.json()
    rows = {r["town_code"]: r for r in result["towns"]}
    assert set(rows) == {QINGHE, BAILU, SHIQIAO}
    assert rows[QINGHE]["name"] == "青禾镇"
    assert (rows[QINGHE]["dispatched"], rows[QINGHE]["rated"], rows[QINGHE]["satisfied"]) == (3, 2, 1)
    assert rows[QINGHE]["composite"] == pytest.approx(49.1667)
    assert rows[BAILU]["composite"] == 100.0
    assert rows[SHIQIAO]["composite"] is None  # nothing this month: unranked
    assert rows[QINGHE]["ranks"] == {"composite": 2, "response": 2, "resolution": 2, "satisfaction": 2}
    assert rows[BAILU]["ranks"] == {"composite": 1, "response": 1, "resolution": 1, "satisfaction": 1}
    assert rows[SHIQIAO]["ranks"] == {"composite": None, "response": None, "resolution": None,
                                      "satisfaction": None}
    assert result["rankings"] == {m: [BAILU, QINGHE] for m in ("composite", "response", "resolution",
                                                               "satisfaction")}


async def test_a_towns_staff_reach_only_their_town(two_towns: None, appraisal: Api) -> None:
    qinghe = appraisal.of_town(QINGHE)
    for path in ("/v1/scores", "/v1/rates", "/v1/rankings", "/v1/alerts", f"/v1/scores/staff/s001/{PERIOD}/ledger"):
        response = await qinghe.call("GET", path, as_=APPRAISER, params={"town": BAILU, "period": PERIOD})
        assert response.status_code == 404, (path, response.text)
        assert (response.json()["code"], response.json()["field"]) == ("town.not_found", "town")
    response = await qinghe.call("GET", "/v1/bonus", as_=APPRAISER,
                                 params={"town": BAILU, "period": PERIOD, "pool": "1000.00"})
    assert (response.status_code, response.json()["code"]) == (404, "town.not_found")
    response = await qinghe.call("POST", "/v1/seconded-scores", as_=APPRAISER, params={"town": BAILU},
                                 json={"unit": "land", "period": PERIOD, "score": 90})
    assert response.status_code == 403, response.text
    assert (response.json()["code"], response.json()["field"]) == ("town.not_yours", "town")
    response = await qinghe.call("GET", "/v1/county/rankings", as_=APPRAISER, params={"period": PERIOD})
    assert (response.status_code, response.json()["code"]) == (403, "auth.role_missing")
    ledger = (await qinghe.call("GET", f"/v1/scores/staff/s001/{PERIOD}/ledger", as_=APPRAISER)).json()
    assert ledger["town_code"] == QINGHE and ledger["points"] == 19.0


async def test_county_roles_name_the_town(two_towns: None, appraisal: Api) -> None:
    reader = appraisal.of_town(None)
    response = await reader.call("GET", "/v1/scores", as_=COUNTY_READER, params={"period": PERIOD})
    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["field"]) == ("town.required", "town")
    # A town this deployment does not serve: 404, as in every service (townflow_shared.scope).
    response = await reader.call("GET", "/v1/scores", as_=COUNTY_READER, params={"period": PERIOD,
                                                                                "town": "321003999"})
    assert response.status_code == 404, response.text
    assert (response.json()["code"], response.json()["field"]) == ("town.not_served", "town")
    bonus = (await reader.call("GET", "/v1/bonus", as_=("c000", "county_admin"),
                               params={"town": BAILU, "period": PERIOD, "pool": "240.00"})).json()
    shares = {s["staff_id"]: Decimal(s["share"]) for s in bonus["shares"]}
    assert shares["s001"] == Decimal("240.00") and bonus["town_code"] == BAILU  # the only one with points


async def test_an_event_of_a_town_not_served_is_dead_lettered(bootstrap: str, appraisal: Api) -> None:
    stray = matter("321003999", "V01", accepted_after=timedelta(hours=1), completed_on_time=None, rating=None)[0]
    await produce(bootstrap, [stray])
    record = await wait_for_record(bootstrap, f"{events.TaskDispatched.topic}.dlq",
                                   # every consumer of the topic dead-letters it: look at appraisal's
                                   lambda r: event_of(r)["id"] == str(stray.id)
                                   and dict(r.headers).get("x-dlq-service") == b"appraisal", timeout=60)
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["x-dlq-service"] == "appraisal"
    assert "town 321003999 is not served by this deployment" in headers["x-dlq-error"]


async def test_a_rebuild_gives_every_towns_figures_again(two_towns: None, county_stack: Stack) -> None:
    """Replayed into an empty database, town by town the same figures; the stray town's event is
    counted as poison, as the live consumer dead-lettered it."""
    assert county_stack.postgres is not None
    database = f"appraisal_rebuild_{uuid.uuid4().hex[:8]}"
    county_stack.postgres.create_database(database)
    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "appraisal", "rebuild", "--into", county_stack.postgres.dsn(database), "--compare"],
        env={**os.environ, **county_stack.services["appraisal"].env}, cwd=REPO, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "figures identical to the live database" in result.stdout
