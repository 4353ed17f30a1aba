"""月度通报 on the real stack (SPEC §10): `GET /v1/bulletin?period=&format=xlsx|csv`, opened with
openpyxl and read cell by cell. The month 2028-09 is this file's."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time

import pytest
from openpyxl import load_workbook

from devstack.stack import REPO, Stack
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

from .conftest import Api, eventually, file_matter, set_clocks, task_of
from .test_appraisal import APPRAISER, complete, figures_when, rate

PERIOD = "2028-09"
TOWN = load_town(DEMO_TOWN_DIR)


async def test_the_monthly_bulletin_as_a_workbook_and_as_csv(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    await set_clocks(stack, "2028-09-04T09:00:00+08:00")
    lamps = [await file_matter(intake, item_code="T005", village="V02", location=f"东湖村路灯{i}") for i in range(2)]
    bins = [await file_matter(intake, item_code="T002", village="V03", location=f"西山村垃圾点{i}") for i in range(3)]
    lamp_tasks = [await task_of(dispatch, t["request_id"]) for t in lamps]
    bin_tasks = [await task_of(dispatch, t["request_id"]) for t in bins]
    assert {t["assignee"] for t in lamp_tasks} == {"s020"}
    late = bin_tasks[0]["assignee"]
    await complete(dispatch, lamp_tasks[0])
    await rate(intake, lamps[0], "satisfied")
    # Past both deadlines (T002 2wd, T005 3wd), before 150% of either window: four tasks overdue, none escalated.
    await set_clocks(stack, "2028-09-07T18:00:00+08:00")
    await figures_when(appraisal, PERIOD, "staff", late, lambda f: f["counts"]["overdue"] == 3)
    await figures_when(appraisal, PERIOD, "staff", "s020",
                       lambda f: f["counts"]["overdue"] == 1 and f["counts"]["rated"] == 1)

    async def reminded() -> bool:
        rows = (await appraisal.call("GET", "/v1/alerts", as_=APPRAISER, params={"period": PERIOD})).json()
        return [r["level"] for r in rows] == ["reminder"]

    await eventually(reminded, what="the reminder for three overdue tasks")

    got = await appraisal.call("GET", "/v1/bulletin", as_=APPRAISER,
                               params={"period": PERIOD, "format": "xlsx", "pool": "1000.00"})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert got.headers["content-disposition"] == f'attachment; filename="bulletin-321003104-{PERIOD}.xlsx"'
    book = load_workbook(io.BytesIO(got.content))
    assert book.sheetnames == ["按模块", "按村社区", "按人员", "红黑榜", "预警", "热点网格", "奖金分配"]

    def values(sheet: str) -> list[list[object]]:
        return [[c.value for c in r] for r in book[sheet].iter_rows()]

    header = ["派发数", "响应率", "办结率", "满意率", "返工率", "延期率", "重办率", "挂起率", "积分", "综合分", "排名"]
    econ, env = TOWN.modules["econ"].name, TOWN.modules[TOWN.staff[late].module].name
    # s020: 2 dispatched, 1 done on time and rated satisfied, 1 overdue: 10 + 2 + 2 − 5 points.
    s020 = ["s020", TOWN.staff["s020"].name, econ, 2, 0.5, 0.5, 1.0, 0.0, 0.0, None, 0.0, 9, 67.5, 1]
    assert values("按人员") == [["工号", "姓名", "模块", *header], s020,
                               [late, TOWN.staff[late].name, env, 3, 0.0, 0.0, None, None, 0.0, None, 0.0, -15, 0, 2]]
    assert book["按人员"].cell(2, 5).number_format == "0.00%"
    assert values("按村社区") == [["村社区代码", "村社区", *header],
                                 ["V02", "东湖村", 2, 0.5, 0.5, 1.0, 0.0, 0.0, None, 0.0, 9, 67.5, 1],
                                 ["V03", "西山村", 3, 0.0, 0.0, None, None, 0.0, None, 0.0, -15, 0, 2]]
    assert values("按模块")[0] == ["模块代码", "模块", *header]
    lists = values("红黑榜")
    assert lists[0] == ["类别", "榜", "位次", "代码", "名称", "综合分"]
    assert ["人员", "红榜", 1, "s020", TOWN.staff["s020"].name, 67.5] in lists
    assert ["人员", "黑榜", 1, late, TOWN.staff[late].name, 0] in lists
    (alert,) = values("预警")[1:]
    assert alert[:3] == [late, TOWN.staff[late].name, "提醒"] and str(alert[4]).startswith("2028-09-07 18:0")
    bonus = values("奖金分配")
    assert bonus[0] == ["工号", "姓名", "模块", "岗位系数", "积分", "权重", "占比", "金额（元）"]
    assert bonus[1] == ["s020", TOWN.staff["s020"].name, econ, TOWN.staff["s020"].post_coefficient, 9,
                        round(9 * TOWN.staff["s020"].post_coefficient, 4), 1.0, 1000.0]

    # CSV: the same sheets one after another in one file, each led by its name; the console's
    # default is the workbook.
    as_csv = await appraisal.call("GET", "/v1/bulletin", as_=("s020", "module_leader"),
                                  params={"period": PERIOD, "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    staff_at = rows.index(["按人员"])
    assert rows[staff_at + 1] == ["工号", "姓名", "模块", *header]
    assert rows[staff_at + 2] == ["s020", TOWN.staff["s020"].name, econ, "2", "0.5", "0.5", "1.0", "0.0", "0.0", "", "0.0",
                                  "9.0", "67.5", "1"]
    assert ["奖金分配"] not in rows  # the split is the appraisal office's, as GET /v1/bonus
    office_csv = await appraisal.call("GET", "/v1/bulletin", as_=APPRAISER, params={"period": PERIOD, "format": "csv"})
    office_rows = list(csv.reader(io.StringIO(office_csv.content.decode("utf-8-sig"))))
    assert office_rows[office_rows.index(["奖金分配"]) + 2][7] == ""  # no pool given: shares only
    default = await appraisal.call("GET", "/v1/bulletin", as_=APPRAISER, params={"period": PERIOD})
    assert default.headers["content-disposition"].endswith('.xlsx"')

    # Who may have it, and a month without figures.
    staff = await appraisal.call("GET", "/v1/bulletin", as_=("s020", "staff"), params={"period": PERIOD})
    assert (staff.status_code, staff.json()["code"]) == (403, "auth.role_missing")
    empty = await appraisal.call("GET", "/v1/bulletin", as_=APPRAISER, params={"period": "2099-01"})
    assert (empty.status_code, empty.json()["code"], empty.json()["field"]) == (404, "period.no_figures", "period")
    assert empty.json()["params"] == {"period": "2099-01"}
    pdf = await appraisal.call("GET", "/v1/bulletin", as_=APPRAISER, params={"period": PERIOD, "format": "pdf"})
    assert (pdf.status_code, pdf.json()["code"], pdf.json()["field"]) == (422, "value.not_allowed", "format")
    endless = await appraisal.call("GET", "/v1/bulletin", as_=APPRAISER, params={"period": PERIOD, "pool": "1E+999999"})
    assert (endless.status_code, endless.json()["code"]) == (422, "value.too_many_digits")
    far = await appraisal.call("GET", "/v1/bulletin", as_=APPRAISER, params={"period": "9999-01"})
    assert (far.status_code, far.json()["code"]) == (422, "period.out_of_range")


# --- the workbook worker ends with its service ---------------------------------------------------
# A stand-in for the service: makes one workbook (which starts the worker process), prints its own
# pid, then closes the workbooks on "close" or waits to be killed.
_SERVICE = """
import asyncio, os, sys
from datetime import UTC, datetime
from appraisal.bulletin import Sheet, Workbooks

