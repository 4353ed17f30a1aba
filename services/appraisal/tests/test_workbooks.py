"""The bulletin's workbooks are made in a worker process (bulletin.Workbooks), which comes back
when it dies."""

from __future__ import annotations

import io
import os
import signal
from datetime import UTC, datetime

from openpyxl import load_workbook

from appraisal.bulletin import Sheet, Workbooks

SHEETS = [Sheet("按模块", ("模块代码", "派发数", "响应率"), [("M01", 3, 0.5), ("M02", 1, 1.0)], (2,))]
MADE_AT = datetime(2028, 9, 30, 18, 0, tzinfo=UTC)


def cells(content: bytes) -> list[tuple[object, ...]]:
    return list(load_workbook(io.BytesIO(content))["按模块"].iter_rows(values_only=True))


def worker_pids(workbooks: Workbooks) -> set[int]:
    assert workbooks._executor is not None
    return set(workbooks._executor._processes)  # the executor's own record of its workers


async def test_a_workbook_is_made_in_another_process_and_again_after_that_process_is_killed() -> None:
    workbooks = Workbooks()
    try:
        first = await workbooks.xlsx("清河镇 2028-09 月度通报", MADE_AT, SHEETS)
        assert cells(first) == [("模块代码", "派发数", "响应率"), ("M01", 3, 0.5), ("M02", 1, 1)]
        [worker] = worker_pids(workbooks)
        assert worker != os.getpid()
        os.kill(worker, signal.SIGKILL)  # noticed at the next workbook, or while it waits for the worker
        again = await workbooks.xlsx("清河镇 2028-09 月度通报", MADE_AT, SHEETS)
        assert cells(again) == cells(first)
        assert worker not in worker_pids(workbooks)
    finally:
        workbooks.close()
