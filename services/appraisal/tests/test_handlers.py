"""Appraisal's event handlers are handed the service's deps: the town from the event by the shared
scope (poison for a town not served), the facts into the transaction's batch. No I/O: the batch
is opened for a stand-in connection and never applied."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from appraisal import handlers
from appraisal.facts import FactBatch
from appraisal.flows import Deps
from townflow_shared.county import load_county
from townflow_shared.dlq import Rejected
from townflow_shared.events import (
    RequestFiled,
    RequestFiledData,
    TaskCompleted,
    TaskCompletedData,
    TaskReturned,
    TaskReturnedData,
    new_event,
)
from townflow_shared.settings import DEMO_TOWN_DIR

from .fakes import FakeUnits, deps

COUNTY = load_county(DEMO_TOWN_DIR)
QINGHE, NOT_SERVED = "321003104", "321003999"
AT = datetime(2028, 8, 3, 2, tzinfo=UTC)
CONN: Any = object()  # a consumer transaction's connection, as the batches know it


def with_open_batch() -> tuple[Deps, FactBatch]:
    """Deps whose batches hold an open batch for CONN, as Batches.scope opens one (whose exit
    would apply it to the database)."""
    d = deps(COUNTY, FakeUnits())
    batch = FactBatch()
    d.batches._open[CONN] = batch
    return d, batch


def completed(town_code: str) -> Any:
    return new_event(TaskCompleted, TaskCompletedData(task_id="t1", request_id="r1", by="s014", resolution="办结",
                                                      completed_at=AT, on_time=True),
                     source="dispatch", town_code=town_code, subject="r1", correlation_id="r1", time=AT)


def test_every_handler_is_listed_once_under_its_own_name() -> None:
    names = [handler.__name__ for _, handler in handlers.HANDLERS]
    assert len(names) == len(set(names)) == len({t for t, _ in handlers.HANDLERS}) == 15


async def test_an_event_of_a_town_not_served_is_poison() -> None:
    d, batch = with_open_batch()
    with pytest.raises(Rejected, match=f"town {NOT_SERVED} is not served by this deployment"):
        await handlers.task_completed(CONN, completed(NOT_SERVED), d)
    returned: Any = new_event(TaskReturned, TaskReturnedData(task_id="t1", request_id="r1", by="s014", reason="x",
                                                             returned_at=AT),
                              source="dispatch", town_code=NOT_SERVED, subject="r1", correlation_id="r1", time=AT)
    with pytest.raises(Rejected):
        await handlers.task_returned(CONN, returned, d)
    assert batch == FactBatch()  # nothing of it reached the batch


async def test_a_completion_goes_into_its_transactions_batch() -> None:
    d, batch = with_open_batch()
    event = completed(QINGHE)
    await handlers.task_completed(CONN, event, d)
    assert [c.event.id for c in batch.task_causes[(QINGHE, "t1")]] == [event.id]
    assert batch.task_events[(QINGHE, "t1")].request_id == "r1"


def filed(point: bool, filed_at: datetime = AT) -> Any:
    data = RequestFiledData.model_validate({
        "request_id": "r1", "ticket_no": f"{QINGHE}-20280803-00001", "channel": "window", "item_code": "T001",
        "colour": "yellow", "description": "路面破损", "village": "V01", "location": "村道", "citizen_ref": "0" * 64,
        "filed_at": filed_at, **({"point": {"longitude": 119.305, "latitude": 32.42},
                                  "grid_cell": "321003104001001"} if point else {})})
    return new_event(RequestFiled, data, source="intake", town_code=QINGHE, subject="r1", correlation_id="r1",
                     time=filed_at)


async def test_a_located_filing_is_counted_in_its_cell_in_the_towns_month() -> None:
    d, batch = with_open_batch()
    await handlers.request_filed(CONN, filed(point=True, filed_at=datetime(2028, 7, 31, 17, tzinfo=UTC)), d)
    # 01:00 on 1 August in the town's time zone: August's, not July's.
    assert batch.located == {(QINGHE, "r1"): ("2028-08", "321003104001001", "T001")}
    d, batch = with_open_batch()
    await handlers.request_filed(CONN, filed(point=False), d)
    assert batch.located == {} and (QINGHE, "r1") in batch.filed
