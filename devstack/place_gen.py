"""The demo county's places (issue #30): each demo town's boundary, villages and grid cells as
GeoJSON beside its YAML files, laid out as rectangles around 32.4° N, 119.4° E (the real 321003,
邗江区 of 扬州, in 江苏; the county and its towns are fictional). Deterministic: run again, the same
files (`python -m devstack.place_gen`; a test keeps the committed files equal to what it writes).

Each town is a rectangle of about 5.6 km by 5 km, side by side from west to east; its villages two
rows of rectangles; each village 2 by 2 grid cells (单元网格, GB/T 30428 codes: the town's 9 digits,
the village's number, the cell's)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR

WEST, SOUTH = 119.30, 32.38  # the south-west corner of the first town
TOWN_WIDTH, TOWN_HEIGHT = 0.06, 0.045  # degrees: about 5.6 km by 5 km at this latitude
CELLS_ACROSS = CELLS_DOWN = 2
# West to east, as the towns' codes go.
TOWNS = ("qinghe", "bailu", "shiqiao")


def _rectangle(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]}


def _feature(geometry: dict[str, Any], **properties: str) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def _collection(features: list[dict[str, Any]]) -> str:
    """A FeatureCollection, a feature a line (a diff of a moved border names its feature)."""
    lines = ",\n".join(json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features)
    return '{"type":"FeatureCollection","features":[\n' + lines + "\n]}\n"


def town_places(info: dict[str, Any], west: float, south: float) -> dict[str, str]:
    """The three files' text of a town (its town.yaml read) whose south-west corner is given."""
    code, villages = info["code"], info["villages"]
    east, north = west + TOWN_WIDTH, south + TOWN_HEIGHT
    town = _collection([_feature(_rectangle(west, south, east, north), code=code, name=info["name"])])
    top = math.ceil(len(villages) / 2)
    rows = [villages[:top], villages[top:]]  # the north row, then the south row
    village_features, cell_features = [], []
    number = 0
    for r, row in enumerate(rows):
        row_north = north - r * TOWN_HEIGHT / 2
        row_south = row_north - TOWN_HEIGHT / 2
        width = TOWN_WIDTH / len(row)
        for c, village in enumerate(row):
            number += 1
            v_west, v_east = west + c * width, west + (c + 1) * width
            village_features.append(_feature(_rectangle(v_west, row_south, v_east, row_north),
                                             village=village["code"], number=f"{number:03d}", name=village["name"]))
            cell = 0
            for down in range(CELLS_DOWN):
                for across in range(CELLS_ACROSS):
                    cell += 1
                    cw = (v_east - v_west) / CELLS_ACROSS
                    ch = (row_north - row_south) / CELLS_DOWN
                    cell_features.append(_feature(
                        _rectangle(v_west + across * cw, row_north - (down + 1) * ch,
                                   v_west + (across + 1) * cw, row_north - down * ch),
                        code=f"{code}{number:03d}{cell:03d}"))
    return {"town.geojson": town, "villages.geojson": _collection(village_features),
            "grid.geojson": _collection(cell_features)}


def demo_places() -> dict[Path, str]:
    """Every demo file's path and text: the county's three towns, and the one-town demo (青禾镇)."""
    files: dict[Path, str] = {}
    for n, name in enumerate(TOWNS):
        folder = DEMO_COUNTY_DIR / name
        info = yaml.safe_load((folder / "town.yaml").read_text(encoding="utf-8"))
        for file, text in town_places(info, WEST + n * TOWN_WIDTH, SOUTH).items():
            files[folder / file] = text
            if name == "qinghe":  # the one-town demo is 青禾镇 on its own
                files[DEMO_TOWN_DIR / file] = text
    return files


def main() -> None:
    for path, text in demo_places().items():
        path.write_text(text, encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
