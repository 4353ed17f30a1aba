"""No citizen's name, phone or id number on any topic (SPEC §6): the test files matters that carry
all three, in their fields and typed into the free text, and scans every record of those matters
on every topic — its own records only, so it holds whatever ran before or after it. (What a
benchmark leaves on the topics is scanned whole by bench/privacy.py.)"""

from __future__ import annotations

import json
import re

import asyncpg
from aiokafka import ConsumerRecord

from townflow_shared.events import TOPICS

from .conftest import CLERK, Api, file_matter, task_of
from .kafka_tools import about, event_of, read_all, wait_for_record

PHONE = re.compile(rb"(?<![0-9.])1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}(?![0-9])")
ID_NUMBER = re.compile(rb"(?<![0-9.])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
NAME = "测试群众"  # the citizen of every matter filed here
# Ids and hashes are hex and may hold digit runs that look like phones: drop them before scanning.
IDS = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,}")


def _of_matters(record: ConsumerRecord, request_ids: set[str]) -> bool:
    """Whether a record is one of these matters' events (its correlation, or the matter it names)."""
    try:
        event = json.loads(record.value)
        return event.get("correlation_id") in request_ids or event["data"].get("request_id") in request_ids
    except (ValueError, KeyError, AttributeError, TypeError):
        return False


async def test_no_personal_data_on_any_topic(intake: Api, dispatch: Api, bootstrap: str) -> None:
    ours: set[str] = set()
    for n in range(3):  # matters of our own, with a name, a phone and an id number each
        ticket = await file_matter(intake, citizen={"name": NAME, "phone": f"1391234567{n}",
                                                    "id_number": f"32100319880808123{n}"},
                                   # and typed into the free text too, as clerks do
                                   description=f"请回电 139 1234 567{n}，身份证32100319880808123{n}",
                                   location=f"青禾村五组，联系人电话1381234567{n}")
        ours.add(ticket["request_id"])
        await task_of(dispatch, ticket["request_id"])
        filed = event_of(await wait_for_record(bootstrap, "intake.request.filed.v1", about(ticket["request_id"])))
        assert filed["data"]["description"] == f"请回电 139****567{n}，身份证321***********123{n}"
        assert filed["data"]["location"] == f"青禾村五组，联系人电话138****567{n}"
        whole = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}", as_=CLERK)).json()
        assert whole["description"] == f"请回电 139 1234 567{n}，身份证32100319880808123{n}"  # kept in intake
    scanned = 0
    for topic in TOPICS:
        for record in await read_all(bootstrap, topic):
            if not _of_matters(record, ours):
                continue
            scanned += 1
            value = IDS.sub(b"", record.value or b"")
            assert not PHONE.search(value), (topic, record.offset)
            assert not ID_NUMBER.search(value), (topic, record.offset)
            text = value.decode(errors="replace")
            assert NAME not in text, (topic, record.offset)
    assert scanned >= 6  # our three filings and their dispatches at least


async def test_intake_keeps_the_citizen_sealed_and_its_clerk_reads_it(
        intake: Api, databases: dict[str, asyncpg.Pool]) -> None:
    """Issue #28 item 7 through the whole service (its keys from the stack): the row a filing leaves
    holds no name, phone or id number; a clerk's status read opens them."""
    phone, id_number = "139 8765 4321", "32100319880808765X"
    ticket = await file_matter(intake, citizen={"name": NAME, "phone": phone, "id_number": id_number})
    row = await databases["intake"].fetchval(
        "SELECT r::text || c::text FROM requests r JOIN request_citizens c USING (request_id) WHERE ticket_no = $1",
        ticket["ticket_no"])
    for secret in (NAME, phone, "13987654321", id_number, "8765X"):
        assert secret not in row
    assert "v1:stack-1:aes-256-gcm:" in row
    whole = (await intake.call("GET", f"/v1/requests/{ticket['ticket_no']}", as_=CLERK)).json()
    assert whole["citizen"] == {"name": NAME, "phone": phone, "id_number": id_number}
