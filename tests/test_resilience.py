"""`make chaos` at a reduced size, on the demo county, on a stack of its own with two replicas of every service: kill -9
of single replicas, a database failover to read-only then PostgreSQL stopped, the broker stopped,
poison messages and a full redelivery under load; nothing lost, nothing counted twice, every poison
message dead-lettered once per consuming service and no valid event dead-lettered, every replica
back within 30 s of each fault's end, replay identical."""

from __future__ import annotations

import json
import random

import pytest

from bench.chaos import DeadLetter, Size, judge_dead_letters, run_chaos
from townflow_shared.settings import DEMO_COUNTY_DIR

# On the demo county (three towns filing in turn): the deployment shape SPEC §8 asks for.
SIZE = Size(matters=90, rate=3.0, replicas=2, incident_seconds=5.0, broker_stop_seconds=8.0, kills=4,
            settle_seconds=120.0, town_dir=str(DEMO_COUNTY_DIR))


@pytest.mark.timeout(900)
async def test_faults_under_load_lose_nothing_and_count_nothing_twice() -> None:
    seed = random.SystemRandom().randrange(2**31)
    print(f"chaos seed {seed} (replay: python -m bench.chaos --seed {seed} --matters {SIZE.matters} --rate {SIZE.rate}"
          f" --replicas {SIZE.replicas} --incident-seconds {SIZE.incident_seconds}"
          f" --broker-stop-seconds {SIZE.broker_stop_seconds} --kills {SIZE.kills} --county)")
    report = await run_chaos(seed, size=SIZE)
    assert report["passed"], json.dumps({k: v for k, v in report.items() if k != "replay_log"},
                                        ensure_ascii=False, indent=1)
    assert report["matters_acknowledged"] == SIZE.matters


def test_a_dead_letter_written_twice_is_caught_and_one_row_sent_twice_is_the_relays_redelivery() -> None:
    poison = b'{broken json 1 dispatch.task.returned.v1'
    consumed = {"intake": ["dispatch.task.returned.v1"]}

    def letter(outbox_id: str) -> DeadLetter:
        return DeadLetter("dispatch.task.returned.v1", poison, "intake", "JSONDecodeError", "not JSON", outbox_id)

    resent = judge_dead_letters([letter("7"), letter("7")], [poison], consumed)
    assert (resent["dead_letters_duplicated_count"], resent["dead_letters_redelivered_by_the_relay"]) == (0, 1)
    written_twice = judge_dead_letters([letter("7"), letter("9")], [poison], consumed)
    assert (written_twice["dead_letters_duplicated_count"], written_twice["dead_letters_redelivered_by_the_relay"]) \
        == (1, 0)
