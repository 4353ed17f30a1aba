"""What-if on the real stack (SPEC §10): a month's figures under other rules, from its facts,
beside the live ones; the live figures are not touched. The month 2028-08 is this file's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack.stack import REPO, Stack

from .conftest import COMMAND, Api, file_matter, set_clocks, task_of
from .test_appraisal import APPRAISER, complete, figures_when, rate

PERIOD = "2028-08"


async def what_if(appraisal: Api, changes: dict[str, Any], as_: tuple[str, ...] = APPRAISER) -> Any:
    return await appraisal.call("POST", "/v1/what-if", as_=as_, json={"period": PERIOD, "rules": changes})


def row(result: dict[str, Any], subject_type: str, subject_id: str) -> dict[str, Any]:
    (found,) = [s for s in result["subjects"] if (s["subject_type"], s["subject_id"]) == (subject_type, subject_id)]
    return dict(found)


async def test_what_if_with_response_weight_0_6_changes_composites_by_the_hand_computed_amount(
        stack: Stack, intake: Api, dispatch: Api, appraisal: Api, tmp_path: Path) -> None:
    await set_clocks(stack, "2028-08-07T09:00:00+08:00")
    tickets = [await file_matter(intake, item_code="T005", village="V06", location=f"柳溪社区路灯{i}")
               for i in range(4)]
    tasks = [await task_of(dispatch, t["request_id"]) for t in tickets]
    assert {t["assignee"] for t in tasks} == {"s020"}
    await complete(dispatch, tasks[0])
    for task in tasks[1:3]:
        accepted = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/accept", as_=("s020", "staff"))
        assert accepted.status_code == 200, accepted.text
    await rate(intake, tickets[0], "satisfied")
    live = await figures_when(appraisal, PERIOD, "staff", "s020",
                              lambda f: f["counts"]["responded"] == 3 and f["counts"]["rated"] == 1)
    # response 3/4, resolution 1/4, satisfaction 1/1; points 10 done + 2 on time + 2 satisfied
    assert live["composite"] == 100 * (0.30 * 0.75 + 0.35 * 0.25 + 0.35 * 1) and live["points"] == 14
    before = await appraisal.call("GET", "/v1/scores", as_=APPRAISER, params={"period": PERIOD})

    answer = await what_if(appraisal, {"weights": {"response": 0.6}})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    expected = round(100 * (0.6 * 0.75 + 0.35 * 0.25 + 0.35 * 1) / (0.6 + 0.35 + 0.35), 4)  # renormalised
    for subject_type, subject_id in (("staff", "s020"), ("module", "econ"), ("village", "V06")):
        s = row(result, subject_type, subject_id)
        assert s["live"]["composite"] == 66.25 and s["what_if"]["composite"] == expected == 68.2692
        assert s["difference"]["composite"] == round(68.2692 - 66.25, 4)
        assert s["difference"]["points"] == 0 and s["live"]["rates"] == s["what_if"]["rates"]
    assert result["rules"]["weights"] == {"response": 0.6, "resolution": 0.35, "satisfaction": 0.35}

    # Points and thresholds too; under the town's own rules every figure is the live one.
    other = (await what_if(appraisal, {"points": {"on_time": 5}, "alerts": {"talk_min_ratings": 1,
                                                                             "talk_satisfaction_below": 1.01}})).json()
    s = row(other, "staff", "s020")
    assert (s["live"]["points"], s["what_if"]["points"], s["difference"]["points"]) == (14, 17, 3)
    assert (s["live"]["alerts"], s["what_if"]["alerts"]) == ([], ["talk"])
    same = (await what_if(appraisal, {})).json()
    assert same["subjects"] and [s for s in same["subjects"] if s["live"] != s["what_if"]] == []
    assert {(s["difference"]["composite"], s["difference"]["points"]) for s in same["subjects"]} <= {
        (0, 0), (None, 0)}

    after = await appraisal.call("GET", "/v1/scores", as_=APPRAISER, params={"period": PERIOD})
    assert after.content == before.content  # byte for byte: the live figures were only read

    # Wrong rules, the wrong person.
    wrong = await what_if(appraisal, {"weights": {"speed": 1}})
    assert wrong.status_code == 422
    assert (wrong.json()["code"], wrong.json()["field"]) == ("value.unexpected", "rules.weights.speed")
    refused = await what_if(appraisal, {}, as_=COMMAND)
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.role_missing")

    # The command line: the same comparison as a table.
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("appraisal:\n  weights:\n    response: 0.6\n", encoding="utf-8")
    env = {**os.environ, **stack.services["appraisal"].env}
    printed = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "appraisal", "what-if", "--rules", str(rules_file), "--period", PERIOD],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stdout + printed.stderr
    (line,) = [x for x in printed.stdout.splitlines() if x.startswith("staff:s020 ")]
    assert line.split() == ["staff:s020", "66.25", "68.2692", "2.0192", "14", "14", "0", "1→1"]
    assert (await appraisal.call("GET", "/v1/scores", as_=APPRAISER, params={"period": PERIOD})).content == before.content
