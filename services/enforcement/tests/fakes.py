"""The fake unit of work: enforcement's store as dicts in memory, the outbox as a list. The unit
tests run the flows on it, with a fixed clock and no I/O (cosmicpython's tests/unit/fakes.py)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from enforcement.store import EvidenceOf, Row, Store
from enforcement.unit_of_work import UnitOfWork
from shared.tests.fake_objects import FakeObjects  # noqa: F401 - the tests import it from here
from townflow_shared.events import Envelope


class FakeStore:
    """Rows as dicts, keyed by id; what PgStore's SQL does, in Python."""

    def __init__(self) -> None:
        self.inspections: dict[uuid.UUID, dict[str, Any]] = {}
        self.needs: list[dict[str, Any]] = []
        self.cases: dict[uuid.UUID, dict[str, Any]] = {}
        self.case_step_rows: list[dict[str, Any]] = []
        self.plan_rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.evidence: dict[uuid.UUID, dict[str, Any]] = {}

    # --- inspections and their needs
    async def inspection(self, inspection_id: uuid.UUID, *, lock: bool = False) -> Row | None:
        return self.inspections.get(inspection_id)

    async def planned_inspection(self, town_code: str, target: str, *, lock: bool = False) -> Row | None:
        return next((i for i in self.inspections.values()
                     if i["town_code"] == town_code and i["target"] == target and i["status"] == "planned"), None)

    async def create_inspection(self, town_code: str, target: str, units: list[str], now: datetime) -> uuid.UUID:
        inspection_id = uuid.uuid4()
        self.inspections[inspection_id] = {
            "inspection_id": inspection_id, "town_code": town_code, "target": target, "status": "planned",
            "units": list(units), "created_at": now, "started_at": None, "started_by": None, "finished_at": None,
            "officers": None, "present_units": None, "findings": None, "visits_saved": 0, "assigned_officers": []}
        return inspection_id

    async def set_inspection(self, inspection_id: uuid.UUID, **fields: Any) -> None:
        self.inspections[inspection_id].update(fields)

    async def list_inspections(self, town_code: str | None, status: str | None, target: str | None,
                               unit: str | None, limit: int) -> list[Row]:
        rows = [i for i in self.inspections.values()
                if (town_code is None or i["town_code"] == town_code) and (status is None or i["status"] == status)
                and (target is None or i["target"] == target) and (unit is None or unit in i["units"])]
        return sorted(rows, key=lambda i: i["created_at"], reverse=True)[:limit]

    async def add_need(self, *, town_code: str, inspection_id: uuid.UUID, source: str, task_id: str | None,
                       request_id: str | None, item_code: str, target: str, units: list[str],
                       due: datetime | None, now: datetime, trace_headers: dict[str, str]) -> bool:
        if source == "task" and any(n["town_code"] == town_code and n["task_id"] == task_id and n["source"] == "task"
                                    for n in self.needs):
            return False  # needs_one_per_task
        self.needs.append({
            "need_id": uuid.uuid4(), "town_code": town_code, "inspection_id": inspection_id, "source": source,
            "task_id": task_id, "request_id": request_id, "item_code": item_code, "target": target,
            "units": list(units), "due": due, "created_at": now, "trace_headers": trace_headers,
            "repeated_inspection": False})
        return True

    async def needs_of_each(self, inspection_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Row]]:
        return {i: [n for n in self.needs if n["inspection_id"] == i] for i in inspection_ids}

    async def mark_repeated_need(self, town_code: str, task_id: str) -> None:
        for n in self.needs:
            if n["town_code"] == town_code and n["task_id"] == task_id and n["source"] == "task":
                n["repeated_inspection"] = True

    async def visits_since(self, town_code: str, since: datetime, target: str | None = None) -> list[Row]:
        rows = [i for i in self.inspections.values() if i["town_code"] == town_code and i["started_at"] is not None
                and i["started_at"] >= since and (target is None or i["target"] == target)]
        return sorted(rows, key=lambda i: i["started_at"])

    async def planned_inspections_of(self, town_code: str, targets: list[str]) -> dict[str, Row]:
        return {i["target"]: i for i in self.inspections.values()
                if i["town_code"] == town_code and i["target"] in targets and i["status"] == "planned"}

    async def repeated_needs_of(self, inspection_ids: list[uuid.UUID]) -> list[Row]:
        return [n for n in self.needs if n["inspection_id"] in inspection_ids and n["repeated_inspection"]]

    # --- cases
    async def case(self, case_id: uuid.UUID, *, lock: bool = False) -> Row | None:
        return self.cases.get(case_id)

    async def create_case(self, row: dict[str, Any]) -> None:
        defaults = {"extended": False, "extension_reason": None, "decision": None, "decided_at": None,
                    "warned_at": None, "overdue_at": None}
        self.cases[row["case_id"]] = defaults | dict(row)

    async def set_case(self, case_id: uuid.UUID, **fields: Any) -> None:
        self.cases[case_id].update(fields)

    async def add_case_step(self, town_code: str, case_id: uuid.UUID, step: str, at: datetime, by: str,
                            note: str | None) -> None:
        self.case_step_rows.append({"town_code": town_code, "case_id": case_id, "step": step, "at": at, "by": by,
                                    "note": note})

    async def case_steps(self, case_id: uuid.UUID) -> list[Row]:
        return [{k: s[k] for k in ("step", "at", "by", "note")} for s in self.case_step_rows
                if s["case_id"] == case_id]

    async def list_cases(self, town_code: str | None, step: str | None, inspection_id: uuid.UUID | None,
                         limit: int) -> list[Row]:
        rows = [c for c in self.cases.values() if (town_code is None or c["town_code"] == town_code)
                and (step is None or c["step"] == step) and (inspection_id is None or c["inspection_id"] == inspection_id)]
        return sorted(rows, key=lambda c: c["filed_at"], reverse=True)[:limit]

    async def claim_due_cases(self, towns: Sequence[str], now: datetime, limit: int) -> list[Row]:
        rows = [c | {"officers": self.inspections[c["inspection_id"]]["officers"] or []}
                for c in self.cases.values() if c["step"] in ("filed", "investigated", "reviewed")
                and c["next_flag_at"] is not None and c["next_flag_at"] <= now and c["town_code"] in towns]
        return sorted(rows, key=lambda c: c["next_flag_at"])[:limit]

    async def set_case_flags(self, flags: Sequence[tuple[uuid.UUID, bool, bool, datetime | None]],
                             at: datetime) -> None:
        for case_id, warn, overdue, next_at in flags:
            case = self.cases[case_id]
            case["warned_at"] = case["warned_at"] or (at if warn else None)
            case["overdue_at"] = case["overdue_at"] or (at if overdue else None)
            case["next_flag_at"] = next_at

    # --- plans
    async def save_plan(self, town_code: str, plan_id: uuid.UUID, seed: int, sample_size: int,
                        population: list[str], targets: list[dict[str, Any]], at: datetime, by: str) -> None:
        self.plan_rows[plan_id] = {"plan_id": plan_id, "town_code": town_code, "seed": seed,
                                   "sample_size": sample_size, "population": population, "targets": targets,
                                   "published_at": at, "published_by": by}

    async def plan(self, plan_id: uuid.UUID) -> Row | None:
        return self.plan_rows.get(plan_id)

    async def plans(self, town_code: str | None, limit: int) -> list[Row]:
        rows = [p for p in self.plan_rows.values() if town_code is None or p["town_code"] == town_code]
        return sorted(rows, key=lambda p: p["published_at"], reverse=True)[:limit]

    async def counts(self) -> list[Row]:
        return []

    # --- evidence (write-once: as the table's trigger, a row once in is never replaced)
    async def insert_evidence(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            assert row["attachment_id"] not in self.evidence, "evidence is write-once"
            self.evidence[row["attachment_id"]] = dict(row)

    async def evidence_of_each(self, column: EvidenceOf, record_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Row]]:
        return {i: sorted((e for e in self.evidence.values() if e[column] == i), key=lambda e: e["seq"])
                for i in record_ids}

    async def evidence_item(self, column: EvidenceOf, record_id: uuid.UUID, attachment_id: uuid.UUID) -> Row | None:
        row = self.evidence.get(attachment_id)
        return row if row is not None and row[column] == record_id else None

    async def known_evidence(self, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return {i for i in attachment_ids if i in self.evidence}


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, published: list[Envelope]) -> None:
        self.store: Store = store
        self._published = published

    async def publish(self, *events: Envelope) -> None:
        self._published.extend(events)


class FakeTransactions:
    """Units of work on one FakeStore; a unit that raises leaves the store and the outbox as they
    were (a rollback), one that returns commits."""

    def __init__(self) -> None:
        self.store = FakeStore()
        self.published: list[Envelope] = []
        self.committed = 0

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[UnitOfWork]:
        before = copy.deepcopy(self.store.__dict__)
        pending: list[Envelope] = []
        try:
            yield FakeUnitOfWork(self.store, pending)
        except BaseException:
            self.store.__dict__.update(before)
            raise
        self.published.extend(pending)
        self.committed += 1

    @asynccontextmanager
    async def reading(self, *, snapshot: bool = False) -> AsyncIterator[UnitOfWork]:
        yield FakeUnitOfWork(self.store, [])
