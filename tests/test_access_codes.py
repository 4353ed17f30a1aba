"""A citizen's access code (SPEC §6.1): guessing limited per ticket and address, across restarts; malformed
codes are 4xx; compared in constant time (rules unit tests)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from devstack.stack import Stack

from .conftest import ADMIN, CLERK, Api, file_matter


def _wrong(code: str) -> str:
    """Another well-formed code."""
    return ("2" if code[0] != "2" else "3") + code[1:]


async def test_the_eleventh_wrong_code_is_a_429_for_status_and_rating_alike_and_survives_a_restart(
        stack: Stack, intake: Api) -> None:
    now = datetime.now(UTC).isoformat()  # a restarted intake reads the real clock: start from it
    assert (await intake.call("POST", "/v1/admin/clock", as_=ADMIN, json={"now": now})).status_code == 200
    ticket = await file_matter(intake)
    status = f"/v1/requests/{ticket['ticket_no']}"
    right, wrong = {"code": ticket["access_code"]}, {"code": _wrong(ticket["access_code"])}
    assert (await intake.call("GET", status, params=right)).status_code == 200  # a right code costs nothing

    answers = [(await intake.call("GET", status, params=wrong)).status_code for _ in range(10)]
    assert answers == [404] * 10
    eleventh = await intake.call("GET", status, params=wrong)
    assert eleventh.status_code == 429, eleventh.text
    assert 0 < int(eleventh.headers["Retry-After"]) <= 3600
    assert eleventh.json()["code"] == "ticket.too_many_wrong_codes"
    assert eleventh.json()["params"]["retry_after"] == int(eleventh.headers["Retry-After"])
    assert (await intake.call("GET", status, params=right)).status_code == 429  # even the right one
    rating = await intake.call("POST", f"{status}/rating", params=right, json={"rating": "unsatisfied"})
    assert rating.status_code == 429 and rating.json()["code"] == "ticket.too_many_wrong_codes"
    assert (await intake.call("GET", status, as_=CLERK)).status_code == 200  # staff are not guessing

    process = stack.services["intake"]
    await asyncio.to_thread(process.stop)
    await asyncio.to_thread(process.start)
    assert (await intake.call("GET", status, params=right)).status_code == 429  # the count survived

    moved = await intake.call("POST", "/v1/admin/clock", as_=ADMIN, json={"advance": "PT1H1M"})
    assert moved.status_code == 200
    assert (await intake.call("GET", status, params=right)).status_code == 200  # an hour later


async def test_wrong_codes_on_a_ticket_that_does_not_exist_are_limited_the_same_way(intake: Api) -> None:
    status = "/v1/requests/321003104-20991231-99999"
    answers = [(await intake.call("GET", status, params={"code": "ABC234"})).json()["code"] for _ in range(11)]
    # Nothing tells a guessed ticket number from a real one.
    assert answers == ["ticket.not_found"] * 10 + ["ticket.too_many_wrong_codes"]


async def test_a_malformed_code_is_a_422_naming_the_code_never_a_5xx(intake: Api) -> None:
    ticket = await file_matter(intake)
    status = f"/v1/requests/{ticket['ticket_no']}"
    for code in ("É", "", "AB", "ABCDE0", "ABC 23"):
        for method, path, body in (("GET", status, None), ("POST", f"{status}/rating", {"rating": "satisfied"})):
            response = await intake.call(method, path, params={"code": code}, json=body)
            assert response.status_code == 422, (code, method, response.text)
            assert (response.json()["code"], response.json()["field"]) == ("ticket.code_malformed", "code")
