"""SPEC §11: the subscriber example of docs/subscriber/ rebuilds a module's monthly resolution
rate from the topics alone (CloudEvents SDK + aiokafka, no Townflow code) and gets appraisal's
figure, and the hand-checked one, for a month filed through the real stack. This test owns 2032-05."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from devstack.stack import REPO, Stack
from townflow_shared.events import TaskCompleted, TaskDispatched, TaskVerified

from .conftest import COMMAND, Api, advance_clocks, eventually, file_matter, set_clocks, task_of
from .kafka_tools import about, group_caught_up, wait_for_record

SUBSCRIBER = REPO / "docs" / "subscriber" / "resolution_rate.py"
READER = ("s032", "appraisal_admin")
PERIOD = "2032-05"


async def _act(dispatch: Api, task: dict[str, Any], action: str, as_: tuple[str, ...], **body: Any) -> dict[str, Any]:
    response = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/{action}", as_=as_, json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def _complete(dispatch: Api, task: dict[str, Any]) -> bool:
    done = await _act(dispatch, task, "complete", (task["assignee"], "staff"), resolution="办结",
                      reply="已为您办理完毕。")
    return bool(done["on_time"])


async def test_the_subscriber_example_rebuilds_appraisals_resolution_rate(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api, bootstrap: str) -> None:
    # Monday 10 May 2032, 09:00: S014 (党组织关系转接) goes to the party-services post of module org,
    # 5 working days to resolve; S005 goes to module social and must not count for org.
    await set_clocks(stack, "2032-05-10T09:00:00+08:00")
    tickets = [await file_matter(intake, item_code="S014") for _ in range(6)]
    other = await file_matter(intake, item_code="S005")
    a, b, c, d, _e, f = [await task_of(dispatch, t["request_id"]) for t in tickets]
    assert await _complete(dispatch, a) and await _complete(dispatch, b)           # resolved on time
    assert await _complete(dispatch, await task_of(dispatch, other["request_id"]))  # another module
    await _act(dispatch, c, "return", (c["assignee"], "staff"), reason="非本岗位职责")
    c2 = await _act(dispatch, c, "redispatch", COMMAND, post=c["post"])              # counts once, as c2
    assert c2["task_id"] != c["task_id"] and await _complete(dispatch, c2)           # resolved
    assert await _complete(dispatch, d)
    await _act(dispatch, d, "verify", COMMAND, passed=False, note="材料不全")          # rework: not resolved
    # e stays open: not resolved. f is completed ten days later, after its resolve_by: not resolved.
    await advance_clocks(stack, "PT240H")
    assert not await _complete(dispatch, f)
    hand_checked = {"dispatched": 6, "resolved": 3, "resolution_rate": 3 / 6}  # a, b, c2 of a, b, c2, d, e, f

    # The last of dispatch's events is on the topic (its outbox publishes in order), and appraisal
    # has read every topic the figure depends on to its end.
    await wait_for_record(bootstrap, TaskCompleted.topic, about(f["request_id"]), timeout=60)
    await wait_for_record(bootstrap, TaskVerified.topic, about(d["request_id"]), timeout=60)
    topics = [TaskDispatched.topic, TaskCompleted.topic, TaskVerified.topic]
    await eventually(lambda: group_caught_up(bootstrap, "appraisal", topics), timeout=60,
                     what="appraisal to read the dispatch topics to their ends")
    rates = (await appraisal.call("GET", "/v1/rates", as_=READER,
                                  params={"group_by": "module", "period": PERIOD})).json()
    appraisals = next(r for r in rates if r["subject_id"] == "org")

    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, str(SUBSCRIBER), "--bootstrap", bootstrap, "--town", "321003104", "--module", "org",
        "--period", PERIOD], cwd=SUBSCRIBER.parent, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    rebuilt = json.loads(result.stdout)

    assert {k: rebuilt[k] for k in hand_checked} == hand_checked
    assert rebuilt["resolution_rate"] == appraisals["resolution"]
    assert rebuilt["dispatched"] == appraisals["dispatched"]
