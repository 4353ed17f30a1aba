"""Intake serving a county (SPEC §8) on the demo county 禾川县: each town numbers its own tickets
and checks filings against its own catalog, villages and proxy agents; a town's staff reach only
their town, county roles every town; the handlers take the town from each event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from devstack.processes import free_port
from devstack.stack import ServiceProcess, Stack
from townflow_shared import events
from townflow_shared.events import new_event

from .conftest import BAILU, CLERK, QINGHE, SHIQIAO, Api, eventually, file_matter, filing, http_client
from .kafka_tools import about, event_of, produce, read_all, wait_for_record

COUNTY_ADMIN = ("c001", "county_admin")
COUNTY_READER = ("c002", "county_reader")


@pytest.fixture(scope="module")
def county(county_stack: Stack) -> Api:
    """Intake of the county, called with county tokens (no town claim); `.of_town` for a town's staff."""
    return Api(county_stack, "intake")


@pytest.fixture(scope="module")
def county_bootstrap(county_stack: Stack) -> str:
    assert county_stack.kafka is not None
    return county_stack.kafka.bootstrap


@pytest.fixture(scope="module")
async def intake_db(county_stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    assert county_stack.postgres is not None
    pool = await asyncpg.create_pool(county_stack.postgres.dsn("intake"), min_size=1, max_size=2)
    yield pool
    await pool.close()


async def set_county_clocks(stack: Stack, now: str) -> None:
    """Every service's test clock, moved by the county's admin (a county has no town-less admin)."""
    for name in stack.services:
        response = await Api(stack, name).call("POST", "/v1/admin/clock", as_=COUNTY_ADMIN, json={"now": now})
        assert response.status_code == 200, response.text


def sequence(ticket: dict[str, Any]) -> int:
    return int(ticket["ticket_no"].rsplit("-", 1)[1])


async def test_each_town_numbers_its_own_tickets_with_its_own_code(
        county_stack: Stack, county: Api, county_bootstrap: str) -> None:
    await set_county_clocks(county_stack, "2027-03-15T09:00:00+08:00")
    qinghe, bailu = county.of_town(QINGHE), county.of_town(BAILU)
    q1, b1, q2, b2 = [await file_matter(api, item_code="S001") for api in (qinghe, bailu, qinghe, bailu)]
    assert q1["ticket_no"].startswith("321003104-20270315-") and b1["ticket_no"].startswith("321003107-20270315-")
    # Filed in turn, yet each town's sequence has no gap (whatever other tests filed that day before).
    assert (sequence(q2), sequence(b2)) == (sequence(q1) + 1, sequence(b1) + 1)

    for api, ticket, town in ((qinghe, q1, QINGHE), (bailu, b1, BAILU)):
        view = (await api.call("GET", f"/v1/requests/{ticket['ticket_no']}", as_=CLERK)).json()
        assert (view["town_code"], view["item_code"], view["item_name"]) == (town, "S001", "新生儿落户")
        assert view["citizen"]["name"] == "测试群众"
        record = await wait_for_record(county_bootstrap, "intake.request.filed.v1", about(ticket["request_id"]))
        assert event_of(record)["town_code"] == town


async def test_a_towns_staff_read_only_their_town_and_county_roles_read_every_town(
        county_stack: Stack, county: Api) -> None:
    await set_county_clocks(county_stack, "2027-03-16T09:00:00+08:00")
    qinghe, bailu = county.of_town(QINGHE), county.of_town(BAILU)
    mine, theirs = await file_matter(qinghe), await file_matter(bailu)
    path = f"/v1/requests/{theirs['ticket_no']}"

    assert (await qinghe.call("GET", path, as_=CLERK)).status_code == 404  # as if it did not exist
    assert (await qinghe.call("GET", path, as_=("s030", "command_centre"))).status_code == 404
    with_code = await qinghe.call("GET", path, as_=CLERK, params={"code": theirs["access_code"]})
    assert with_code.status_code == 200 and "citizen" not in with_code.json()  # the citizen's view
    citizen = await county.call("GET", path, params={"code": theirs["access_code"]})  # no token: any town
    assert citizen.status_code == 200 and citizen.json()["town_code"] == BAILU
    assert (await qinghe.call("GET", f"/v1/requests/{mine['ticket_no']}", as_=CLERK)).json()["citizen"]

    for ticket in (mine, theirs):  # a county department reads every town, never personal data
        view = await county.call("GET", f"/v1/requests/{ticket['ticket_no']}", as_=COUNTY_READER)
        assert view.status_code == 200, view.text
        assert view.json()["ticket_no"] == ticket["ticket_no"] and "citizen" not in view.json()
        assert "测试群众" not in view.text
    admin_view = await county.call("GET", path, as_=COUNTY_ADMIN)
    assert admin_view.status_code == 200 and admin_view.json()["citizen"]["name"] == "测试群众"
    assert (await county.call("GET", f"/v1/requests/{QINGHE}-20270316-99999",
                              as_=COUNTY_READER)).status_code == 404


async def test_the_county_admin_files_in_the_town_it_names(county_stack: Stack, county: Api) -> None:
    await set_county_clocks(county_stack, "2027-03-17T09:00:00+08:00")
    filed = await county.call("POST", "/v1/requests", as_=COUNTY_ADMIN,
                              json=filing(town_code=SHIQIAO, village="V07", location="石桥社区"))
    assert filed.status_code == 201, filed.text
    assert filed.json()["ticket_no"].startswith(f"{SHIQIAO}-20270317-")
    view = (await county.call("GET", f"/v1/requests/{filed.json()['ticket_no']}", as_=COUNTY_ADMIN)).json()
    assert view["town_code"] == SHIQIAO and view["village"] == "V07"

    unnamed = await county.call("POST", "/v1/requests", as_=COUNTY_ADMIN, json=filing())
    assert unnamed.status_code == 422, unnamed.text
    assert (unnamed.json()["code"], unnamed.json()["field"]) == ("town.required", "town_code")
    assert SHIQIAO in unnamed.json()["params"]["towns"]  # it says which towns there are
    stray = await county.call("POST", "/v1/requests", as_=COUNTY_ADMIN, json=filing(town_code="321003199"))
    assert stray.status_code == 404, stray.text  # not a town of the county
    assert (stray.json()["code"], stray.json()["field"]) == ("town.not_served", "town_code")
    not_served = await county.of_town("321003199").call("POST", "/v1/requests", as_=CLERK, json=filing())
    assert not_served.status_code == 404 and not_served.json()["code"] == "town.not_served"  # the token's town

    qinghe = county.of_town(QINGHE)
    other = await qinghe.call("POST", "/v1/requests", as_=CLERK, json=filing(town_code=BAILU))
    assert other.status_code == 403 and other.json()["code"] == "town.not_yours"
    assert (await qinghe.call("POST", "/v1/requests", as_=CLERK, json=filing(town_code=QINGHE))).status_code == 201
    assert (await county.call("POST", "/v1/requests", as_=COUNTY_READER,
                              json=filing(town_code=QINGHE))).status_code == 403  # reads, never files


async def test_a_filing_is_checked_against_its_towns_catalog_villages_and_proxy_agents(county: Api) -> None:
    qinghe, bailu = county.of_town(QINGHE), county.of_town(BAILU)

    async def refused_field(api: Api, **overrides: Any) -> str:
        response = await api.call("POST", "/v1/requests", as_=CLERK, json=filing(**overrides))
        assert response.status_code == 409, response.text  # as documented, but not the town's
        return f'{response.json()["field"]} {response.json()["code"]}'

    assert (await file_matter(bailu, item_code="T101"))["ticket_no"].startswith(BAILU)  # 白鹭镇's own item
    assert await refused_field(qinghe, item_code="T101") == "item_code item.unknown"
    assert (await file_matter(qinghe, village="V06"))["ticket_no"].startswith(QINGHE)
    assert await refused_field(bailu, village="V06") == "village filing.village_unknown"  # 白鹭镇 has five villages
    assert await refused_field(bailu, channel="proxy", proxy_agent_id="s035") == (  # 青禾镇's
        "proxy_agent_id filing.proxy_agent_unknown")
    assert (await file_matter(bailu, channel="proxy", proxy_agent_id="s029"))["ticket_no"].startswith(BAILU)


async def test_the_catalog_is_the_callers_towns_and_county_roles_name_the_town(county: Api) -> None:
    qinghe = county.of_town(QINGHE)
    own = (await qinghe.call("GET", "/v1/catalog", as_=CLERK)).json()
    assert "S001" in {i["code"] for i in own} and "T101" not in {i["code"] for i in own}
    bailu = await county.call("GET", "/v1/catalog", as_=COUNTY_READER, params={"town": BAILU})
    assert bailu.status_code == 200 and "T101" in {i["code"] for i in bailu.json()}
    unnamed = await county.call("GET", "/v1/catalog", as_=COUNTY_READER)
    assert unnamed.status_code == 422, unnamed.text
    assert (unnamed.json()["code"], unnamed.json()["field"]) == ("town.required", "town")
    stray = await county.call("GET", "/v1/catalog", as_=COUNTY_READER, params={"town": "321003199"})
    assert stray.status_code == 404, stray.text
    assert (stray.json()["code"], stray.json()["field"]) == ("town.not_served", "town")
    other = await qinghe.call("GET", "/v1/catalog", as_=CLERK, params={"town": BAILU})
    assert other.status_code == 404 and other.json()["code"] == "town.not_found"


async def test_the_repeat_rule_and_idempotency_keys_hold_within_a_town(county_stack: Stack, county: Api) -> None:
    await set_county_clocks(county_stack, "2027-03-18T09:00:00+08:00")
    qinghe, bailu = county.of_town(QINGHE), county.of_town(BAILU)
    citizen = {"name": "两镇来访", "id_number": f"3210031992{uuid.uuid4().int % 10**7:07d}X"}
    colours = [(await file_matter(api, item_code="S007", citizen=citizen))["colour"]
               for api in (qinghe, qinghe, bailu, qinghe)]
    assert colours == ["yellow", "yellow", "yellow", "orange"]  # 白鹭镇's is its first there

    # s010 is a clerk in both towns: two people, so one key is two filings.
    key, body = {"Idempotency-Key": f"county-{uuid.uuid4()}"}, filing()
    first, other, again = [await api.call("POST", "/v1/requests", as_=CLERK, json=body, headers=key)
                           for api in (qinghe, bailu, qinghe)]
    assert first.status_code == other.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert other.json()["ticket_no"].startswith(BAILU) and other.json()["request_id"] != first.json()["request_id"]
    admin = await county.call("POST", "/v1/requests", as_=COUNTY_ADMIN, headers=key,
                              json={**body, "town_code": QINGHE})
    assert admin.status_code == 201 and admin.json()["request_id"] not in (first.json()["request_id"],
                                                                           other.json()["request_id"])


async def test_the_handlers_take_the_town_from_the_event(
        county_stack: Stack, county: Api, county_bootstrap: str, intake_db: asyncpg.Pool) -> None:
    await set_county_clocks(county_stack, "2027-03-19T09:00:00+08:00")
    ticket = await file_matter(county.of_town(BAILU), item_code="S001")
    request_id, now = ticket["request_id"], datetime.fromisoformat("2027-03-19T10:00:00+08:00")

    def accepted(town: str) -> events.TaskAccepted:
        return new_event(events.TaskAccepted, events.TaskAcceptedData(
            task_id=str(uuid.uuid4()), request_id=request_id, by="s013", accepted_at=now),
            source="dispatch", town_code=town, subject=request_id, correlation_id=request_id, time=now)

    wrong_town, unknown_town = accepted(QINGHE), accepted("321003199")
    completed = new_event(events.TaskCompleted, events.TaskCompletedData(
        task_id=str(uuid.uuid4()), request_id=request_id, by="s013", resolution="已落户",
        completed_at=now + timedelta(minutes=5), on_time=True),
        source="dispatch", town_code=BAILU, subject=request_id, correlation_id=request_id, time=now)
    for event in (wrong_town, unknown_town, completed):
        await produce(county_bootstrap, event.topic, event.model_dump_json().encode(), key=request_id.encode(),
                      headers=[("content-type", b"application/json")])

    async def dead_letter() -> dict[str, bytes] | None:
        for record in await read_all(county_bootstrap, events.TaskAccepted.topic + ".dlq"):
            headers = dict(record.headers)
            if headers.get("x-dlq-service") == b"intake" and str(unknown_town.id).encode() in record.value:
                return headers
        return None

    headers = await eventually(dead_letter, what="the event of a town the county does not have, dead-lettered")
    assert b"321003199" in headers["x-dlq-error"]
    await eventually(lambda: intake_db.fetchval("SELECT count(*) = 2 FROM inbox WHERE event_id = ANY($1)",
                                                [wrong_town.id, completed.id]), what="both events handled")
    code = {"code": ticket["access_code"]}
    view = (await county.call("GET", f"/v1/requests/{ticket['ticket_no']}", params=code)).json()
    assert view["status"] == "completed"
    assert "accepted" not in [s["step"] for s in view["timeline"]]  # 青禾镇's event steps no 白鹭镇 matter

    rated = await county.call("POST", f"/v1/requests/{ticket['ticket_no']}/rating", params=code,
                              json={"rating": "satisfied"})
    assert rated.status_code == 200, rated.text
    record = await wait_for_record(county_bootstrap, events.RequestRated.topic, about(request_id))
    assert event_of(record)["town_code"] == BAILU


async def test_each_towns_sequence_and_repeat_rule_hold_across_two_intake_replicas(
        county_stack: Stack, county: Api) -> None:
    """Filings of two towns, mixed in the batches of two replicas: each town's numbers stay gap-free
    and its repeat rule counts only its own filings (the day rows are locked in one order)."""
    await set_county_clocks(county_stack, "2027-03-22T09:00:00+08:00")
    port = free_port()
    second = ServiceProcess("intake", port, county_stack.service_env("intake") | {"TOWNFLOW_HTTP_PORT": str(port)},
                            county_stack.workdir / "logs" / "intake-county-2.log")
    await asyncio.to_thread(second.start)
    try:
        replicas = [county.url, second.url]
        clock = {"Authorization": f"Bearer {county.token(*COUNTY_ADMIN)}"}
        citizen = {"name": "两镇多次", "id_number": f"3210031993{uuid.uuid4().int % 10**7:07d}X"}
        async with http_client(timeout=30) as client:
            moved = await client.post(f"{second.url}/v1/admin/clock", headers=clock,
                                      json={"now": "2027-03-22T09:00:00+08:00"})
            assert moved.status_code == 200, moved.text

            def post(n: int) -> Any:
                town = (QINGHE, BAILU)[n % 2]
                if n % 3 == 0:  # the county's admin, naming the town
                    as_, body = COUNTY_ADMIN, filing(item_code="S007", citizen=citizen, town_code=town)
                else:
                    as_, body = CLERK, filing(item_code="S007", citizen=citizen)
                token = county.of_town(None if n % 3 == 0 else town).token(*as_)
                return client.post(f"{replicas[n // 2 % 2]}/v1/requests", json=body,
                                   headers={"Authorization": f"Bearer {token}"})

            responses = await asyncio.gather(*(post(n) for n in range(24)))
    finally:
        await asyncio.to_thread(second.stop)
    assert [r.status_code for r in responses] == [201] * 24, [r.text for r in responses]
    for town in (QINGHE, BAILU):
        filed = [r.json() for r in responses if r.json()["ticket_no"].startswith(town)]
        assert len(filed) == 12
        numbers = sorted(sequence(f) for f in filed)
        assert numbers == list(range(numbers[0], numbers[0] + 12))  # gap-free, whatever was filed before
        assert sorted(f["colour"] for f in filed) == ["orange"] * 10 + ["yellow"] * 2
