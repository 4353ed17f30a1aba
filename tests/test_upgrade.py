"""`make upgrade-test` at a reduced size, on the demo county, on a stack of its own: two replicas of
every service at the previous release (CHANGELOG.md's newest entry, run from its own commit), replaced
by the current tree one replica at a time under load, then rolled back the same way; nothing lost,
nothing counted twice, no dead letter, no client answer but a 2xx or a retryable 503."""

from __future__ import annotations

import json
import random

import pytest

from bench.upgrade import Size, run_upgrade
from devstack.releases import release
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