async def main() -> None:
    workbooks = Workbooks()
    await workbooks.xlsx("t", datetime.now(UTC), [Sheet("s", ("a",), [(1,)])])
    print(os.getpid(), flush=True)
    if sys.stdin.readline().strip() == "close":
        workbooks.close()
        print("closed", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (Linux's /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while (alive := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.parametrize("ending", ["killed", "closed"])
def test_the_workbook_worker_does_not_outlive_its_service(ending: str) -> None:
    """Killed (kill -9, an OOM kill, a crash) or closed on stop, the service leaves no worker behind."""
    service = subprocess.Popen([sys.executable, "-c", _SERVICE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=REPO)
    try:
        assert service.stdout is not None and service.stdin is not None
        pid = int(service.stdout.readline())
        children = _children(pid)  # the worker, and multiprocessing's resource tracker
        workers = {p for p in children if _is_worker(p)}
        assert workers, "the first workbook starts a worker process"
        if ending == "killed":
            service.kill()
            service.wait(timeout=10)
            assert _gone_within(children, 15) == set(), "a process outlived its killed service"
        else:
            service.stdin.write("close\n")
            service.stdin.flush()
            assert service.stdout.readline().strip() == "closed"
            assert _gone_within(workers, 15) == set(), "the worker outlived the workbooks' closing"
    finally:
        service.kill()
        service.wait(timeout=10)
