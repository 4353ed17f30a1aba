"""地图 and 热点 (issue #30): the town's villages and grid cells drawn from its GeoJSON as SVG
(town_map.py), its open located matters on them as links to their tasks, coloured by urgency and
filtered as the board's lists are; and the hotspots — located matters per grid cell of a month
by item, the cells that rose most — as a table and as the cells shaded on the same map."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import labels, task_lists, town_map
from ..accounts import Person
from ..errors import ServiceError
from ..web import console_of, guard, render

router = APIRouter()
# A town's open located matters drawn at most (dispatch's largest list): a busy town has a few
# hundred open at a time; past this the page says how many it left out.
MAP_MAX = 1000
CELL_CODE = re.compile(r"\d{15}")  # a grid cell's code (GB/T 30428: district 6, town 3, village 3, cell 3)


def _town_code(request: Request, person: Person) -> str:
    """The person's town; a county role's pick (the first by default)."""
    county = console_of(request).county
    return person.town or request.query_params.get("town") or next(iter(county.towns))


def marker_label(ticket_no: str, item: str, colour: str, village: str, cell: str | None) -> str:
    """A point's name for a screen reader (and its tooltip): what, how urgent, where."""
    where = labels.cell_name(village, cell) if cell else village
    return f"{ticket_no} {item}（{labels.COLOURS.get(colour, colour)}色，{where}）"


def _names(request: Request, town_code: str) -> dict[str, str]:
    town = console_of(request).county.town(town_code)
    return {v.code: v.name for v in town.info.villages} if town else {}


@router.get("/map", response_class=HTMLResponse)
async def map_page(request: Request) -> Response:
    """The town's map with its open located matters (the board's filters narrow them)."""
    person = guard(request, "map")
    console = console_of(request)
    town_code = _town_code(request, person)
    town = console.county.town(town_code)
    wanted = task_lists.TaskList.of(request.query_params)
    context: dict[str, Any] = {"town": town_code if person.county_wide else "", "wanted": wanted,
                               "choices": task_lists.choices(request, town_code), "phases": task_lists.PHASES,
                               "towns": [(t.code, t.info.name) for t in console.county.towns.values()]
                               if person.county_wide else [], "error": None, "drawn": None, "tasks": [],
                               "cell": "", "cell_name": ""}
    if town is None or town.places is None:
        return render(request, "map.html", title="地图", **context)
    params = wanted.params(town_code if person.county_wide else None, 0, MAP_MAX)
    params.pop("offset")
    # One grid cell's matters (the task page's link): dispatch filters by the cell's code.
    cell = request.query_params.get("cell", "")
    if CELL_CODE.fullmatch(cell) and cell in town.places.cells:
        params["cell"] = context["cell"] = cell
        context["cell_name"] = labels.cell_name(_names(request, town_code).get(
            town.places.village_of_cell(cell) or "", ""), cell)
    try:
        tasks = await console.services.call(person, "dispatch", "GET", "/v1/tasks",
                                            params=params | {"located": "true"})
    except ServiceError as exc:
        return render(request, "map.html", exc.status if exc.status >= 400 else 502, title="地图",
                      **context | {"error": exc})
    here = console.names.of(town_code)
    base = town_map.town_map(town.places, _names(request, town_code))
    drawn = town_map.with_markers(base, (
        (t["point"]["longitude"], t["point"]["latitude"], f"/board/tasks/{t['task_id']}",
         marker_label(t["ticket_no"], here.item(t["item_code"]), t["colour"], here.village(t["village"]),
                      t.get("grid_cell")), t["colour"], t.get("grid_cell"))
        for t in tasks if t.get("point")))
    return render(request, "map.html", title="地图", **context | {"drawn": drawn, "tasks": tasks, "town_name": town.info.name,
                                                                 "full": len(tasks) >= MAP_MAX})


@router.get("/hotspots", response_class=HTMLResponse)
async def hotspots_page(request: Request, period: str | None = None) -> Response:
    """热点: the month's located matters per grid cell (a table, busiest first, and the map shaded)."""
    person = guard(request, "hotspots")
    console = console_of(request)
    town_code = _town_code(request, person)
    town = console.county.town(town_code)
    context: dict[str, Any] = {"town": town_code if person.county_wide else "", "period": period or "",
                               "towns": [(t.code, t.info.name) for t in console.county.towns.values()]
                               if person.county_wide else [], "error": None, "drawn": None, "found": None}
    try:
        found = await console.services.call(person, "appraisal", "GET", "/v1/hotspots", params={
            "period": period or None, "town": town_code if person.county_wide else None})
    except ServiceError as exc:
        return render(request, "hotspots.html", exc.status if exc.status >= 400 else 502, title="热点",
                      **context | {"error": exc})
    drawn = None
    if town is not None and town.places is not None:
        heat = town_map.heat_levels({c["grid_cell"]: c["count"] for c in found["cells"]})
        drawn = town_map.town_map(town.places, _names(request, town_code), heat)
    rising = {cell: place for place, cell in enumerate(found["rising"], 1)}
    return render(request, "hotspots.html", title="热点", **context | {
        "found": found, "drawn": drawn, "rising": rising, "period": found["period"]})
