"""热点 (issue #30): located matters per grid cell and month by item, the cells that rose most, the
API's answer from the fake store, and the bulletin's sheet."""

from __future__ import annotations

import csv
import io

from appraisal import bulletin, flows, rules
from townflow_shared.auth import Principal
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_TOWN_DIR

from .fakes import FakeUnits, deps

COUNTY = load_county(DEMO_TOWN_DIR)
TOWN = COUNTY.towns["321003104"]
A, B, C = "321003104001001", "321003104001002", "321003104002001"  # two cells of 青禾村 (V01), one of 东湖村 (V02)
LEADER = Principal(sub="m001", roles=frozenset({"command_centre"}), town=TOWN.code)


def test_the_month_before_crosses_a_year() -> None:
    assert rules.previous_period("2028-08") == "2028-07"
    assert rules.previous_period("2028-01") == "2027-12"


def test_cells_busiest_first_with_their_items_and_the_month_before() -> None:
    cells = rules.hotspots("2028-08", [
        ("2028-08", A, "T001", 2), ("2028-08", A, "T002", 3), ("2028-08", B, "T001", 5),
        ("2028-07", A, "T001", 1), ("2028-07", C, "T002", 4), ("2028-06", B, "T001", 9)])  # June: not counted
    assert [(c.cell, c.count, c.previous, c.rise) for c in cells] == [(A, 5, 1, 4), (B, 5, 0, 5), (C, 0, 4, -4)]
    assert cells[0].items == (("T002", 3), ("T001", 2))
    assert cells[2].items == ()  # no matter this month: shown, its fall visible


def test_the_cells_that_rose_most_rise_by_one_at_least_and_the_busier_breaks_a_tie() -> None:
    cells = [rules.CellMonth(A, 3, 1, ()), rules.CellMonth(B, 4, 2, ()), rules.CellMonth(C, 2, 2, ()),
             rules.CellMonth("321003104002002", 1, 0, ())]
    assert [c.cell for c in rules.rising(cells)] == [B, A, "321003104002002"]
    assert [c.cell for c in rules.rising(cells, size=1)] == [B]


async def test_the_hotspots_answer_names_each_cells_village_and_the_rising() -> None:
    units = FakeUnits()
    units.kept.located += [{"town_code": TOWN.code, "period": p, "grid_cell": cell, "item_code": item}
                           for p, cell, item in [("2028-08", A, "T001"), ("2028-08", A, "T001"),
                                                 ("2028-08", C, "T002"), ("2028-07", C, "T002"),
                                                 ("2028-08", B, "T001")]]
    units.kept.located.append({"town_code": "321003112", "period": "2028-08", "grid_cell": A, "item_code": "T001"})
    answer = await flows.hotspots(deps(COUNTY, units), LEADER, flows.MonthOf(period="2028-08"))
    assert answer["previous_period"] == "2028-07"
    assert [(c["grid_cell"], c["village"], c["count"], c["previous"]) for c in answer["cells"]] == [
        (A, "V01", 2, 0), (B, "V01", 1, 0), (C, "V02", 1, 1)]
    assert answer["cells"][0]["items"] == [{"item_code": "T001", "count": 2}]
    assert answer["rising"] == [A, B]


def test_the_bulletin_holds_the_hotspot_table_by_name() -> None:
    cells = rules.hotspots("2028-08", [("2028-08", A, "T001", 2), ("2028-08", A, "T002", 1), ("2028-07", C, "T002", 3)])
    sheet = bulletin.hotspot_sheet(TOWN, cells)
    assert sheet.header == ("网格编码", "村社区", "本月件数", "上月件数", "增减", "上升位次", "主要事项")
    assert sheet.rows == [
        (A, "青禾村", 3, 0, 3, 1, f"{TOWN.catalog['T001'].name} 2；{TOWN.catalog['T002'].name} 1"),
        (C, "东湖村", 0, 3, -3, None, "")]
    rows = list(csv.reader(io.StringIO(bulletin.to_csv([sheet]).decode("utf-8-sig"))))
    assert rows[0] == ["热点网格"] and rows[2][:3] == [A, "青禾村", "3"]
