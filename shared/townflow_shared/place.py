"""A town's places (issue #30): its boundary, its villages and its grid cells, as GeoJSON beside
its YAML files, validated at start-up; and where a point (WGS 84 longitude, latitude) falls.

Three files, all or none (a town without them takes no point):
- `town.geojson`: one polygon feature, the town's boundary (property `code`: the town's 9 digits);
- `villages.geojson`: a polygon feature per village of town.yaml (properties `village`: its code,
  `number`: its 3-digit community/village code of GB/T 30428);
- `grid.geojson`: a polygon feature per grid cell (单元网格; property `code`: 15 digits, GB/T 30428:
  district 6 + street/town 3 + community/village 3 + cell 3, so the town's 9 and a village's number).

A wrong file stops start-up with a `TownConfigError` naming the file, the feature and the problem:
rings closed, polygons valid, villages inside the town and not overlapping, cells inside their
village and not overlapping, beyond BOUNDARY_TOLERANCE_M (shared borders digitised twice differ by
a little). Shapely (GEOS) does the geometry: the library the field checks polygons with.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree
from shapely.validation import explain_validity

from .checks import present

FILES = ("town.geojson", "villages.geojson", "grid.geojson")
# How far a border may stray past another (a village over the town's edge, two villages or cells
# over each other) before the file is wrong: boundaries digitised twice differ by about a metre.
BOUNDARY_TOLERANCE_M = 2.0
METRES_PER_DEGREE = 111_320.0  # of latitude, and of longitude at the equator (WGS 84, near enough here)
CELL_CODE = re.compile(r"^\d{15}$")
VILLAGE_NUMBER = re.compile(r"^\d{3}$")


class PlaceError(ValueError):
    """A GeoJSON file is wrong: `str()` names the file, the feature and the problem."""


@dataclass(frozen=True)
class Located:
    """Where a point falls in a town."""

    village: str  # the village's code (town.yaml)
    cell: str | None  # the grid cell's 15-digit code; None where no cell covers the point


class TownPlaces:
    """A town's boundary, villages and grid cells, checked; `locate` answers where a point is.
    (A plain class: the town's pydantic model holds it as it is.)"""

    def __init__(self, boundary: BaseGeometry, villages: dict[str, BaseGeometry], numbers: dict[str, str],
                 cells: dict[str, BaseGeometry]) -> None:
        self.boundary = boundary
        self.villages = villages  # by village code
        self.numbers = numbers  # village code -> its 3-digit number
        self.cells = cells  # by 15-digit code
        self._village_index = STRtree(list(villages.values()))
        self._cell_index = STRtree(list(cells.values()))

    def locate(self, longitude: float, latitude: float) -> Located | None:
        """The village and grid cell of a point; None when the point is outside the town. A point on
        a border between two villages goes to the first by code (a deterministic answer)."""
        point = Point(longitude, latitude)
        if not self.boundary.covers(point):
            return None
        codes = list(self.villages)
        village = min((codes[i] for i in self._village_index.query(point, predicate="covered_by")), default=None)
        if village is None:  # in the town, in no village's polygon: the nearest village, within tolerance
            nearest = codes[int(present(self._village_index.nearest(point), "a town's nearest village"))]
            if self.villages[nearest].distance(point) > _degrees(BOUNDARY_TOLERANCE_M):
                return None
            village = nearest
        cell_codes = list(self.cells)
        prefix = self.numbers[village]
        cells = sorted(c for i in self._cell_index.query(point, predicate="covered_by")
                       if (c := cell_codes[i])[9:12] == prefix)
        return Located(village, cells[0] if cells else None)

    def village_of_cell(self, cell: str) -> str | None:
        return next((v for v, n in self.numbers.items() if cell[9:12] == n), None)


def _degrees(metres: float) -> float:
    return metres / METRES_PER_DEGREE


def has_places(folder: Path) -> bool:
    return any((folder / name).exists() for name in FILES)


def load_places(folder: Path, town_code: str, villages: list[str]) -> TownPlaces:
    """The town's three GeoJSON files, checked against each other and town.yaml's `villages` (their
    codes, in order); PlaceError on the first problem."""
    for name in FILES:
        if not (folder / name).exists():
            raise PlaceError(f"{folder / name}: file is missing (a town's places are {', '.join(FILES)}, all or none)")
    town_path, villages_path, grid_path = (folder / name for name in FILES)
    town_features = _features(town_path)
    if len(town_features) != 1:
        raise PlaceError(f"{town_path}: expected one feature (the town's boundary), found {len(town_features)}")
    code = _property(town_path, 0, town_features[0], "code")
    if code != town_code:
        raise PlaceError(f"{town_path}: feature 0: property code {code!r} is not the town's code {town_code}")
    boundary = _polygon(town_path, f"feature 0 (town {code})", town_features[0])
    tolerance = _degrees(BOUNDARY_TOLERANCE_M)
    grown_town = boundary.buffer(tolerance)

    village_shapes: dict[str, BaseGeometry] = {}
    numbers: dict[str, str] = {}
    for i, feature in enumerate(_features(villages_path)):
        village = _property(villages_path, i, feature, "village")
        number = _property(villages_path, i, feature, "number")
        where = f"feature {i} (village {village})"
        if village not in villages:
            raise PlaceError(f"{villages_path}: {where}: not a village of town.yaml (its villages: {', '.join(villages)})")
        if village in village_shapes:
            raise PlaceError(f"{villages_path}: {where}: the village has a feature already")
        if not VILLAGE_NUMBER.fullmatch(number):
            raise PlaceError(f"{villages_path}: {where}: property number {number!r} is not 3 digits"
                             " (the community/village part of GB/T 30428 grid codes)")
        if number in numbers.values():
            raise PlaceError(f"{villages_path}: {where}: number {number} is also another village's")
        polygon = _polygon(villages_path, where, feature)
        if not grown_town.contains(polygon):
            raise PlaceError(f"{villages_path}: {where}: not inside the town (town.geojson), by more than"
                             f" {BOUNDARY_TOLERANCE_M:g} m")
        village_shapes[village], numbers[village] = polygon, number
    missing = [v for v in villages if v not in village_shapes]
    if missing:
        raise PlaceError(f"{villages_path}: no feature for the villages {', '.join(missing)} of town.yaml")
    _no_overlaps(villages_path, "village", village_shapes, tolerance)

    cell_shapes: dict[str, BaseGeometry] = {}
    by_number = {n: v for v, n in numbers.items()}
    for i, feature in enumerate(_features(grid_path)):
        cell = _property(grid_path, i, feature, "code")
        where = f"feature {i} (cell {cell})"
        if not CELL_CODE.fullmatch(cell) or not cell.startswith(town_code):
            raise PlaceError(f"{grid_path}: {where}: a cell's code is 15 digits starting with the town's {town_code}"
                             " (GB/T 30428: district 6 + town 3 + village 3 + cell 3)")
        if (its_village := by_number.get(cell[9:12])) is None:
            raise PlaceError(f"{grid_path}: {where}: digits 10-12 ({cell[9:12]}) are no village's number"
                             " (villages.geojson)")
        if cell in cell_shapes:
            raise PlaceError(f"{grid_path}: {where}: the cell has a feature already")
        polygon = _polygon(grid_path, where, feature)
        if not village_shapes[its_village].buffer(tolerance).contains(polygon):
            raise PlaceError(f"{grid_path}: {where}: not inside its village {its_village}, by more than"
                             f" {BOUNDARY_TOLERANCE_M:g} m")
        cell_shapes[cell] = polygon
    _no_overlaps(grid_path, "cell", cell_shapes, tolerance)
    return TownPlaces(boundary, village_shapes, numbers, cell_shapes)


def _features(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlaceError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise PlaceError(f"{path}: not a GeoJSON FeatureCollection")
    for i, feature in enumerate(data["features"]):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise PlaceError(f"{path}: feature {i}: not a GeoJSON Feature")
    return data["features"]


def _property(path: Path, index: int, feature: dict[str, Any], name: str) -> str:
    value = (feature.get("properties") or {}).get(name)
    if not isinstance(value, str) or not value:
        raise PlaceError(f"{path}: feature {index}: property {name} is missing (a string)")
    return value


def _polygon(path: Path, where: str, feature: dict[str, Any]) -> BaseGeometry:
    """The feature's Polygon or MultiPolygon, its rings closed and in WGS 84's range, valid."""
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise PlaceError(f"{path}: {where}: the geometry is not a Polygon or MultiPolygon")
    coordinates = geometry.get("coordinates")
    polygons = [coordinates] if geometry["type"] == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        raise PlaceError(f"{path}: {where}: no coordinates")
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            raise PlaceError(f"{path}: {where}: a polygon without rings")
        for ring in polygon:
            _check_ring(path, where, ring)
    # Shapely would close an open ring silently: checked above, where the file's author can be told.
    geom = shape(geometry)
    if not geom.is_valid:
        raise PlaceError(f"{path}: {where}: not a valid polygon: {explain_validity(geom)}")
    shapely.prepare(geom)  # point-in-polygon at every filing
    return geom


def _check_ring(path: Path, where: str, ring: Any) -> None:
    if not isinstance(ring, list) or len(ring) < 4:
        raise PlaceError(f"{path}: {where}: a ring needs at least 4 positions (the first repeated last)")
    for position in ring:
        if (not isinstance(position, list) or len(position) < 2
                or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in position[:2])):
            raise PlaceError(f"{path}: {where}: a position is not [longitude, latitude]: {position!r}")
        longitude, latitude = position[0], position[1]
        if not (-180 <= longitude <= 180 and -90 <= latitude <= 90):
            raise PlaceError(f"{path}: {where}: position {position!r} is not a WGS 84 longitude, latitude")
    if ring[0][:2] != ring[-1][:2]:
        raise PlaceError(f"{path}: {where}: a ring is not closed (its last position must repeat its first)")


def _no_overlaps(path: Path, kind: str, shapes: dict[str, BaseGeometry], tolerance: float) -> None:
    """No two of `shapes` overlap by more than `tolerance` (each shrunk by it, none meet)."""
    codes = list(shapes)
    shrunk = [shapes[c].buffer(-tolerance) for c in codes]
    tree = STRtree(shrunk)
    for i, j in zip(*tree.query(shrunk, predicate="intersects"), strict=True):
        if i < j:
            raise PlaceError(f"{path}: {kind} {codes[i]} and {kind} {codes[j]} overlap by more than"
                             f" {BOUNDARY_TOLERANCE_M:g} m")
