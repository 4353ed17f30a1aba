"""A town's places (issue #30): the demo county's GeoJSON as its generator writes it, where a point
falls, and wrong files that stop start-up naming the file, the feature and the problem."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.place_gen import demo_places
from townflow_shared.county import load_county
from townflow_shared.place import Located
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import TownConfigError, load_town

BAILU = "321003107"


def test_the_committed_demo_places_are_what_the_generator_writes() -> None:
    files = demo_places()
    assert len(files) == 12  # three files of each of the county's towns, and of the one-town demo
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, f"{path}: run python -m devstack.place_gen"


def test_every_demo_town_has_its_villages_and_cells() -> None:
    county = load_county(DEMO_COUNTY_DIR)
    for town in county.towns.values():
        assert town.places is not None
        assert set(town.places.villages) == set(town.villages)
        assert len(town.places.cells) == 4 * len(town.villages)
        assert all(cell.startswith(town.code) and len(cell) == 15 for cell in town.places.cells)
    assert load_town(DEMO_TOWN_DIR).places is not None


def test_a_point_is_placed_in_its_village_and_cell() -> None:
    places = load_county(DEMO_COUNTY_DIR).towns[BAILU].places
    assert places is not None
    # 白鹭镇 spans 119.36–119.42 E, 32.38–32.425 N; 鹭洲村 (V01) is its north-west sixth.
    assert places.locate(119.365, 32.42) == Located("V01", "321003107001001")
    assert places.locate(119.375, 32.405) == Located("V01", "321003107001004")
    assert places.locate(119.41, 32.39) == Located("V05", "321003107005004")  # the south row: V04, V05
    assert places.locate(119.30, 32.40) is None  # 青禾镇, next door
    assert places.locate(119.39, 32.50) is None


def test_a_point_on_a_shared_border_goes_to_the_first_village_by_code() -> None:
    places = load_county(DEMO_COUNTY_DIR).towns[BAILU].places
    assert places is not None
    assert places.locate(119.38, 32.42) == Located("V01", "321003107001002")


def test_a_town_without_geojson_takes_no_places(tmp_path: Path) -> None:
    folder = _bailu(tmp_path)
    for name in ("town.geojson", "villages.geojson", "grid.geojson"):
        (folder / name).unlink()
    posts = yaml.safe_load((folder / "posts.yaml").read_text(encoding="utf-8"))
    posts["posts"] = [p for p in posts["posts"] if not p.get("cells")]
    (folder / "posts.yaml").write_text(yaml.safe_dump(posts, allow_unicode=True), encoding="utf-8")
    assert load_town(folder).places is None


def test_the_cells_of_a_post() -> None:
    town = load_county(DEMO_COUNTY_DIR).towns[BAILU]
    assert town.cell_posts["321003107001003"].code == "grid-luzhou"
    assert "321003107002001" not in town.cell_posts


def _bailu(tmp_path: Path) -> Path:
    folder = tmp_path / "bailu"
    shutil.copytree(DEMO_COUNTY_DIR / "bailu", folder)
    return folder


def _edit(name: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        change(data)
        (folder / name).write_text(json.dumps(data), encoding="utf-8")
    return apply


def _ring(data: dict[str, Any], index: int) -> list[list[float]]:
    ring: list[list[float]] = data["features"][index]["geometry"]["coordinates"][0]
    return ring


def _open_ring(data: dict[str, Any]) -> None:
    _ring(data, 1).pop()


def _bowtie(data: dict[str, Any]) -> None:
    ring = _ring(data, 2)
    ring[1], ring[2] = ring[2], ring[1]  # the edges cross: a self-intersection


def _move(index: int, east: float = 0.0, north: float = 0.0) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for position in _ring(data, index):
            position[0] += east
            position[1] += north
    return change


def _set(index: int, **properties: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["features"][index]["properties"].update(properties)
    return change


def _drop(index: int) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        del data["features"][index]
    return change


def _swap_lon_lat(data: dict[str, Any]) -> None:
    for position in _ring(data, 0):
        position.reverse()
        position[1] += 60  # 32 → 92: no latitude


@pytest.mark.parametrize(("wrong", "message"), [
    (_edit("villages.geojson", _open_ring),
     r"bailu/villages\.geojson: feature 1 \(village V02\): a ring is not closed"),
    (_edit("villages.geojson", _bowtie),
     r"bailu/villages\.geojson: feature 2 \(village V03\): not a valid polygon: Self-intersection"),
    (_edit("villages.geojson", _move(0, north=0.01)),
     r"bailu/villages\.geojson: feature 0 \(village V01\): not inside the town \(town\.geojson\), by more than 2 m"),
    (_edit("villages.geojson", _move(1, east=-0.005)),
     r"bailu/villages\.geojson: village V01 and village V02 overlap by more than 2 m"),
    (_edit("villages.geojson", _set(3, village="V09")),
     r"bailu/villages\.geojson: feature 3 \(village V09\): not a village of town\.yaml"),
    (_edit("villages.geojson", _drop(4)),
     r"bailu/villages\.geojson: no feature for the villages V05 of town\.yaml"),
    (_edit("villages.geojson", _set(0, number="1")),
     r"bailu/villages\.geojson: feature 0 \(village V01\): property number '1' is not 3 digits"),
    (_edit("grid.geojson", _move(0, east=-0.002)),
     r"bailu/grid\.geojson: feature 0 \(cell 321003107001001\): not inside its village V01"),
    (_edit("grid.geojson", _set(5, code="321003104002002")),
     r"bailu/grid\.geojson: feature 5 \(cell 321003104002002\): a cell's code is 15 digits starting with"
     r" the town's 321003107"),
    (_edit("grid.geojson", _set(5, code="321003107009002")),
     r"bailu/grid\.geojson: feature 5 \(cell 321003107009002\): digits 10-12 \(009\) are no village's number"),
    (_edit("town.geojson", _swap_lon_lat),
     r"bailu/town\.geojson: feature 0 \(town 321003107\): position .* is not a WGS 84 longitude, latitude"),
    (_edit("town.geojson", _set(0, code="321003104")),
     r"bailu/town\.geojson: feature 0: property code '321003104' is not the town's code 321003107"),
    (lambda folder: (folder / "grid.geojson").unlink(),
     r"bailu/grid\.geojson: file is missing \(a town's places are town\.geojson, villages\.geojson, grid\.geojson"),
    (lambda folder: (folder / "grid.geojson").write_text("{", encoding="utf-8"),
     r"bailu/grid\.geojson: not valid JSON"),
])
def test_a_wrong_geojson_file_names_the_file_the_feature_and_the_problem(
        tmp_path: Path, wrong: Callable[[Path], None], message: str) -> None:
    folder = _bailu(tmp_path)
    wrong(folder)
    with pytest.raises(TownConfigError, match=message):
        load_town(folder)


def test_the_demo_files_pass_after_a_copy(tmp_path: Path) -> None:
    # the copies above fail only by their edits
    assert load_town(_bailu(tmp_path)).places is not None


@pytest.mark.parametrize(("cells", "message"), [
    (["321003107009001"], r"bailu/posts\.yaml: field posts\.20\.cells\.0: unknown grid cell '321003107009001'"),
    (["321003107002001", "321003107002001"],
     r"bailu/posts\.yaml: field posts\.20\.cells\.1: grid cell 321003107002001 is held by post 'grid-extra'"),
    (["321003107001001"], r"bailu/posts\.yaml: field posts\.20\.cells\.0: grid cell 321003107001001 is held by"
                          r" post 'grid-luzhou' already"),
])
def test_a_post_names_known_cells_each_held_once(tmp_path: Path, cells: list[str], message: str) -> None:
    folder = _bailu(tmp_path)
    posts = yaml.safe_load((folder / "posts.yaml").read_text(encoding="utf-8"))
    posts["posts"].append({"code": "grid-extra", "module": "safety", "a_holder": "s017", "b_holder": "s018",
                           "cells": cells})
    (folder / "posts.yaml").write_text(yaml.safe_dump(posts, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TownConfigError, match=message):
        load_town(folder)
