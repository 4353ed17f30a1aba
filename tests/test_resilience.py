"""`make chaos` at a reduced size, on the demo county, on a stack of its own with two replicas of every service: kill -9
of single replicas, a database failover to read-only then PostgreSQL stopped, the broker stopped,
poison messages and a full redelivery under load; nothing lost, nothing counted twice, every poison
message dead-lettered once per consuming service and no valid event dead-lettered, every replica
back within 30 s of each fault's end, replay identical."""

from __future__ import annotations

import json
import random

import pytest

from bench.chaos import Size, run_chaos
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
