"""Place on the real stack (issue #30): a located matter filed with a point is placed in its village
and grid cell, a second filing 30 m away names it a `nearby` duplicate, a territorial matter goes to
the post holding its cell, and the citizen's status never shows the point."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from devstack.stack import Stack

from .conftest import CLERK, COMMAND, Api, eventually, file_matter, filing, status_of, task_of

METRE = 1 / 111_320  # of latitude, in degrees
# 青禾镇's 青禾村 (V01), its first grid cell: 119.30–119.31 E, 32.41375–32.425 N (devstack/place_gen.py).
CELL = "321003104001001"


def a_spot() -> dict[str, float]:
    """A point of the cell no other test files at: matters of other runs are more than 50 m away
    but for one chance in a few hundred, and the assertions below name this test's own tickets."""
    return {"longitude": round(random.uniform(119.3015, 119.3085), 6),
            "latitude": round(random.uniform(32.4150, 32.4200), 6)}


def north(point: dict[str, float], metres: float) -> dict[str, float]:
    return {"longitude": point["longitude"], "latitude": round(point["latitude"] + metres * METRE, 7)}


async def refusal(intake: Api, **overrides: Any) -> tuple[int, str, str]:
    response = await intake.call("POST", "/v1/requests", as_=CLERK, json=filing(**overrides))
    problem = response.json()
    return response.status_code, problem.get("code"), problem.get("field")


async def test_a_point_places_the_matter_names_a_nearby_duplicate_and_routes_by_cell(
        stack: Stack, intake: Api, dispatch: Api) -> None:
    spot = a_spot()
    first = await file_matter(intake, item_code="T001", village=None, location="村道东头坑洼", point=spot)
    assert (first["village"], first["grid_cell"]) == ("V01", CELL)
    # 农村道路破损报修 goes to its item's post (infrastructure) elsewhere; in this cell, to its 网格员.
    task = await task_of(dispatch, first["request_id"])
    assert (task["post"], task["assignee"]) == ("grid-qinghe-donghu", "s033")

    near = await file_matter(intake, item_code="T001", village="V01", location="小卖部门口", point=north(spot, 30))
    [hint] = [d for d in near["possible_duplicates"] if d["ticket_no"] == first["ticket_no"]]
    assert hint["reason"] == "nearby" and 29 <= hint["distance_m"] <= 31

    # The citizen's status page says where the matter stands, never where it is.
    seen = await status_of(intake, first, "dispatched")
    assert "point" not in seen and str(spot["longitude"]) not in str(seen)


async def test_the_refusals_of_a_point(stack: Stack, intake: Api) -> None:
    spot = a_spot()
    # 新生儿落户 is a person's own matter: its place would be a home.
    assert await refusal(intake, item_code="S001", point=spot) == (422, "filing.point_not_located", "point")
    assert await refusal(intake, item_code="T001", point={"longitude": 119.39, "latitude": 32.40}) == (
        422, "filing.point_outside_town", "point")  # 白鹭镇's
    assert await refusal(intake, item_code="T001", village="V02", point=spot) == (
        422, "filing.village_contradicts_point", "village")
    assert await refusal(intake, item_code="T001", village=None) == (422, "filing.village_missing", "village")


SECOND_CELL = "321003104001002"  # 青禾村's second cell: 119.31–119.32 E, 32.41375–32.425 N
APPRAISER = ("s032", "appraisal_admin")


async def test_dispatch_lists_the_task_with_its_point_and_cell_and_the_hotspots_count_it(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api) -> None:
    spot = {"longitude": round(random.uniform(119.3115, 119.3185), 6),
            "latitude": round(random.uniform(32.4150, 32.4200), 6)}
    filed = await file_matter(intake, item_code="T002", village=None, location="垃圾房旁", point=spot)
    period = datetime.fromisoformat(filed["filed_at"]).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")

    async def cell_count() -> int:
        answer = await appraisal.call("GET", "/v1/hotspots", as_=APPRAISER, params={"period": period})
        assert answer.status_code == 200, answer.text
        return sum(i["count"] for c in answer.json()["cells"] if c["grid_cell"] == SECOND_CELL
                   for i in c["items"] if i["item_code"] == "T002")

    task = await task_of(dispatch, filed["request_id"])
    assert (task["point"], task["grid_cell"]) == (spot, SECOND_CELL)

    async def listed(**params: Any) -> set[str]:
        answer = await dispatch.call("GET", "/v1/tasks", as_=COMMAND, params={"limit": 1000, **params})
        assert answer.status_code == 200, answer.text
        return {t["task_id"] for t in answer.json()}

    assert task["task_id"] in await listed(cell=SECOND_CELL, phase="open", located="true")
    assert task["task_id"] not in await listed(cell=CELL)
    box = f"{spot['longitude'] - 0.0001},{spot['latitude'] - 0.0001},{spot['longitude'] + 0.0001},{spot['latitude'] + 0.0001}"
    assert task["task_id"] in await listed(bbox=box)
    assert task["task_id"] not in await listed(located="false")
    assert (await dispatch.call("GET", "/v1/tasks", as_=COMMAND, params={"bbox": "east"})).status_code == 422

    # Appraisal counts it in its cell's month by item; the next filing there counts once more.
    before = await eventually(cell_count, what="the hotspots counting the matter")
    assert before >= 1
    await file_matter(intake, item_code="T002", village=None, location="垃圾房旁", point=north(spot, 5))

    async def counted_again() -> int | None:
        now = await cell_count()
        return now if now >= before + 1 else None

    assert await eventually(counted_again, what="the second filing counted") >= before + 1
