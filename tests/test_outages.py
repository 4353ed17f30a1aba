"""Outages are waited out, never dead-lettered (SPEC §6.1): a service's database made read-only
the way a managed PostgreSQL's failover does it, on the session's real stack."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from devstack.stack import Stack

from .conftest import CLERK, Api, eventually, file_matter, filing, http_client, task_of
from .kafka_tools import read_all

FILED = "intake.request.filed.v1"


@contextlib.asynccontextmanager
async def read_only(stack: Stack, database: str) -> AsyncIterator[None]:
    """Every new transaction of `database` read-only and its sessions ended, as in a failover;
    afterwards writable again and its sessions ended once more (a new primary: new connections)."""
    assert stack.postgres is not None
    admin = await asyncpg.connect(stack.postgres.dsn("postgres"))

    async def end_sessions() -> None:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1 AND pid <> pg_backend_pid()", database)

    try:
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        await end_sessions()
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        await end_sessions()
        await admin.close()


async def _ready(api: Api) -> tuple[int, dict[str, object]]:
    response = await api.call("GET", "/readyz")
    return response.status_code, response.json()


async def _retries(api: Api) -> float:
    metrics = (await api.call("GET", "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("townflow_consumer_retries_total{"))


async def test_a_read_only_database_is_waited_out_and_nothing_is_dead_lettered(
        stack: Stack, intake: Api, dispatch: Api, bootstrap: str) -> None:
    retries_before = await _retries(dispatch)
    async with read_only(stack, "dispatch"):
        ticket = await file_matter(intake)

        async def retrying() -> dict[str, object] | None:
            status, body = await _ready(dispatch)
            checks = body["checks"]
            assert isinstance(checks, dict)
            return body if status == 503 and str(checks["consumer"]).startswith("retrying") else None

        body = await eventually(retrying, what="dispatch to say it is retrying")
        assert "ReadOnlySQLTransactionError" in str(body["checks"]), body  # type: ignore[index]
        assert body["checks"]["database"] == "read-only"  # type: ignore[index]
        assert await _retries(dispatch) > retries_before

    task = await task_of(dispatch, ticket["request_id"])
    assert task["request_id"] == ticket["request_id"]
    response = await dispatch.call("GET", "/v1/tasks", as_=("s030", "command_centre"),
                                   params={"request_id": ticket["request_id"]})
    assert len(response.json()) == 1  # retried, and still one task

    async def ready_again() -> dict[str, object] | None:
        status, body = await _ready(dispatch)
        return body if status == 200 else None

    body = await eventually(ready_again, what="dispatch ready again")
    assert body["checks"] == {"database": "ok", "kafka": "ok", "consumer": "ok"}, body
    dead = [r for r in await read_all(bootstrap, FILED + ".dlq") if ticket["request_id"].encode() in r.value]
    assert dead == []


async def test_a_filing_while_intakes_database_is_read_only_is_a_503_to_try_again(
        stack: Stack, intake: Api) -> None:
    async with read_only(stack, "intake"), http_client(base_url=intake.url, timeout=20) as client:
        response = await client.post("/v1/requests", json=filing(),
                                     headers={"Authorization": f"Bearer {intake.token(*CLERK)}"})
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"].isdigit()
    assert "database" in response.json()["detail"]
    # Filed once the database is back, by a client that does as told and tries again: a pooled
    # connection whose end (the failover's) the service has not yet read may answer one more 503.
    body = filing()

    async def filed() -> bool:
        answer = await intake.call("POST", "/v1/requests", as_=CLERK, json=body)
        assert answer.status_code in (201, 503), answer.text
        return answer.status_code == 201

    await eventually(filed, timeout=15, what="a filing accepted after the failover")
