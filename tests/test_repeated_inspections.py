"""多头检查 on the real stack (SPEC §10): an enterprise visited separately by two or more units
within 30 days is flagged, and a new need for it is proposed to join its latest planned inspection."""

from __future__ import annotations

import re
import uuid
from typing import Any

from devstack.stack import Stack

from .conftest import Api, eventually, file_matter, http_client, set_clocks, task_of

OFFICER = ("s026", "officer")


def new_target() -> str:
    return f"91321003MA{uuid.uuid4().hex[:8].upper()}"


async def planned_for(enforcement: Api, target: str, needs: int) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        rows = (await enforcement.call("GET", "/v1/inspections", as_=OFFICER,
                                       params={"target": target, "status": "planned"})).json()
        return next((r for r in rows if len(r["needs"]) >= needs), None)

    return await eventually(find, what=f"a planned inspection of {target} with {needs} needs")


async def visit(intake: Api, dispatch: Api, enforcement: Api, item: str, target: str) -> dict[str, Any]:
    """A matter about `target` whose inspection goes out on its own (started)."""
    ticket = await file_matter(intake, item_code=item, target=target)
    await task_of(dispatch, ticket["request_id"])
    inspection = await planned_for(enforcement, target, 1)
    started = await enforcement.call("POST", f"/v1/inspections/{inspection['inspection_id']}/start", as_=OFFICER,
                                     json={"officers": ["s026", "s027"]})
    assert started.status_code == 200, started.text
    return dict(started.json())


async def alerts(enforcement: Api) -> list[dict[str, Any]]:
    response = await enforcement.call("GET", "/v1/inspections/alerts", as_=OFFICER)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_an_enterprise_visited_by_two_units_within_30_days_is_flagged(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api) -> None:
    target = new_target()
    await set_clocks(stack, "2026-12-01T09:00:00+08:00")
    safety = await visit(intake, dispatch, enforcement, "E003", target)          # 县应急管理局
    assert target not in [a["target"] for a in await alerts(enforcement)]       # one visit is no 多头
    await set_clocks(stack, "2026-12-18T09:00:00+08:00")
    food = await visit(intake, dispatch, enforcement, "E004", target)            # 县市场监督管理局

    flagged = [a for a in await alerts(enforcement) if a["target"] == target]
    assert flagged == [{
        "town_code": "321003104", "target": target, "window_days": 30,
        "units": ["县应急管理局", "县市场监督管理局"],
        "visits": [{"inspection_id": safety["inspection_id"], "units": ["县应急管理局"],
                    "started_at": "2026-12-01T09:00:00+08:00"},
                   {"inspection_id": food["inspection_id"], "units": ["县市场监督管理局"],
                    "started_at": "2026-12-18T09:00:00+08:00"}],
        "proposed_inspection_id": None, "proposed_needs": []}]

    # A new need for it is marked and proposed to join the latest planned inspection.
    ticket = await file_matter(intake, item_code="E009", target=target)
    task = await task_of(dispatch, ticket["request_id"])
    planned = await planned_for(enforcement, target, 1)
    assert [n["repeated_inspection"] for n in planned["needs"]] == [True]
    flagged = [a for a in await alerts(enforcement) if a["target"] == target]
    assert flagged[0]["proposed_inspection_id"] == planned["inspection_id"]
    assert [(n["task_id"], n["request_id"], n["item_code"]) for n in flagged[0]["proposed_needs"]] == [
        (task["task_id"], ticket["request_id"], "E009")]

    # The gauge counts the flagged targets of the town, as the alerts list them.
    async def gauge_matches() -> bool:
        expected = len(await alerts(enforcement))
        async with http_client(base_url=enforcement.url) as client:
            text = (await client.get("/metrics")).text
        found = re.search(r'^townflow_enforcement_repeated_inspection_targets\{town="321003104"\} (\S+)$', text, re.M)
        return bool(found) and float(found[1]) == expected  # type: ignore[index]

    await eventually(gauge_matches, what="the repeated-inspection gauge")

    # 31 days after the first visit it is out of the window, and the enterprise is no longer flagged.
    await set_clocks(stack, "2027-01-01T09:30:00+08:00")
    assert target not in [a["target"] for a in await alerts(enforcement)]


async def test_one_unit_coming_back_or_one_combined_visit_is_not_flagged(
        stack: Stack, intake: Api, dispatch: Api, enforcement: Api) -> None:
    await set_clocks(stack, "2026-12-01T09:00:00+08:00")
    again, combined = new_target(), new_target()
    await visit(intake, dispatch, enforcement, "E004", again)     # 县市场监督管理局
    await visit(intake, dispatch, enforcement, "E009", again)     # the same unit, back again
    # 综合查一次: two units' matters, one visit.
    for item in ("E003", "E007"):
        await task_of(dispatch, (await file_matter(intake, item_code=item, target=combined))["request_id"])
    inspection = await planned_for(enforcement, combined, 2)
    assert (await enforcement.call("POST", f"/v1/inspections/{inspection['inspection_id']}/start",
                                   as_=OFFICER, json={"officers": ["s026", "s027"]})).status_code == 200
    listed = [a["target"] for a in await alerts(enforcement)]
    assert again not in listed and combined not in listed
