"""The town configuration: the demo town is complete and a wrong file names file, field, problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import TownConfigError, load_town


def test_demo_town_is_realistic() -> None:
    town = load_town(DEMO_TOWN_DIR)
    kinds = {item.task_kind for item in town.catalog.values()}
    assert len(town.catalog) >= 25
    assert kinds == {"service", "enforcement", "joint_visit"}
    assert {i.kind for i in town.catalog.values()} == {"service", "enforcement", "territorial"}
    assert any(not i.delegated for i in town.catalog.values())
    house = next(i for i in town.catalog.values() if i.name == "农村建房申请")
    assert set(house.joint_units) == {"land", "planning", "agri"}
    module_names = {m.name for m in town.modules.values()}
    assert {"经济发展办公室", "社会事务办公室", "组织建设办公室", "和谐稳定办公室",
            "便民服务中心", "综合行政执法队", "指挥中心", "国土所", "市场监管所", "司法所", "派出所"} <= module_names
    assert {p.name for p in town.posts.values()} >= {"人武岗", "退役军人服务岗"}
    assert sum(s.enforcement_certificate for s in town.staff.values()) >= 4
    assert town.rules.dispatch.default_load_cap == 20


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "town"
    shutil.copytree(DEMO_TOWN_DIR, target)
    return target


def _edit(folder: Path, name: str, change: object) -> None:
    data = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    (folder / name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


@pytest.mark.parametrize(("name", "change", "message"), [
    ("catalog.yaml", lambda d: d["items"][0].update(time_limit="five days"),
     r"catalog.yaml: field items.0.time_limit: .*'5wd'"),
    ("catalog.yaml", lambda d: d["items"][1].update(post="nowhere"),
     r"catalog.yaml: field items.1.post: unknown post 'nowhere'"),
    ("catalog.yaml", lambda d: d["items"][2].update(difficulty=3),
     r"catalog.yaml: field items.2.difficulty: .*less than or equal to 2"),
    ("posts.yaml", lambda d: d["posts"][0].update(b_holder="s999"),
     r"posts.yaml: field posts.0.b_holder: unknown staff id 's999'"),
    ("town.yaml", lambda d: d.update(timezone="Mars/Olympus"),
     r"town.yaml: field timezone: .*unknown time zone"),
    ("town.yaml", lambda d: d.update(holidays=["2026-13-01"]),
     r"town.yaml: field holidays.0: "),
    ("staff.yaml", lambda d: d["staff"].append(dict(d["staff"][0])),
     r"staff.yaml: field staff.\d+.id: duplicate 's000'"),
    ("rules.yaml", lambda d: d["dispatch"].update(return_window="soon"),
     r"rules.yaml: field dispatch.return_window: "),
])
def test_a_wrong_file_names_the_file_the_field_and_the_problem(
        tmp_path: Path, name: str, change: object, message: str) -> None:
    folder = _copy(tmp_path)
    _edit(folder, name, change)
    with pytest.raises(TownConfigError, match=message):
        load_town(folder)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "posts.yaml").unlink()
    with pytest.raises(TownConfigError, match=r"posts\.yaml: file is missing"):
        load_town(folder)
