"""The town's map (issue #30), drawn here as SVG from its GeoJSON (townflow_shared.place): no tile
server (none is reachable from a county's intranet), no map library, no script to draw it. A
town is a few kilometres across, so an equirectangular projection scaled by the cosine of the
town's middle latitude is true to well under a pixel; the picker's script (static/picker.js)
inverts the same formula from the numbers the SVG carries (`data-west`, `data-north`, `data-kx`,
`data-ky`). Pure: shapes and points in, plain data out; the template (_map.html) writes the SVG."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from townflow_shared.place import TownPlaces

WIDTH = 800  # of the SVG's coordinates; the page scales it to its box
PADDING = 12  # around the town, so a point on its edge is drawn whole
HEAT_LEVELS = 4  # shades of a hotspot cell (heat-1 … heat-4), and heat-0 for none


@dataclass(frozen=True)
class Projection:
    """Longitude, latitude ↔ the SVG's x, y (y down): x = (lon − west)·kx + pad, y = (north − lat)·ky + pad."""

    west: float
    north: float
    kx: float  # SVG units per degree of longitude: ky × cos(middle latitude)
    ky: float  # SVG units per degree of latitude
    width: float
    height: float

    @classmethod
    def fit(cls, bounds: tuple[float, float, float, float], width: float = WIDTH,
            padding: float = PADDING) -> Projection:
        """The projection drawing `bounds` (west, south, east, north) `width` wide, its height as the
        town's shape asks."""
        west, south, east, north = bounds
        shrink = math.cos(math.radians((south + north) / 2))  # a degree of longitude is this much shorter
        ky = (width - 2 * padding) / max((east - west) * shrink, north - south, 1e-9)  # the longer side fits
        height = round((north - south) * ky + 2 * padding, 1)
        return cls(west - padding / (ky * shrink), north + padding / ky, ky * shrink, ky, width, height)

    def xy(self, longitude: float, latitude: float) -> tuple[float, float]:
        return round((longitude - self.west) * self.kx, 1), round((self.north - latitude) * self.ky, 1)

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        """The inverse (what static/picker.js computes from a click)."""
        return self.west + x / self.kx, self.north - y / self.ky


def path_of(shape: BaseGeometry, projection: Projection) -> str:
    """An SVG path's `d` for a Polygon or MultiPolygon: each ring a closed subpath (holes drawn with
    fill-rule evenodd)."""
    polygons = shape.geoms if isinstance(shape, MultiPolygon) else [shape] if isinstance(shape, Polygon) else []
    parts = []
    for polygon in polygons:
        for ring in (polygon.exterior, *polygon.interiors):
            points = [projection.xy(x, y) for x, y in ring.coords[:-1]]
            parts.append("M" + " L".join(f"{x:g} {y:g}" for x, y in points) + " Z")
    return " ".join(parts)


def heat_levels(counts: Mapping[str, int], levels: int = HEAT_LEVELS) -> dict[str, int]:
    """Each cell's shade, 0 (no matter) to `levels` (the busiest cell's), in equal steps of the
    busiest count: a cell with any matter is at least 1."""
    busiest = max(counts.values(), default=0)
    if busiest <= 0:
        return dict.fromkeys(counts, 0)
    return {cell: math.ceil(levels * n / busiest) if n > 0 else 0 for cell, n in counts.items()}


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    d: str
    label_at: tuple[float, float]  # where its name is written (a point inside it)
    heat: int = 0


@dataclass(frozen=True)
class Marker:
    """A matter on the map: a link to its task, named in words (every point a link with a name)."""

    x: float
    y: float
    href: str
    label: str
    colour: str
    cell: str | None


@dataclass(frozen=True)
class TownMap:
    projection: Projection
    villages: list[Area]
    cells: list[Area]
    markers: list[Marker] = field(default_factory=list)


def town_map(places: TownPlaces, village_names: Mapping[str, str], heat: Mapping[str, int] | None = None) -> TownMap:
    """The town's villages and grid cells projected to fit the map, cells shaded by `heat` (levels)."""
    projection = Projection.fit(places.boundary.bounds)

    def area(code: str, name: str, shape: BaseGeometry, level: int = 0) -> Area:
        inside = shape.representative_point()
        return Area(code, name, path_of(shape, projection), projection.xy(inside.x, inside.y), level)

    villages = [area(code, village_names.get(code, code), shape) for code, shape in places.villages.items()]
    cells = [area(code, f"网格 {code}", shape, (heat or {}).get(code, 0)) for code, shape in sorted(places.cells.items())]
    return TownMap(projection, villages, cells)


def with_markers(town: TownMap, markers: Iterable[tuple[float, float, str, str, str, str | None]]) -> TownMap:
    """The map with its matters: (longitude, latitude, href, label, colour, cell) each."""
    projected = [Marker(*town.projection.xy(lon, lat), href, label, colour, cell)
                 for lon, lat, href, label, colour, cell in markers]
    return TownMap(town.projection, town.villages, town.cells, projected)
