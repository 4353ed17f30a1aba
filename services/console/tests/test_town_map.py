"""The town's map (issue #30): the projection and its inverse (static/picker.js computes the
same), the SVG paths, the hotspot shades, and the 地图, 热点 and filing pages with dispatch and
appraisal answered by a fake transport."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx
import pytest
from shapely.geometry import MultiPolygon, Polygon

from console.accounts import Person
from console.pages.intake import point_of
from console.pages.place import marker_label
from console.town_map import Projection, heat_levels, path_of, town_map, with_markers
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .test_console_lifecycle import _console

QINGHE = "321003104"
TOWN = load_county(DEMO_COUNTY_DIR).towns[QINGHE]
COMMAND = Person("qh-s001", "s001", "指挥中心", frozenset({"staff", "command_centre"}), QINGHE, "青禾镇")
CLERK = Person("qh-s010", "s010", "窗口员", frozenset({"staff", "clerk"}), QINGHE, "青禾镇")
CELL = "321003104001001"
TASK = {"task_id": "00000000-0000-0000-0000-0000000000t1", "town_code": QINGHE, "ticket_no": f"{QINGHE}-20270105-00001",
        "item_code": "T001", "colour": "red", "village": "V01", "point": {"longitude": 119.305, "latitude": 32.42},
        "grid_cell": CELL}


def test_the_projection_fits_the_longer_side_keeps_metres_square_and_inverts() -> None:
    p = Projection.fit((119.30, 32.38, 119.36, 32.425), width=800, padding=10)
    assert p.xy(119.30, 32.425) == (10.0, 10.0)  # the north-west corner, inside the padding
    east, south = p.xy(119.36, 32.38)
    assert east == 790.0 and south < 790  # wider than tall: the width fits
    assert p.kx / p.ky == pytest.approx(math.cos(math.radians(32.4025)))  # a metre east as long as a metre north
    assert p.lonlat(*p.xy(119.3123, 32.4011)) == pytest.approx((119.3123, 32.4011), abs=1e-5)  # within a metre


def test_a_tall_town_fits_its_height_to_the_width() -> None:
    p = Projection.fit((119.0, 32.0, 119.01, 32.1), width=400, padding=0)
    assert p.height == 400.0 and p.xy(119.01, 32.0)[0] < 400


def test_paths_close_every_ring_of_every_polygon_holes_included() -> None:
    p = Projection(west=0, north=10, kx=1, ky=1, width=10, height=10)
    square = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2)]])
    assert path_of(square, p) == "M0 10 L4 10 L4 6 L0 6 Z M1 9 L2 9 L2 8 Z"
    two = MultiPolygon([Polygon([(0, 0), (1, 0), (1, 1)]), Polygon([(5, 5), (6, 5), (6, 6)])])
    assert path_of(two, p).count("Z") == 2


def test_heat_is_in_equal_steps_of_the_busiest_cell_and_any_matter_shows() -> None:
    assert heat_levels({"a": 8, "b": 4, "c": 1, "d": 0}) == {"a": 4, "b": 2, "c": 1, "d": 0}
    assert heat_levels({"a": 0}) == {"a": 0} and heat_levels({}) == {}


def test_the_towns_map_has_its_villages_cells_and_markers_in_place() -> None:
    assert TOWN.places is not None
    drawn = with_markers(town_map(TOWN.places, {"V01": "青禾村"}, {CELL: 3}), [
        (119.305, 32.42, "/board/tasks/t1", "T", "red", CELL)])
    assert [v.code for v in drawn.villages] == list(TOWN.places.villages)
    assert drawn.villages[0].name == "青禾村" and len(drawn.cells) == len(TOWN.places.cells)
    assert next(c for c in drawn.cells if c.code == CELL).heat == 3
    marker = drawn.markers[0]
    lon, lat = drawn.projection.lonlat(marker.x, marker.y)
    located = TOWN.places.locate(lon, lat)
    assert located is not None and located.cell == CELL  # drawn inside its own cell


def test_a_points_name_says_what_how_urgent_and_where() -> None:
    assert marker_label("T-1", "农村道路破损报修", "red", "青禾村", CELL) == "T-1 农村道路破损报修（红色，青禾村网格001）"
    assert marker_label("T-2", "x", "yellow", "东湖村", None) == "T-2 x（黄色，东湖村）"


def test_the_point_typed_goes_as_numbers_and_a_wrong_one_as_typed() -> None:
    assert point_of({"point.longitude": " 119.305 ", "point.latitude": "32.42"}) == {
        "longitude": 119.305, "latitude": 32.42}
    assert point_of({"point.longitude": "东经", "point.latitude": "32.42"}) == {"longitude": "东经", "latitude": 32.42}
    assert point_of({"point.longitude": "", "point.latitude": ""}) is None


async def test_the_map_page_draws_each_located_task_as_a_named_link_filtered_as_the_board() -> None:
    seen: list[httpx.Request] = []
    async for browser, _ in _console(httpx.Response(200, json=[TASK]), seen, COMMAND):
        page = await browser.get("/map?colour=red&item=T001")
    assert page.status_code == 200, page.text
    asked = seen[-1]
    assert asked.url.path == "/v1/tasks"
    assert dict(asked.url.params) == {"item": "T001", "colour": "red", "phase": "open", "located": "true",
                                      "limit": "1000"}
    link = re.search(r'<a href="/board/tasks/([^"]+)" aria-label="([^"]+)" data-testid="map-point" data-cell="(\d+)">',
                     page.text)
    assert link is not None and link.groups() == (
        TASK["task_id"], f"{TASK['ticket_no']} {TOWN.catalog['T001'].name}（红色，青禾村网格001）", CELL)
    assert 'class="pt pt-red"' in page.text and 'role="group" aria-label="青禾镇地图' in page.text
    assert "<script" not in page.text.split("</main>")[0]  # no inline script: the CSP runs none


async def test_the_hotspots_page_shows_the_table_and_shades_the_cells() -> None:
    answer = {"town_code": QINGHE, "period": "2027-01", "previous_period": "2026-12", "rising": [CELL],
              "cells": [{"grid_cell": CELL, "village": "V01", "count": 4, "previous": 1, "rise": 3,
                         "items": [{"item_code": "T001", "count": 4}]},
                        {"grid_cell": "321003104002001", "village": "V02", "count": 0, "previous": 2, "rise": -2,
                         "items": []}]}
    seen: list[httpx.Request] = []
    async for browser, _ in _console(httpx.Response(200, json=answer), seen, COMMAND):
        page = await browser.get("/hotspots?period=2027-01")
    assert page.status_code == 200, page.text
    assert seen[-1].url.path == "/v1/hotspots" and seen[-1].url.params["period"] == "2027-01"
    row = re.search(rf'<tr data-cell="{CELL}">(.*?)</tr>', page.text, re.S)
    assert row is not None and re.sub(r"<[^>]+>", "|", row.group(1)).split("|")[1::2][:6] == [
        CELL, "青禾村", "4", "1", "+3", "1"]
    assert 'class="cell heat-4" d="' in page.text and 'data-cell="321003104002001"' in page.text


async def test_the_filing_form_offers_the_map_and_posts_the_point_picked() -> None:
    posted: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(json.loads(request.content))
            return httpx.Response(422, json={"type": "about:blank", "title": "x", "status": 422,
                                             "code": "filing.point_outside_town", "field": "point",
                                             "detail": "outside", "params": {"town": "青禾镇"}})
        return httpx.Response(200, json=[])

    async for browser, csrf in _console(answer, [], CLERK):
        form = await browser.get("/intake")
        got = await browser.post("/intake", data={
            "csrf": csrf, "channel": "window", "item_code": "T001", "description": "路面塌陷", "village": "",
            "location": "村道", "citizen.name": "群众", "point.longitude": "119.9", "point.latitude": "32.42",
            "idempotency_key": "k"})
    assert 'data-picker data-west="' in form.text and '<script src="/static/picker.js" defer></script>' in form.text
    assert '<option value="">按标注位置确定</option>' in form.text
    assert posted[0]["point"] == {"longitude": 119.9, "latitude": 32.42} and "village" not in posted[0]
    assert got.status_code == 422
    refusal = re.search(r'<span class="field-error" role="alert" data-field="point">([^<]+)</span>', got.text)
    assert refusal is not None and "不在青禾镇范围内" in refusal.group(1)  # in Chinese, beside the picker
    assert 'name="point.longitude" value="119.9"' in got.text  # the point kept for another try
