"""The county configuration (SPEC §8): the demo county of three towns, shared and local calendars,
per-town catalogs, a one-town folder as a county of one, and errors that name the town's folder,
the file and the field."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import TownConfigError, load_town

QINGHE, BAILU, SHIQIAO = "321003104", "321003107", "321003112"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_demo_county_has_three_towns_within_its_code() -> None:
    county = load_county(DEMO_COUNTY_DIR)
    assert county.info is not None
    assert (county.info.code, county.info.name) == ("321003", "禾川县")
    assert {code: town.info.name for code, town in county.towns.items()} == {
        QINGHE: "青禾镇", BAILU: "白鹭镇", SHIQIAO: "石桥镇"}
    assert county.only_town is None
    roles = sorted(role for person in county.info.staff for role in person.roles)
    assert roles == ["auditor", "county_admin", "county_reader", "county_reader"]  # auditor: issue #28


def test_every_department_a_town_names_is_a_county_department() -> None:
    county = load_county(DEMO_COUNTY_DIR)
    assert county.info is not None
    departments = {d.name for d in county.info.departments}
    for town in county.towns.values():
        named = {i.department for i in town.catalog.values() if i.department}
        named |= {m.parent_department for m in town.modules.values() if m.parent_department}
        assert named <= departments, (town.info.name, named - departments)


def test_each_demo_town_is_complete_and_different() -> None:
    towns = load_county(DEMO_COUNTY_DIR).towns
    for town in towns.values():
        assert {i.task_kind for i in town.catalog.values()} == {"service", "enforcement", "joint_visit"}
        assert {m.kind for m in town.modules.values()} == {"module", "centre", "enforcement", "command", "seconded"}
        assert sum(s.enforcement_certificate for s in town.staff.values()) >= 2
    catalogs = [set(town.catalog) for town in towns.values()]
    assert {"S001", "S002"} <= set.intersection(*catalogs)
    assert all(c - set.union(*(o for o in catalogs if o is not c)) for c in catalogs), "each town has items of its own"
    assert {code: t.rules.dispatch.default_load_cap for code, t in towns.items()} == {
        QINGHE: 20, BAILU: 20, SHIQIAO: 12}


def test_qinghe_in_the_county_keeps_the_demo_towns_calendar_plus_its_own_day_off() -> None:
    alone = load_town(DEMO_TOWN_DIR).info
    in_county = load_county(DEMO_COUNTY_DIR).towns[QINGHE].info
    assert set(in_county.holidays) == {*alone.holidays, date(2026, 3, 20)}
    assert in_county.adjusted_working_days == alone.adjusted_working_days


@pytest.mark.parametrize("day", [date(2026, 1, 1), date(2026, 2, 18), date(2026, 10, 7)])
def test_the_county_holidays_are_off_in_every_town(day: date) -> None:
    for town in load_county(DEMO_COUNTY_DIR).towns.values():
        assert not town.calendar.is_working_day(day), (town.info.name, day)


@pytest.mark.parametrize("day", [date(2026, 1, 4), date(2026, 2, 28), date(2026, 10, 10)])
def test_the_county_adjusted_working_days_are_worked_in_every_town(day: date) -> None:
    for town in load_county(DEMO_COUNTY_DIR).towns.values():
        assert town.calendar.is_working_day(day), (town.info.name, day)


def test_a_towns_own_day_off_is_only_its_own() -> None:
    towns = load_county(DEMO_COUNTY_DIR).towns
    off = {code: {d for d in (date(2026, 3, 20), date(2026, 9, 23)) if not t.calendar.is_working_day(d)}
           for code, t in towns.items()}
    assert off == {QINGHE: {date(2026, 3, 20)}, BAILU: set(), SHIQIAO: {date(2026, 9, 23)}}


def test_a_deadline_across_a_local_day_off_differs_between_towns() -> None:
    towns = load_county(DEMO_COUNTY_DIR).towns
    filed = datetime(2026, 3, 19, 10, 0, tzinfo=SHANGHAI)  # Thursday; 青禾镇 is off on Friday 20 March
    assert towns[BAILU].calendar.deadline(filed, "1wd") == datetime(2026, 3, 20, 17, 30, tzinfo=SHANGHAI)
    assert towns[QINGHE].calendar.deadline(filed, "1wd") == datetime(2026, 3, 23, 17, 30, tzinfo=SHANGHAI)


def test_the_same_item_code_has_each_towns_own_post() -> None:
    towns = load_county(DEMO_COUNTY_DIR).towns
    newborn = {code: (t.catalog["S001"].post, t.catalog["S001"].time_limit) for code, t in towns.items()}
    assert newborn == {QINGHE: ("household", "3wd"), BAILU: ("household", "3wd"),
                       SHIQIAO: ("household-window", "5wd")}
    holders = {code: towns[code].staff[towns[code].posts[post].a_holder].name for code, (post, _) in newborn.items()}
    assert len(set(holders.values())) == 3, holders
    assert {t.catalog["S002"].time_limit for t in towns.values()} == {"1wd", "2wd"}
    assert set(towns[SHIQIAO].catalog["J001"].joint_units) == {"land", "econ", "agri"}


def test_a_staff_id_is_unique_only_within_its_town() -> None:
    towns = load_county(DEMO_COUNTY_DIR).towns
    assert len({t.staff["s001"].name for t in towns.values()}) == 3


def test_a_one_town_folder_is_a_county_of_one() -> None:
    county = load_county(DEMO_TOWN_DIR)
    assert county.info is None
    assert county.only_town is not None
    assert county.only_town.code == QINGHE
    assert county.town(QINGHE) is county.only_town
    assert county.town(BAILU) is None


# --- errors ------------------------------------------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "county"
    shutil.copytree(DEMO_COUNTY_DIR, target)
    return target


def _edit(path: Path, change: Callable[[Any], object]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


@pytest.mark.parametrize(("name", "change", "message"), [
    ("bailu/town.yaml", lambda d: d.update(code="320981107"),
     r"bailu/town\.yaml: field code: 320981107 is not a town of county 321003"),
    ("county.yaml", lambda d: d["staff"][1].update(roles=["county_reader", "town_admin"]),
     r"county\.yaml: field staff\.1\.roles\.1: "),
    ("county.yaml", lambda d: d["staff"].append({"id": "c001", "name": "重名", "roles": ["county_reader"]}),
     r"county\.yaml: field staff\.4\.id: duplicate 'c001'"),
    ("county.yaml", lambda d: d.update(code="32100"),
     r"county\.yaml: field code: "),
    ("county.yaml", lambda d: d.update(holidays=["2026-02-30"]),
     r"county\.yaml: field holidays\.0: "),
    # A zone that is not IANA's stops start-up here, not at the first county ranking (a 500).
    ("county.yaml", lambda d: d.update(timezone="Asia/Shangai"),
     r"county\.yaml: field timezone: .*unknown time zone 'Asia/Shangai'"),
    ("county.yaml", lambda d: d.update(timezone="../../etc/passwd"),
     r"county\.yaml: field timezone: .*unknown time zone"),
    ("county.yaml", lambda d: d.update(timezone="UTC+8"),
     r"county\.yaml: field timezone: .*unknown time zone 'UTC\+8'"),
    ("bailu/town.yaml", lambda d: d.update(timezone="Beijing"),
     r"bailu/town\.yaml: field timezone: .*unknown time zone 'Beijing'"),
    ("shiqiao/posts.yaml", lambda d: d["posts"][0].update(b_holder="s999"),
     r"shiqiao/posts\.yaml: field posts\.0\.b_holder: unknown staff id 's999'"),
    ("bailu/catalog.yaml", lambda d: d["items"][0].update(time_limit="three days"),
     r"bailu/catalog\.yaml: field items\.0\.time_limit: "),
])
def test_a_wrong_file_names_the_town_folder_the_file_and_the_field(
        tmp_path: Path, name: str, change: Callable[[Any], object], message: str) -> None:
    folder = _copy(tmp_path)
    _edit(folder / name, change)
    with pytest.raises(TownConfigError, match=message):
        load_county(folder)


def test_two_town_folders_of_one_code_name_both(tmp_path: Path) -> None:
    # A copy of a town's folder whole (its places name its code too, so a changed town.yaml alone
    # would fail on its town.geojson first).
    folder = _copy(tmp_path)
    shutil.copytree(folder / "bailu", folder / "bailu2")
    with pytest.raises(TownConfigError, match=rf"bailu2/town\.yaml: field code: {BAILU} is also the code of the"
                                              r" town in .*/bailu$"):
        load_county(folder)


def test_a_county_without_towns_fails(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    for town in ("qinghe", "bailu", "shiqiao"):
        shutil.rmtree(folder / town)
    with pytest.raises(TownConfigError, match=r"county: a county needs at least one town folder"):
        load_county(folder)


def test_a_town_folder_missing_its_town_yaml_is_named_not_skipped(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "bailu" / "town.yaml").rename(folder / "bailu" / "town.yml")
    with pytest.raises(TownConfigError, match=r"bailu/town\.yaml: file is missing"):
        load_county(folder)


def test_broken_yaml_in_one_town_names_that_towns_file(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "qinghe" / "staff.yaml").write_text("staff: [{id: s000, name: 周建国\n", encoding="utf-8")
    with pytest.raises(TownConfigError, match=r"qinghe/staff\.yaml: not valid YAML"):
        load_county(folder)


def test_the_benchmarks_county_of_many_towns_loads_with_a_code_each(tmp_path: Path) -> None:
    from devstack.county_gen import make_county

    codes = make_county(tmp_path / "county", 60)
    county = load_county(tmp_path / "county")
    assert sorted(county.towns) == sorted(codes) and len(set(codes)) == 60
    assert all(code.startswith("321003") for code in codes)


def test_the_town_of_old_rows_is_the_only_town_or_a_named_town_of_the_county() -> None:
    assert load_county(DEMO_TOWN_DIR).town_of_old_rows(None) == QINGHE
    county = load_county(DEMO_COUNTY_DIR)
    assert county.town_of_old_rows(BAILU) == BAILU
    assert county.town_of_old_rows(None) is None  # a new county: no old rows to place


def test_a_mistyped_legacy_town_fails_start_up_naming_the_setting() -> None:
    with pytest.raises(TownConfigError, match=r"TOWNFLOW_LEGACY_TOWN_CODE=321003140 is not a town of this county"):
        load_county(DEMO_COUNTY_DIR).town_of_old_rows("321003140")
