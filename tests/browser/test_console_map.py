"""The map in a real browser (issue #30): a clerk files a road matter with its point picked on the
town's map (static/picker.js), the command centre finds it on 地图 in its grid cell and opens its
task from it, and 热点 counts it; axe-core checks each page as it is drawn."""

from __future__ import annotations

import random
import re

import pytest
from playwright.async_api import Page, expect

from devstack.stack import Stack
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from .conftest import People, a_phone, assert_accessible

pytestmark = pytest.mark.stack
QINGHE = load_county(DEMO_COUNTY_DIR).towns["321003104"]
CELL = "321003104001003"  # 青禾村's third cell: 119.30–119.31 E, 32.4025–32.41375 N


async def click_on_the_map(page: Page, longitude: float, latitude: float) -> None:
    """Click the picker where the point is, by the projection the SVG carries (as its script reads it)."""
    svg = page.locator("svg[data-picker]")
    west, north, kx, ky = [float(await svg.get_attribute(f"data-{k}") or "nan") for k in ("west", "north", "kx", "ky")]
    _, _, width, height = (float(v) for v in (await svg.get_attribute("viewBox") or "").split())
    box = await svg.bounding_box()
    assert box is not None
    await svg.click(position={"x": (longitude - west) * kx * box["width"] / width,
                              "y": (north - latitude) * ky * box["height"] / height})


async def test_a_point_picked_on_the_map_is_on_the_map_in_its_cell_and_opens_its_task(
        people: People, county_stack: Stack) -> None:
    spot = (round(random.uniform(119.302, 119.308), 5), round(random.uniform(32.404, 32.412), 5))
    clerk = await people.signed_in("qh-s010")
    await clerk.goto("/intake")
    await assert_accessible(clerk, "the filing form with its map")
    await clerk.locator("input[name=item_code]").fill("T001")
    await clerk.locator("textarea[name=description]").fill("村道路面塌陷，车辆难行")
    await clerk.locator("input[name=location]").fill("青禾村三组村道")
    await clerk.locator("input[name='citizen.name']").fill("浏览器群众")
    await clerk.locator("input[name='citizen.phone']").fill(a_phone())
    await click_on_the_map(clerk, *spot)
    # The point as picked (to a pixel and a half: under 15 m; a click lands on a whole pixel, which
    # was 0.000102° from the spot once), the village left to the point.
    picked = [float(await clerk.locator(f"input[name='point.{k}']").input_value()) for k in ("longitude", "latitude")]
    assert picked == pytest.approx(spot, abs=0.00015)
    assert await clerk.locator("select[name=village]").input_value() == ""
    await expect(clerk.locator("[data-point-status]")).to_contain_text("已在地图上标注位置")
    await clerk.get_by_role("button", name="受理并出具回执").click()
    await expect(clerk.get_by_role("heading", name=re.compile("受理回执"))).to_be_visible()
    ticket = await clerk.get_by_test_id("ticket").inner_text()

    board = await people.signed_in("qh-s030")  # 指挥中心
    point = board.locator(f"a[data-testid=map-point][aria-label^='{ticket} ']")
    for _ in range(40):  # dispatch makes the task from the filing's event: a moment after the receipt
        await board.goto(f"/map?q={ticket}")
        if await point.count():
            break
        await board.wait_for_timeout(500)
    await expect(point).to_have_count(1)
    assert await point.get_attribute("data-cell") == CELL
    await expect(point).to_have_attribute("aria-label", re.compile(rf"{QINGHE.catalog['T001'].name}（.色，青禾村网格003）"))
    await assert_accessible(board, "地图")
    await point.click()
    await board.wait_for_url(re.compile(r".*/board/tasks/[0-9a-f-]{36}$"))
    await expect(board.get_by_text(ticket).first).to_be_visible()
    # The task page names its grid cell beside the place (dispatch's cell of the matter), and its
    # link shows the map of that cell's matters alone.
    await expect(board.get_by_test_id("grid-cell")).to_have_text(re.compile(rf"^青禾村网格003（{CELL}）"))
    await assert_accessible(board, "the task page with its grid cell")
    await board.get_by_test_id("grid-cell-map").click()
    await board.wait_for_url(re.compile(rf".*/map\?town=321003104&cell={CELL}$"))
    await expect(board.get_by_test_id("map-cell")).to_contain_text(f"青禾村网格003（{CELL}）")
    await expect(point).to_have_count(1)
    assert {await p.get_attribute("data-cell") for p in await board.get_by_test_id("map-point").all()} == {CELL}

    row = board.locator(f"tr[data-cell='{CELL}'] [data-testid=cell-count]")
    for _ in range(40):  # appraisal counts it from the same event
        await board.goto("/hotspots")
        if await row.count() and int(await row.inner_text()) >= 1:
            break
        await board.wait_for_timeout(500)
    assert int(await row.inner_text()) >= 1
    await expect(board.locator(f"svg[data-testid=hotspot-map] path[data-cell='{CELL}']")).to_have_class(
        re.compile(r"heat-[1-4]"))
    await assert_accessible(board, "热点")
