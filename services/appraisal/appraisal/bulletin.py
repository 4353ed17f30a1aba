"""月度通报 (SPEC §10): a town's month as a spreadsheet — rates by module, village and staff, the
red and black lists, the alerts raised and the bonus split — read from the stored figures. The
sheets are plain data made here (pure); the workbook (openpyxl) is rendered from them in a
process of its own (Workbooks), the CSV in a worker thread, both off the event loop. The CSV is
the same sheets one after another in one file: each starts with a line holding its name, then
its header row, and a blank line ends it."""

from __future__ import annotations

import asyncio
import csv
import io
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from townflow_shared.town import Town

from . import rules

RATES = ("response", "resolution", "satisfaction", "rework", "extension", "reopen", "suspension")
RATE_NAMES = ("响应率", "办结率", "满意率", "返工率", "延期率", "重办率", "挂起率")
SUBJECT_NAMES = {"staff": "人员", "module": "模块", "village": "村社区", "seconded_unit": "派驻机构"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"

Cell = str | int | float | None


@dataclass(frozen=True)
class Sheet:
    name: str
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    percent_columns: tuple[int, ...] = ()  # 0-based columns holding a fraction, shown as a percentage


def _rate_cells(f: rules.Figures) -> tuple[Cell, ...]:
    return (f.counts.dispatched, *(f.rates[r] for r in RATES), f.points, f.composite, f.rank)


_FIGURE_HEADER = ("派发数", *RATE_NAMES, "积分", "综合分", "排名")


def _rates_sheet(name: str, lead: tuple[str, ...], figs: Sequence[rules.Figures],
                 names: Mapping[str, tuple[Cell, ...]]) -> Sheet:
    rows = [(f.subject_id, *names.get(f.subject_id, (None,) * (len(lead) - 1)), *_rate_cells(f)) for f in figs]
    first_rate = len(lead) + 1
    return Sheet(name, (*lead, *_FIGURE_HEADER), rows, tuple(range(first_rate, first_rate + len(RATES))))


def sheets(town: Town, period: str, figures: Mapping[rules.SubjectType, list[rules.Figures]],
           alerts: Sequence[Mapping[str, Any]], pool: Decimal | None, with_bonus: bool = True,
           cells: Sequence[rules.CellMonth] = ()) -> list[Sheet]:
    """The bulletin's sheets: every figure as stored, names from the town's configuration; the
    hotspots of the town's grid cells (`cells`, issue #30); the bonus split only for those who may
    read it (`with_bonus`, as `GET /v1/bonus`)."""
    villages = {v.code: v.name for v in town.info.villages}
    result = [
        _rates_sheet("按模块", ("模块代码", "模块"), figures["module"],
                     {m: (town.modules[m].name,) for m in town.modules}),
        _rates_sheet("按村社区", ("村社区代码", "村社区"), figures["village"], {v: (n,) for v, n in villages.items()}),
        _rates_sheet("按人员", ("工号", "姓名", "模块"), figures["staff"],
                     {s.id: (s.name, town.modules[s.module].name if s.module in town.modules else s.module)
                      for s in town.staff.values()}),
    ]
    lists: list[tuple[Cell, ...]] = []
    for subject_type in rules.SUBJECT_TYPES:
        red, black = rules.red_and_black_lists(figures[subject_type], town.rules.appraisal.rankings_size)
        for board, figs in (("红榜", red), ("黑榜", black)):
            lists += [(SUBJECT_NAMES[subject_type], board, place, f.subject_id, _name(town, villages, f), f.composite)
                      for place, f in enumerate(figs, 1)]
    result.append(Sheet("红黑榜", ("类别", "榜", "位次", "代码", "名称", "综合分"), lists))
    levels = {"reminder": "提醒", "talk": "约谈", "accountability": "问责"}
    result.append(Sheet("预警", ("工号", "姓名", "级别", "原因", "时间"), [
        (a["staff_id"], town.staff[a["staff_id"]].name if a["staff_id"] in town.staff else None,
         levels.get(a["level"], a["level"]), "；".join(a["reasons"]),
         a["raised_at"].astimezone(town.calendar.tz).strftime("%Y-%m-%d %H:%M")) for a in alerts]))
    result.append(hotspot_sheet(town, cells))
    if with_bonus:
        result.append(_bonus_sheet(town, figures["staff"], pool))
    return result


def hotspot_sheet(town: Town, cells: Sequence[rules.CellMonth]) -> Sheet:
    """热点网格 (issue #30): each grid cell's located matters this month and the month before, busiest
    first, its three most frequent items by name, and the place among the cells that rose most."""
    villages = {v.code: v.name for v in town.info.villages}
    rose = {c.cell: place for place, c in enumerate(rules.rising(cells), 1)}

    def village(cell: str) -> str | None:
        code = town.places.village_of_cell(cell) if town.places else None
        return villages.get(code or "", code)

    def items(c: rules.CellMonth) -> str:
        return "；".join(f"{town.catalog[i].name if i in town.catalog else i} {n}" for i, n in c.items[:3])

    return Sheet("热点网格", ("网格编码", "村社区", "本月件数", "上月件数", "增减", "上升位次", "主要事项"),
                 [(c.cell, village(c.cell), c.count, c.previous, c.rise, rose.get(c.cell), items(c)) for c in cells])


def _name(town: Town, villages: Mapping[str, str], f: rules.Figures) -> str | None:
    if f.subject_type == "staff":
        return town.staff[f.subject_id].name if f.subject_id in town.staff else None
    if f.subject_type == "village":
        return villages.get(f.subject_id)
    return town.modules[f.subject_id].name if f.subject_id in town.modules else None


def _bonus_sheet(town: Town, staff: Sequence[rules.Figures], pool: Decimal | None) -> Sheet:
    """差异化分配 as SPEC §5.5 splits it: by post coefficient × max(points, 0); each one's share of
    the pool, and with `pool` the yuan to the cent (largest remainder, summing exactly to it)."""
    points = {f.subject_id: f.points for f in staff}
    weights = {s.id: s.post_coefficient * max(points.get(s.id, 0.0), 0.0) for s in town.staff.values()}
    total = sum(weights.values())
    amounts = rules.bonus_split(pool, weights) if pool is not None and total > 0 else {}
    rows: list[tuple[Cell, ...]] = [
        (s.id, s.name, town.modules[s.module].name if s.module in town.modules else s.module, s.post_coefficient,
         points.get(s.id, 0.0), round(weights[s.id], 4), round(weights[s.id] / total, 6) if total else None,
         float(amounts[s.id]) if s.id in amounts else None)
        for s in sorted(town.staff.values(), key=lambda s: (-weights[s.id], s.id))]
    return Sheet("奖金分配", ("工号", "姓名", "模块", "岗位系数", "积分", "权重", "占比", "金额（元）"), rows, (6,))


def filename(town: Town, period: str, file_format: str) -> str:
    return f"bulletin-{town.code}-{period}.{file_format}"


def to_xlsx(title: str, made_at: datetime, sheets: Sequence[Sheet]) -> bytes:
    """The workbook: one worksheet per sheet, its header bold and frozen, rates as percentages."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    book.properties.title = title
    book.properties.created = made_at.replace(tzinfo=None)
    for sheet in sheets:
        ws = book.create_sheet(sheet.name)
        ws.append(list(sheet.header))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in sheet.rows:
            ws.append(list(row))
        ws.freeze_panes = "A2"
        for column in sheet.percent_columns:
            for (cell,) in ws.iter_rows(min_row=2, min_col=column + 1, max_col=column + 1):
                cell.number_format = "0.00%"
        for i, name in enumerate(sheet.header, 1):
            width = max([len(str(name)) * 2, *(len(str(r[i - 1])) for r in sheet.rows if r[i - 1] is not None)])
            ws.column_dimensions[get_column_letter(i)].width = min(max(width + 2, 8), 60)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_csv(sheets: Sequence[Sheet]) -> bytes:
    """One CSV of every sheet, each led by its name; UTF-8 with a BOM, which Excel needs to read
    Chinese text as such."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for sheet in sheets:
        writer.writerow([sheet.name])
        writer.writerow(sheet.header)
        writer.writerows(["" if v is None else v for v in row] for row in sheet.rows)
        writer.writerow([])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# How often a workbook worker looks whether its service still lives: a killed service's worker
# ends within this (its parent's death closes nothing it waits on, so it would wait forever).
PARENT_WATCH_SECONDS = 1.0


def _end_with_parent(parent: int) -> None:
    """In the worker process: end it when the service that started it is gone (kill -9, an out-
    of-memory kill, a crash), so no worker outlives its service."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_WATCH_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


class Workbooks:
    """Makes workbooks in a worker process. openpyxl is pure Python: in a thread of the service's
    own process it holds the GIL for most of a render, and the event loop (the consumer, the
    relay, Kubernetes' probes) waits behind it: `/healthz` p99 was 57 ms while two bulletins were
    made at a county-year. The process is started on the first workbook and started anew if it
    dies; it ends when the service stops (`close`, on the service's stop) or dies (it watches its
    parent)."""

    def __init__(self, processes: int = 1) -> None:
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the service's process has threads (the Kafka client's, the database's).
            self._executor = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_end_with_parent, initargs=(os.getpid(),))
        return self._executor

    async def xlsx(self, title: str, made_at: datetime, sheets: Sequence[Sheet]) -> bytes:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._started(), to_xlsx, title, made_at, sheets)
        except BrokenProcessPool:  # the worker was killed (e.g. out of memory): once more in a new one
            self.close()
            return await loop.run_in_executor(self._started(), to_xlsx, title, made_at, sheets)

    def close(self) -> None:
        """End the worker now: what it was making is abandoned (the service is stopping)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        workers = list(getattr(executor, "_processes", {}).values())  # the executor keeps no public list
        executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()  # a render in progress would otherwise hold the stop for its length
        for worker in workers:
            worker.join(timeout=WORKER_EXIT_SECONDS)


# How long a stop waits for a terminated worker to exit (it has nothing to flush).
WORKER_EXIT_SECONDS = 5.0
