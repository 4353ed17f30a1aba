"""What-if and the bulletin without I/O: the same rules over the facts, the sheets as data."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from pydantic import ValidationError

from appraisal import bulletin, rules, whatif
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

TOWN = load_town(DEMO_TOWN_DIR)
BASE = rules.TaskFact(task_id="t", period="2028-08", assignee="s020", module="econ", village="V01",
                      seconded_unit=None, colour="yellow", difficulty=1.0, responded=True, completions=1,
                      failed_checks=0, last_on_time=True, extensions=0, superseded=False,
                      returned_invalid=False, completed_event="e1")
SUBJECTS = {"staff": "s020", "module": "econ", "village": "V01", "seconded_unit": None}


def test_rules_with_lays_changes_over_the_towns_section_by_section() -> None:
    base = TOWN.rules.appraisal
    other = whatif.rules_with(base, {"weights": {"response": 0.6}, "points": {"on_time": 5}})
    assert (other.weights.response, other.weights.resolution, other.points.on_time) == (0.6, 0.35, 5)
    assert other.points.colour_factor == base.points.colour_factor
    assert whatif.rules_with(base, {"appraisal": {"weights": {"response": 0.6}}}) == other.model_copy(
        update={"points": base.points})  # a whole rules.yaml: its appraisal section
    with pytest.raises(ValidationError):
        whatif.rules_with(base, {"weights": {"speed": 1}})


def test_month_totals_under_the_towns_rules_are_the_sums_of_the_contributions() -> None:
    tasks = [replace(BASE, task_id=f"t{i}", completions=i % 2, rating="satisfied" if i % 3 == 0 else None)
             for i in range(7)] + [replace(BASE, task_id="m", merged=True, overdue_event="e")]
    inspection = rules.InspectionFact("i1", "2028-08", ("s040", "s041"), 3, "e9")
    totals = {(t.subject_type, t.subject_id): t for t in whatif.month_totals(
        tasks, [SUBJECTS] * len(tasks), [inspection], TOWN, TOWN.rules.appraisal)}
    expected = rules.counts(tasks)
    assert totals[("staff", "s020")].counts == expected
    assert totals[("village", "V01")].counts == expected
    assert totals[("staff", "s020")].points == round(sum(rules.contribution(t, TOWN, TOWN.rules.appraisal)[1]
                                                         for t in tasks), 4)
    assert totals[("staff", "s040")].points == 5 + 3 * 2  # officer + two extra tasks covered


def test_response_weight_0_6_changes_the_composite_by_the_hand_computed_amount() -> None:
    c = rules.Counts(dispatched=4, responded=3, resolved=1, completed=1, rated=1, satisfied=1)
    live = [rules.SubjectTotals("staff", "s020", c, 14.0)]
    other = whatif.rules_with(TOWN.rules.appraisal, {"weights": {"response": 0.6}})
    (row,) = [whatif.as_dict(x) for x in whatif.compare("2028-08", live, live, TOWN, other)]
    assert row["live"]["composite"] == 100 * (0.30 * 0.75 + 0.35 * 0.25 + 0.35 * 1)
    assert row["what_if"]["composite"] == round(100 * (0.6 * 0.75 + 0.35 * 0.25 + 0.35 * 1) / 1.3, 4)
    assert row["difference"]["composite"] == round(row["what_if"]["composite"] - row["live"]["composite"], 4)


def _figures() -> dict[rules.SubjectType, list[rules.Figures]]:
    totals = [rules.SubjectTotals("staff", "s020", rules.Counts(dispatched=2, responded=2, resolved=1, completed=2,
                                                               closed=2, reopened=1), 22.0),
              rules.SubjectTotals("module", "econ", rules.Counts(dispatched=2, resolved=1), 22.0),
              rules.SubjectTotals("village", "V01", rules.Counts(dispatched=2, resolved=1), 22.0)]
    return rules.month_figures("2028-08", totals, TOWN, TOWN.rules.appraisal)


def test_the_bulletin_workbook_and_csv_hold_the_same_sheets() -> None:
    alerts = [{"staff_id": "s020", "level": "reminder", "reasons": ["3 overdue"],
               "raised_at": datetime.fromisoformat("2028-08-20T09:00:00+08:00")}]
    sheets = bulletin.sheets(TOWN, "2028-08", _figures(), alerts, Decimal("1000.00"))
    assert [s.name for s in sheets] == ["按模块", "按村社区", "按人员", "红黑榜", "预警", "热点网格", "奖金分配"]
    book = load_workbook(io.BytesIO(bulletin.to_xlsx("t", datetime(2028, 9, 1), sheets)))
    assert book.sheetnames == [s.name for s in sheets]
    staff = book["按人员"]
    assert [c.value for c in staff[2]][:12] == ["s020", TOWN.staff["s020"].name, TOWN.modules["econ"].name,
                                                2, 1.0, 0.5, None, 0.0, 0.0, 0.5, 0.0, 22]
    assert staff.cell(2, 5).number_format == "0.00%"
    bonus = book["奖金分配"]
    assert bonus.cell(2, 1).value == "s020" and bonus.cell(2, 8).value == 1000.0
    rows = list(csv.reader(io.StringIO(bulletin.to_csv(sheets).decode("utf-8-sig"))))
    assert rows[0] == ["按模块"] and rows[1][:3] == ["模块代码", "模块", "派发数"]
    assert ["预警"] in rows and ["s020", TOWN.staff["s020"].name, "提醒", "3 overdue", "2028-08-20 09:00"] in rows
