"""Platform foundation on the real stack: envelope and key, idempotency, the outbox surviving a
kill, dead letters, and exactly-once effects under redelivery."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from devstack.stack import Stack
from townflow_shared import db
from townflow_shared.events import RequestFiled, RequestFiledData, new_event
from townflow_shared.outbox import enqueue, one_insert_per_transaction

from .conftest import ADMIN, CLERK, Api, eventually, filing, http_client
from .kafka_tools import about, event_of, produce, produce_together, read_all, wait_for_record

FILED = "intake.request.filed.v1"


async def test_filed_event_carries_the_envelope_and_is_keyed_by_request(
        intake: Api, bootstrap: str) -> None:
    body = filing()
    response = await intake.call("POST", "/v1/requests", as_=CLERK, json=body)
    assert response.status_code == 201, response.text
    filed = response.json()

    record = await wait_for_record(bootstrap, FILED, about(filed["request_id"]))
    event = event_of(record)
    assert record.key == filed["request_id"].encode()
    assert dict(record.headers)["content-type"] == b"application/json"
    assert "traceparent" in dict(record.headers)
    assert set(event) == {"id", "type", "version", "source", "time", "town_code", "subject",
                          "correlation_id", "causation_id", "data"}
    assert event["type"] == "intake.request.filed"
    assert event["version"] == 1
    assert event["source"] == "intake"
    assert event["town_code"] == "321003104"
    assert event["subject"] == event["correlation_id"] == filed["request_id"]
    assert event["data"]["ticket_no"] == filed["ticket_no"]
    assert datetime.fromisoformat(event["time"]).tzinfo is not None
    # The citizen is a reference, never a name or a phone.
    raw = record.value.decode()
    assert "测试群众" not in raw and body["citizen"]["phone"] not in raw
    assert len(event["data"]["citizen_ref"]) == 64


async def test_idempotency_key_retry_returns_first_answer_and_publishes_nothing_new(
        intake: Api, bootstrap: str) -> None:
    key = f"retry-{uuid.uuid4()}"
    body = filing()
    first = await intake.call("POST", "/v1/requests", as_=CLERK, json=body,
                              headers={"Idempotency-Key": key})
    second = await intake.call("POST", "/v1/requests", as_=CLERK, json=body,
                               headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()

    # A later filing is published after anything the retry could have written (the relay keeps
    # outbox order), so once it is on the topic, a duplicate would be there too.
    sentinel = (await intake.call("POST", "/v1/requests", as_=CLERK, json=filing())).json()
    await wait_for_record(bootstrap, FILED, about(sentinel["request_id"]))
    records = [r for r in await read_all(bootstrap, FILED) if about(first.json()["request_id"])(r)]
    assert len(records) == 1

    reused = await intake.call("POST", "/v1/requests", as_=CLERK,
                               json={**body, "description": "另一件事"}, headers={"Idempotency-Key": key})
    assert reused.status_code == 409
    assert (reused.json()["code"], reused.json()["field"]) == ("idempotency.key_reused", "Idempotency-Key")


async def test_event_committed_before_a_kill_is_published_after_restart(
        stack: Stack, intake: Api, bootstrap: str, databases: dict[str, asyncpg.Pool]) -> None:
    process = stack.services["intake"]
    process.stop()
    # Relay off: the process commits the request and its outbox row and cannot publish, so it
    # is held exactly in the window between commit and publish when we kill it.
    process.start(outbox_relay="false")
    try:
        filed = (await intake.call("POST", "/v1/requests", as_=CLERK, json=filing())).json()
        pending = await databases["intake"].fetchval(
            "SELECT count(*) FROM outbox WHERE key = $1", filed["request_id"])
        assert pending == 1
        assert not [r for r in await read_all(bootstrap, FILED) if about(filed["request_id"])(r)]
    finally:
        process.kill()
    process.start()
    record = await wait_for_record(bootstrap, FILED, about(filed["request_id"]))
    assert event_of(record)["data"]["ticket_no"] == filed["ticket_no"]
    await eventually(lambda: databases["dispatch"].fetchval(
        "SELECT true FROM matters WHERE request_id = $1", uuid.UUID(filed["request_id"])),
        what="dispatch to record the matter")


def _good_event(item_code: str = "S002") -> RequestFiled:
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    return new_event(
        RequestFiled,
        RequestFiledData(request_id=request_id, ticket_no=f"321003104-20261123-{uuid.uuid4().int % 99999:05d}",
                         channel="hotline", item_code=item_code, colour="yellow",
                         description="test", village="V02", location="东湖村", citizen_ref="0" * 64,
                         filed_at=now),
        source="intake", town_code="321003104", subject=request_id, correlation_id=request_id,
        time=now)


async def test_malformed_and_invalid_messages_go_to_dlq_and_the_next_good_one_is_handled(
        stack: Stack, bootstrap: str, databases: dict[str, asyncpg.Pool]) -> None:
    garbage = f"{{not json {uuid.uuid4()}".encode()
    invalid = json.dumps({"id": str(uuid.uuid4()), "type": "intake.request.filed", "version": 1,
                          "source": "intake", "time": datetime.now(UTC).isoformat(),
                          "town_code": "321003104", "subject": "x", "correlation_id": "x",
                          "data": {"request_id": "x"}}).encode()
    good = _good_event()
    key = good.key.encode()
    json_header = [("content-type", b"application/json")]
    await produce(bootstrap, FILED, garbage, key=key, headers=json_header)
    await produce(bootstrap, FILED, invalid, key=key, headers=json_header)
    await produce(bootstrap, FILED, good.model_dump_json().encode(), key=key, headers=json_header)

    await eventually(lambda: databases["dispatch"].fetchval(
        "SELECT true FROM matters WHERE request_id = $1", uuid.UUID(good.data.request_id)),
        what="the good event after the bad ones")
    # Every service that consumes the topic dead-letters what it cannot read; look at dispatch's.
    async def dead_lettered() -> dict[bytes, dict[str, bytes]] | None:
        dead = {r.value: dict(r.headers) for r in await read_all(bootstrap, FILED + ".dlq")
                if dict(r.headers).get("x-dlq-service") == b"dispatch"}
        return dead if garbage in dead and invalid in dead else None

    dead = await eventually(dead_lettered, what="both bad messages in the dead-letter topic")
    for value in (garbage, invalid):
        headers = dead[value]
        assert headers["x-dlq-service"] == b"dispatch"
        assert headers["x-dlq-topic"] == FILED.encode()
        assert int(headers["x-dlq-offset"]) >= 0 and int(headers["x-dlq-partition"]) >= 0
    assert b"JSON" in dead[garbage]["x-dlq-error"]
    async with http_client() as client:
        metrics = (await client.get(f"{stack.services['dispatch'].url}/metrics")).text
    assert any(line.startswith("townflow_dlq_messages_total{") and f'topic="{FILED}"' in line
               and float(line.rsplit(" ", 1)[1]) >= 2 for line in metrics.splitlines())
    assert b"data.ticket_no: Field required" in dead[invalid]["x-dlq-error"]


async def test_a_handler_rejecting_one_event_of_a_batch_dead_letters_only_that_one(
        bootstrap: str, databases: dict[str, asyncpg.Pool]) -> None:
    first, rejected, last = _good_event(), _good_event(item_code="X999"), _good_event()
    key = first.key.encode()  # one partition: the three arrive in one fetch, so in one batch
    await produce_together(bootstrap, FILED, [(key, e.model_dump_json().encode()) for e in (first, rejected, last)])
    db = databases["dispatch"]
    for good in (first, last):
        await eventually(lambda g=good: db.fetchval("SELECT true FROM matters WHERE request_id = $1",
                                                    uuid.UUID(g.data.request_id)), what="the good events")
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1)", [first.id, last.id]) == 2
    # The refused one is in the inbox too, so a redelivery does not dead-letter it a second time.
    assert await db.fetchval("SELECT true FROM inbox WHERE event_id = $1", rejected.id)
    assert not await db.fetchval("SELECT true FROM matters WHERE request_id = $1", uuid.UUID(rejected.data.request_id))

    async def dead_lettered() -> list[dict[str, bytes]]:
        return [dict(r.headers) for r in await read_all(bootstrap, FILED + ".dlq")
                if dict(r.headers).get("x-dlq-service") == b"dispatch" and str(rejected.id).encode() in r.value]

    dead = await eventually(dead_lettered, what="the rejected event in the dead-letter topic")
    assert len(dead) == 1
    assert dead[0]["x-dlq-error-type"] == b"UnknownItem" and b"X999" in dead[0]["x-dlq-error"]

    # Delivered again (a retry upstream, a rewound group): it is not dead-lettered a second time.
    sentinel = _good_event().model_copy(update={"correlation_id": first.correlation_id})
    await produce_together(bootstrap, FILED, [(key, rejected.model_dump_json().encode()),
                                              (key, sentinel.model_dump_json().encode())])
    await eventually(lambda: db.fetchval("SELECT true FROM matters WHERE request_id = $1",
                                         uuid.UUID(sentinel.data.request_id)), what="the event after the repeat")
    await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox"), what="dispatch's outbox published")
    assert len(await dead_lettered()) == 1


async def test_the_same_event_delivered_twice_changes_nothing(
        bootstrap: str, databases: dict[str, asyncpg.Pool]) -> None:
    event = _good_event()
    payload = event.model_dump_json().encode()
    for _ in range(2):
        await produce(bootstrap, FILED, payload, key=event.key.encode())
    # Same key, same partition: once the later sentinel is handled, both copies were too.
    sentinel = _good_event()
    sentinel = sentinel.model_copy(update={"correlation_id": event.correlation_id})
    await produce(bootstrap, FILED, sentinel.model_dump_json().encode(), key=event.key.encode())
    await eventually(lambda: databases["dispatch"].fetchval(
        "SELECT true FROM matters WHERE request_id = $1", uuid.UUID(sentinel.data.request_id)),
        what="the sentinel event")
    db = databases["dispatch"]
    assert await db.fetchval("SELECT count(*) FROM matters WHERE request_id = $1",
                             uuid.UUID(event.data.request_id)) == 1
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event.id) == 1


async def test_health_readiness_and_metrics_answer_without_a_token(stack: Stack) -> None:
    for name in stack.services:
        api = Api(stack, name)
        assert (await api.call("GET", "/healthz")).status_code == 200
        ready = await api.call("GET", "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "kafka": "ok", "consumer": "ok"}
        metrics = await api.call("GET", "/metrics")
        assert metrics.status_code == 200
        assert "townflow_http_requests_total" in metrics.text


async def test_an_idle_keep_alive_connection_outlasts_the_consoles_and_the_default_client_pools(stack: Stack) -> None:
    """A service keeps an idle connection longer than a client in front of it keeps one (httpx's
    default pool: 5 s; the console's: 15 s, below the services' 75: test_console_settings), so the
    client drops it first. Were the two equal (uvicorn's default is 5 s too), a request sent as the
    server closes it dies unread: a 502."""
    host, port = stack.services["dispatch"].url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))

    async def healthz() -> None:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # closed: IncompleteReadError
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)

    try:
        await healthz()
        await asyncio.sleep(5.5)  # idle past httpx's default pool expiry: the idle time is what is tested
        await healthz()  # on the same connection, still open
    finally:
        writer.close()


async def test_calls_without_a_valid_token_are_401_and_with_the_wrong_role_403(intake: Api) -> None:
    assert (await intake.call("POST", "/v1/requests", json=filing())).status_code == 401
    bad = await intake.call("POST", "/v1/requests", json=filing(),
                            headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401
    officer = await intake.call("POST", "/v1/requests", as_=("s026", "officer"), json=filing())
    assert officer.status_code == 403


async def test_test_clock_endpoint_moves_the_service_clock(intake: Api) -> None:
    moved = await intake.call("POST", "/v1/admin/clock", as_=ADMIN,
                              json={"now": "2026-02-13T10:00:00+08:00"})
    assert moved.status_code == 200, moved.text
    advanced = await intake.call("POST", "/v1/admin/clock", as_=ADMIN, json={"advance": "PT2H"})
    assert datetime.fromisoformat(advanced.json()["now"]) == datetime.fromisoformat("2026-02-13T12:00:00+08:00")
    filed = (await intake.call("POST", "/v1/requests", as_=CLERK, json=filing())).json()
    assert "-20260213-" in filed["ticket_no"]
    bad = await intake.call("POST", "/v1/admin/clock", as_=ADMIN, json={"advance": "two hours"})
    assert bad.status_code == 422


class _RollBack(Exception):
    pass


async def test_a_consumer_transaction_writes_its_events_in_one_insert_in_order(stack: Stack) -> None:
    events = [_good_event() for _ in range(3)]
    ids = [str(e.id).encode() for e in events]

    async def written(conn: asyncpg.Connection) -> list[bytes]:
        rows = await conn.fetch("SELECT payload FROM outbox ORDER BY id")
        return [i for row in rows for i in ids if i in bytes(row["payload"])]

    assert stack.postgres is not None
    pool = await db.create_pool(stack.postgres.dsn("dispatch"), 1, 1)  # with the services' JSON codecs
    with pytest.raises(_RollBack):  # nothing of this test is ever committed
        async with pool.acquire() as conn, conn.transaction():
            async with one_insert_per_transaction(conn):
                for event in events:
                    await enqueue(conn, event)
                assert await written(conn) == []  # held until the handlers are done
            assert await written(conn) == ids
            with pytest.raises(RuntimeError):
                async with one_insert_per_transaction(conn):
                    await enqueue(conn, _good_event())
                    raise RuntimeError("a handler failed")
            assert await written(conn) == ids  # a failed batch writes nothing
            raise _RollBack
    await pool.close()


async def test_a_nul_character_anywhere_in_a_request_is_a_422_naming_where(stack: Stack, intake: Api) -> None:
    """PostgreSQL text cannot hold U+0000: found by fuzzing as a 500 from GET /v1/inspections."""
    enforcement = Api(stack, "enforcement")
    response = await enforcement.call("GET", "/v1/inspections", as_=ADMIN, params={"status": "/\x00x", "limit": 5})
    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["field"]) == ("value.nul_character", "status")
    body = filing()
    body["citizen"]["name"] = "张\x00三"
    response = await intake.call("POST", "/v1/requests", as_=CLERK, json=body)
    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["field"]) == ("value.nul_character", "citizen.name")
    assert "NUL" in response.json()["detail"]
    ok = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(description="无\\u0000转义以外的内容"))
    assert ok.status_code == 201, ok.text  # the six characters \u0000 typed as text are fine
