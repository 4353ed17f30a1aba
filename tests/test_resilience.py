"""`make chaos` at a reduced size, on the demo county, on a stack of its own with two replicas of every service: kill -9
of single replicas, a database failover to read-only then PostgreSQL stopped, the broker stopped,
poison messages, the S3 server stopped while photos are filed, and a full redelivery under load; nothing lost, nothing counted twice, every poison
message dead-lettered once per consuming service and no valid event dead-lettered, every replica
back within 30 s of each fault's end, replay identical. And two faults of a replica that stops
without dying: intake's relay holder paused (SIGSTOP) for 12 s while matters are filed through the
other replica — each on its topic within 10 s of its 201, none doubled; and one dispatch replica's
own clock 5 minutes ahead all run long — a compressed supervision ladder published level by
level, never early, never twice. Notify runs there too (two replicas, the local receivers, each
person on a signed webhook of their own): one of its replicas killed -9, its group rewound, the
receivers down 5 s then back — every message arrived once by its delivery id, none lost (a repeat
right after a kill, the edge docs/notify.md names, counted apart). (The network partitions run in
`make chaos` only.)"""

from __future__ import annotations

import json
import random

import pytest

from bench.chaos import FAULTS, DeadLetter, Size, judge_dead_letters, run_chaos
from bench.notify_chaos import edge_of, resent_at_edges
from townflow_shared.settings import DEMO_COUNTY_DIR

# On the demo county (three towns filing in turn): the deployment shape SPEC §8 asks for.
SIZE = Size(matters=90, rate=3.0, replicas=2, incident_seconds=5.0, broker_stop_seconds=8.0, s3_stop_seconds=6.0, kills=4,
            settle_seconds=120.0, town_dir=str(DEMO_COUNTY_DIR),
            faults=tuple(f for f in FAULTS if f != "partition"), pause_seconds=12.0, pause_services=("intake",),
            skew_tasks=3, skew_window_seconds=10.0, notify_kills=1, receivers_down_seconds=5.0)


@pytest.mark.timeout(900)
async def test_faults_under_load_lose_nothing_and_count_nothing_twice() -> None:
    seed = random.SystemRandom().randrange(2**31)
    print(f"chaos seed {seed} (replay: python -m bench.chaos --seed {seed} --matters {SIZE.matters} --rate {SIZE.rate}"
          f" --replicas {SIZE.replicas} --incident-seconds {SIZE.incident_seconds}"
          f" --broker-stop-seconds {SIZE.broker_stop_seconds} --s3-stop-seconds {SIZE.s3_stop_seconds}"
          f" --kills {SIZE.kills} --county"
          f" --faults {','.join(SIZE.faults)} --pause-seconds {SIZE.pause_seconds} --pause-services intake"
          f" --skew-tasks {SIZE.skew_tasks} --skew-window-seconds {SIZE.skew_window_seconds}"
          f" --notify-kills {SIZE.notify_kills} --receivers-down-seconds {SIZE.receivers_down_seconds})")
    report = await run_chaos(seed, size=SIZE)
    assert report["passed"], json.dumps({k: v for k, v in report.items() if k != "replay_log"},
                                        ensure_ascii=False, indent=1)
    assert report["load_acknowledged"] == SIZE.matters
    paused = [f for f in report["faults"] if f["fault"] == "pause"]
    assert [(f["service"], f["held"].startswith("relay")) for f in paused] == [("intake", True)], paused
    assert paused[0]["acknowledged_during_fault"] > 0 and paused[0]["worst_wait_s"] <= 10.0, paused
    skewed = [f for f in report["faults"] if f["fault"] == "clock ahead"]
    assert len(skewed) == 1 and skewed[0]["replica_clock_ahead_s"] > 250, skewed
    assert skewed[0]["levels_published"] == skewed[0]["levels_due"] == 9 and skewed[0]["published_early"] == 0, skewed
    # The S3 server stopped while photos were filed: some refused while it was down, every one
    # acknowledged in the end, each photo stored as recorded, no object without a record left.
    [store] = [f for f in report["faults"] if f["fault"] == "object store stopped"]
    assert store["refused_while_down"] > 0 and store["acknowledged"] == store["photo_filings_during"], store
    assert report["photo_filings_acknowledged"] >= store["acknowledged"] + SIZE.matters // 5, report
    assert (report["photos_lost"], report["photo_orphans_left"]) == (0, 0), report
    # Notify through its own faults: every dispatch recorded, every message arrived, none twice
    # (but the edge of a kill or of PostgreSQL's stop, counted apart), the receivers' outage seen and waited out.
    notify = report["notify"]
    assert notify["passed"] and notify["dispatched_events"] > 0 and notify["messages_arrived"] > 0, notify
    assert (notify["not_recorded"], notify["left_waiting"], notify["lost"]) == (0, 0, 0), notify
    assert notify["duplicated"] == notify["resent_at_an_edge"], notify
    rewound = [f["service"] for f in report["faults"] if f["fault"] == "redeliver from offset 0"]
    assert rewound == ["dispatch", "notify"], rewound
    killed = [f["replica"] for f in report["faults"] if f["fault"] == "kill -9"]
    assert len([r for r in killed if r.startswith("notify-")]) == SIZE.notify_kills, killed
    [outage] = [f for f in report["faults"] if f["fault"] == "receivers down"]
    assert outage["down_s"] >= SIZE.receivers_down_seconds and outage["failing_when_back"] > 0, outage


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


def test_a_notify_repeat_is_an_edge_only_when_its_first_arrival_came_just_before_a_kill_or_a_database_stop() -> None:
    edges = [(100.0, 100.0, "kill"), (200.0, 204.0, "database stop")]  # PostgreSQL took 4 s to stop
    assert edge_of([99.0, 130.0], edges) == (100.0, 100.0, "kill")
    assert edge_of([198.5, 230.0], edges) == (200.0, 204.0, "database stop")
    assert edge_of([202.5, 230.0], edges) == (200.0, 204.0, "database stop")  # taken while it was stopping
    # First arrived too long before the kill, or both before it (or before the database was down),
    # or after the database was down, or with no edge near: a real duplicate.
    assert edge_of([90.0, 130.0], edges) is None
    assert edge_of([99.0, 99.5], edges) is None
    assert edge_of([202.5, 203.5], edges) is None
    assert edge_of([204.5, 230.0], edges) is None
    assert edge_of([150.0, 160.0], edges) is None
    # What the report counts of them: the arrivals after the first, per edge's cause.
    repeats = {1: [99.0, 130.0], 2: [198.5, 230.0, 231.0], 3: [150.0, 160.0]}
    at_an_edge = {i: e for i, at in repeats.items() if (e := edge_of(at, edges)) is not None}
    assert (resent_at_edges(repeats, at_an_edge), resent_at_edges(repeats, at_an_edge, "kill"),
            resent_at_edges(repeats, at_an_edge, "database stop")) == (3, 1, 2)
