"""`make chaos` at a reduced size, on a stack of its own: kill -9 of every service, broker and
database restarts, poison messages and a full redelivery under load; nothing lost, nothing counted
twice, every bad message dead-lettered, every service back within 30 s, replay identical."""

from __future__ import annotations

import json
import random

import pytest

from bench.chaos import run_chaos


@pytest.mark.timeout(900)
async def test_faults_under_load_lose_nothing_and_count_nothing_twice() -> None:
    seed = random.SystemRandom().randrange(2**31)
    print(f"chaos seed {seed} (replay: python -m bench.chaos --seed {seed} --matters 60 --rate 6)")
    report = await run_chaos(seed, matters=60, rate=6.0)
    summary = {k: v for k, v in report.items() if k not in ("faults", "replay_log")}
    assert report["passed"], json.dumps(report, ensure_ascii=False, indent=1)
    assert summary["matters_acknowledged"] == 60
