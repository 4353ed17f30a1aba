"""The unit tier's one fake: a unit of work over dicts (cosmicpython's tests/unit/fakes.py), so the
command handlers run with no database. Rows are plain dicts shaped as store.py's rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from appraisal import store
from appraisal.bulletin import Workbooks
from appraisal.flows import Batches, Deps
from appraisal.settings import AppraisalSettings
from appraisal.unit_of_work import UnitOfWork, UnitsOfWork
from townflow_shared.clock import Clock
from townflow_shared.county import County
from townflow_shared.db import Database
from townflow_shared.events import Envelope


@dataclass
class FakeStore:
    """What store.py keeps, as lists and dicts: subject totals, tasks, inspections, alerts and
    the parent departments' scores."""

    totals: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    inspections: list[dict[str, Any]] = field(default_factory=list)
    raised: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    located: list[dict[str, Any]] = field(default_factory=list)  # town_code, period, grid_cell, item_code

    async def month_totals(self, months: Iterable[tuple[str, str]]) -> Sequence[store.Row]:
        wanted = set(months)
        return [r for r in self.totals if (r["town_code"], r["period"]) in wanted and r["subject_id"] != ""]

    async def town_counts(self, town_codes: Sequence[str], period: str) -> Sequence[store.Row]:
        out: dict[str, dict[str, Any]] = {}
        for r in self.totals:
            if r["town_code"] in town_codes and r["period"] == period and r["subject_type"] == "staff":
                row = out.setdefault(r["town_code"], {"town_code": r["town_code"],
                                                      **dict.fromkeys(store.COUNT_COLUMNS, 0)})
                for c in store.COUNT_COLUMNS:
                    row[c] += r[c]
        return list(out.values())

    async def tasks_of_month(self, town_code: str, period: str) -> Sequence[store.Row]:
        return sorted((t for t in self.tasks if (t["town_code"], t["period"]) == (town_code, period)),
                      key=lambda t: t["task_id"])

    async def inspections_of_month(self, town_code: str, period: str) -> Sequence[store.Row]:
        return [i for i in self.inspections if (i["town_code"], i["period"]) == (town_code, period)]

    async def tasks_of_subject(self, town_code: str, subject_type: str, subject_id: str,
                               period: str) -> Sequence[store.Row]:
        column = {"staff": "assignee", "module": "module", "village": "village", "seconded_unit": "seconded_unit"}
        return [t for t in await self.tasks_of_month(town_code, period) if t[column[subject_type]] == subject_id]

    async def inspections_of_subject(self, town_code: str, subject_type: str, subject_id: str,
                                     period: str) -> Sequence[store.Row]:
        if subject_type != "staff":
            return []
        return [i for i in await self.inspections_of_month(town_code, period) if subject_id in i["officers"]]

    async def alerts(self, town_code: str, period: str | None, staff_id: str | None) -> Sequence[store.Row]:
        return [a for a in self.raised if a["town_code"] == town_code and period in (None, a["period"])
                and staff_id in (None, a["staff_id"])]

    async def seconded_scores(self, town_code: str, period: str) -> dict[str, float]:
        return {unit: row["score"] for (town, unit, p), row in self.scores.items() if (town, p) == (town_code, period)}

    async def cell_counts(self, town_code: str, periods: Sequence[str]) -> Sequence[store.Row]:
        counts: dict[tuple[str, str, str], int] = {}
        for m in self.located:
            if m["town_code"] == town_code and m["period"] in periods:
                key = (m["period"], m["grid_cell"], m["item_code"])
                counts[key] = counts.get(key, 0) + 1
        return [{"period": p, "grid_cell": c, "item_code": i, "n": n} for (p, c, i), n in counts.items()]

    async def post_seconded_score(self, town_code: str, unit: str, period: str, score: float, by: str,
                                  at: datetime) -> None:
        self.scores[(town_code, unit, period)] = {"score": score, "posted_by": by, "posted_at": at}


class FakeUnitOfWork:
    """One 'transaction' over the fake store: its writes are kept only when it commits (here:
    when the block ends without an error); the events it published are recorded."""

    def __init__(self, kept: FakeStore, readonly: bool, log: FakeUnits) -> None:
        self.kept = kept
        self.readonly = readonly
        self.log = log
        self.store: store.AppraisalStore = kept
        self._events: list[Envelope] = []
        self._before: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def __aenter__(self) -> FakeUnitOfWork:
        self._before = dict(self.kept.scores)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        if kind is not None or self.readonly:
            if self.kept.scores != self._before and self.readonly:
                raise AssertionError("a read-only unit of work wrote")
            self.kept.scores = self._before  # rolled back
            return
        self.log.committed += 1
        self.log.published.extend(self._events)

    def publish(self, *events: Envelope) -> None:
        self._events.extend(events)


@dataclass
class FakeUnits:
    """The factory of fake units of work, and what they did."""

    kept: FakeStore = field(default_factory=FakeStore)
    committed: int = 0
    published: list[Envelope] = field(default_factory=list)
    opened: list[bool] = field(default_factory=list)  # readonly, one per unit of work

    def __call__(self, *, readonly: bool = False) -> UnitOfWork:
        self.opened.append(readonly)
        return FakeUnitOfWork(self.kept, readonly, self)


def fixed_clock(moment: datetime = datetime(2028, 8, 15, 2, 0, tzinfo=UTC)) -> Clock:
    clock = Clock()
    clock.set(moment)
    return clock


def deps(county: County, units: FakeUnits, clock: Clock | None = None) -> Deps:
    """The service's deps with the fake unit of work and a fixed clock; no database opened."""
    factory: UnitsOfWork = units
    return Deps(settings=AppraisalSettings(), county=county, clock=clock or fixed_clock(), database=Database(),
                unit_of_work=factory, batches=Batches(county, publishing=False), workbooks=Workbooks())


def totals_row(town_code: str, period: str, subject_type: str, subject_id: str, points: float = 0.0,
               **counts: int) -> dict[str, Any]:
    """A subject_totals row as store.month_totals returns it."""
    return {"town_code": town_code, "period": period, "subject_type": subject_type, "subject_id": subject_id,
            "points": points, **dict.fromkeys(store.COUNT_COLUMNS, 0), **counts}
