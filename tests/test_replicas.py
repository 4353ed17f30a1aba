"""Two replicas of a service on the real stack (SPEC §6.1): the repeat rule and gap-free tickets
across intake replicas, wrong access codes counted across them. (Consumer lag summed over dispatch's
replicas: tests/test_database_incidents.py, on its stack of two replicas of every service.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from devstack.processes import free_port
from devstack.stack import ServiceProcess, Stack

from .conftest import ADMIN, CLERK, Api, file_matter, filing, http_client


@contextlib.asynccontextmanager
async def another_replica(stack: Stack, name: str) -> AsyncIterator[Api]:
    """A second replica of `name` (same database, same consumer group), its test clock at the
    first replica's moment; stopped afterwards."""
    port = free_port()
    process = ServiceProcess(name, port, stack.service_env(name) | {"TOWNFLOW_HTTP_PORT": str(port)},
                             stack.workdir / "logs" / f"{name}-2.log")
    await asyncio.to_thread(process.start)
    try:
        first, second = Api(stack, name), _Replica(stack, name, process)
        now = (await first.call("POST", "/v1/admin/clock", as_=ADMIN, json={"advance": "PT0S"})).json()["now"]
        assert (await second.call("POST", "/v1/admin/clock", as_=ADMIN, json={"now": now})).status_code == 200
        yield second
    finally:
        await asyncio.to_thread(process.stop)


class _Replica(Api):
    def __init__(self, stack: Stack, service: str, process: ServiceProcess) -> None:
        super().__init__(stack, service)
        self.process = process

    @property
    def url(self) -> str:
        return self.process.url


async def test_the_repeat_rule_and_gap_free_tickets_hold_across_intake_replicas(stack: Stack, intake: Api) -> None:
    async with another_replica(stack, "intake") as second:
        body = filing()  # one citizen, one item: from the 3rd filing on, one colour level up
        token = {"Authorization": f"Bearer {intake.token(*CLERK)}"}
        async with http_client(timeout=30) as client:
            responses = await asyncio.gather(*(
                client.post(f"{(intake if n % 2 else second).url}/v1/requests", json=body, headers=token)
                for n in range(10)))
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    filed = [r.json() for r in responses]
    assert sorted(f["colour"] for f in filed) == ["orange"] * 8 + ["yellow"] * 2
    sequences = sorted(int(f["ticket_no"].rsplit("-", 1)[1]) for f in filed)
    assert sequences == list(range(sequences[0], sequences[0] + 10))


async def test_wrong_access_codes_are_counted_across_intake_replicas(stack: Stack, intake: Api) -> None:
    ticket = await file_matter(intake)
    status = f"/v1/requests/{ticket['ticket_no']}"
    wrong = {"code": ("2" if ticket["access_code"][0] != "2" else "3") + ticket["access_code"][1:]}
    async with another_replica(stack, "intake") as second:
        answers = [(await (intake if n % 2 else second).call("GET", status, params=wrong)).status_code
                   for n in range(10)]
        assert answers == [404] * 10  # five wrong codes on each replica
        for replica in (intake, second):  # the eleventh is refused on both
            assert (await replica.call("GET", status, params={"code": ticket["access_code"]})).status_code == 429
