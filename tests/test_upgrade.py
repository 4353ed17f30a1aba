"""`make upgrade-test` at a reduced size, on the demo county, on a stack of its own: two replicas of
every service at the previous release (CHANGELOG.md's newest entry, run from its own commit), replaced
by the current tree one replica at a time under load, then rolled back the same way; nothing lost,
nothing counted twice, no dead letter, no client answer but a 2xx or a retryable 503."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from bench.town_staff import StaffReport, TownDesk
from bench.upgrade import Answers, Size, Versions, run_upgrade, staff_failed
from devstack.releases import release
from devstack.stack import Stack
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

SIZE = Size(matters=60, rate=1.2, replicas=2, side_by_side_seconds=3.0, settle_seconds=90.0,
            staff_drain_seconds=60.0, town_dir=str(DEMO_COUNTY_DIR))


@pytest.mark.timeout(600)
async def test_a_rolling_upgrade_from_the_previous_release_and_back_loses_nothing() -> None:
    seed = random.SystemRandom().randrange(2**31)
    old = release()
    print(f"upgrade seed {seed} from {old} (replay: python -m bench.upgrade --seed {seed} --matters {SIZE.matters}"
          f" --rate {SIZE.rate} --side-by-side-seconds {SIZE.side_by_side_seconds} --county)")
    report = await run_upgrade(seed, old, SIZE)
    assert report["passed"], json.dumps({k: v for k, v in report.items() if k != "plan"}, ensure_ascii=False, indent=1)
    assert report["rolled_back"] and all(
        version.endswith(old.version) for replicas in report["final_versions"].values() for version in replicas)


def test_a_client_answer_other_than_a_2xx_or_a_retryable_503_is_a_failure(tmp_path: Path) -> None:
    answers = Answers(Stack(tmp_path), Versions(release(), tmp_path, "current"))
    url = "http://127.0.0.1:1"
    request = httpx.Request("POST", f"{url}/v1/requests")
    for status, headers in [(201, {}), (503, {"Retry-After": "1"}), (503, {}), (500, {}), (409, {})]:
        answers(url, httpx.Response(status, headers=headers, request=request))
    answers(url, httpx.ConnectError("refused", request=request))
    assert answers.seen == {"201": 1, "503": 1, "503 without Retry-After": 1, "500": 1, "409": 1, "ConnectError": 1}
    assert len(answers.failures) == 4


def test_the_staffs_answers_fail_the_run_unless_2xx_503_or_a_state_that_moved_on() -> None:
    staff = StaffReport()
    staff.problems.update({"rate 409 rating.not_completed": 3, "list tasks 503 service.database_unavailable": 2,
                           "result 422 inspection.finding_missing": 1, "accept 409 task.not_dispatched": 1,
                           "result 422 request.invalid[inspection.officers_unknown,inspection.unit_absent]": 1})
    staff.tried_again.update({"rate 409": 3, "list tasks 503": 2, "result 422": 2, "accept 409": 1,
                              "verify ReadTimeout": 1})
    assert staff_failed(staff) == {"accept 409 task.not_dispatched": 1, "verify ReadTimeout": 1,
                                   "result 422 request.invalid[inspection.officers_unknown,inspection.unit_absent]": 1}


async def test_a_completion_refused_by_a_replica_of_the_previous_release_is_sent_again_as_it_takes_it() -> None:
    """Issue #27: this release's completion carries the reply, which a v1.1.0 replica refuses as a
    member it does not know (422 `value.unexpected`); the towns' staff send it again at once as the
    previous release takes it, and no failure is counted."""
    bodies: list[dict[str, object]] = []

    def replica(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "reply" in body:  # v1.1.0: the request model forbids unknown members
            return httpx.Response(422, json={"code": "value.unexpected", "field": "reply", "status": 422})
        return httpx.Response(200, json={"task_id": "t", "status": "completed", "on_time": True})

    town = load_county(DEMO_COUNTY_DIR).towns["321003104"]
    stack = type("OneReplica", (), {"replicas": {"dispatch": [type("Replica", (), {"url": "http://old.test"})()]},
                                    "token": lambda self, *args, **kwargs: "t"})()
    report = StaffReport()
    async with httpx.AsyncClient(transport=httpx.MockTransport(replica)) as client:
        desk = TownDesk(stack, town, client, report)  # type: ignore[arg-type]
        holder = next(iter(town.staff))
        done = await desk.call("complete", "dispatch", "POST", "/v1/tasks/t/complete", holder,
                               json={"resolution": "已办结", "reply": "已为您办理完毕。"},
                               older_json={"resolution": "已办结"})
    assert done == {"task_id": "t", "status": "completed", "on_time": True}
    assert bodies == [{"resolution": "已办结", "reply": "已为您办理完毕。"}, {"resolution": "已办结"}]
    assert report.done == {"complete": 1} and not report.problems and not staff_failed(report)
