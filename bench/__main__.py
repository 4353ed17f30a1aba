"""`make bench`: start the real stack, find the knee with a short ramp, then file N matters at a
fixed offered rate and measure sustained throughput and latency from filing to the first
appraisal.score.updated, each service's CPU and peak memory, and — in the same run, on the same
broker and database — two yardsticks: a bare aiokafka chain of the same hop count, and a bare
HTTP app writing one row per request (the floor of the first hop alone). Notify joins after the
ramp and is measured in the main run (dispatch → the assignee's mail accepted by the local SMTP
receiver), then a burst of tasks to one town's robots (bench/notify_bench.py; `--no-notify` runs
without it). Writes bench/results/<time>.json and .png.

    python -m bench [--matters 20000] [--rate 50] [--ramp 50,100,...,350] [--step-matters 1500]
                     [--env TOWNFLOW_X=VALUE ...] [--no-notify] [--notify-replicas 1] [--burst 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.county_gen import make_county
from devstack.stack import Stack

from .bare_chain import run_bare_chain
from .bare_http import run_bare_http
from .load import Run, measure, village_points
from .notify_bench import NotifyBench
from .privacy import scan_topics
from .procstats import cpu_seconds, peak_rss_mib, tree_cpu_seconds

RESULTS = Path(__file__).with_name("results")


def machine() -> dict[str, Any]:
    import os

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack.in_temp_dir(kafka_heap="512m")
    stack.extra_env.update(args.env)
    towns: list[str] | None = None
    points = village_points() if args.points else None
    if args.towns > 1:  # a county of N towns, filed across all of them (SPEC §7.1, §8)
        towns = make_county(stack.workdir / "county", args.towns)
        stack.extra_env["TOWNFLOW_TOWN_DIR"] = str(stack.workdir / "county")
    notify: NotifyBench | None = None
    try:
        if not args.no_notify:  # its town files and receivers before any service reads the town
            notify = NotifyBench.prepare(stack)
        stack.start_infra()
        stack.start_services()
        assert stack.kafka is not None and stack.postgres is not None
        pids = {name: p.child.proc.pid for name, p in stack.services.items()  # type: ignore[union-attr]
                } | {"kafka": stack.kafka.child.proc.pid}  # type: ignore[union-attr]
        ramp = []
        for rate in [float(r) for r in args.ramp.split(",") if r]:
            step = await measure(stack, args.step_matters, rate, settle_seconds=60, towns=towns, points=points)
            ramp.append(step.summary())
            print(f"ramp {rate:>6.0f}/s offered: {ramp[-1]['sustained_throughput']}/s sustained, "
                  f"p99 {ramp[-1]['latency_ms']['p99']} ms", flush=True)
        # Notify joins now, at the topics' ends: the ramp ran without it, as it always has.
        notify_pids: dict[str, int] = {}
        if notify is not None:
            await notify.join(stack, args.notify_replicas)
            notify_pids = notify.pids(stack)
            pids |= notify_pids
        # PostgreSQL's backends too: what a matter costs the whole machine, which bounds the knee
        # when the cores are full, and moves far less with the shared machine's neighbours than
        # the knee itself (bench/audit_cost.py compares it).
        postmaster = stack.postgres.child.proc.pid  # type: ignore[union-attr]
        cpu_before = {n: cpu_seconds(p) for n, p in pids.items()} | {"postgres": tree_cpu_seconds(postmaster)}
        t0 = time.monotonic()
        main: Run = await measure(stack, args.matters, args.rate, settle_seconds=300, towns=towns, points=points)
        elapsed = time.monotonic() - t0
        used = {n: cpu_seconds(p) - cpu_before[n] for n, p in pids.items()} | {
            "postgres": tree_cpu_seconds(postmaster) - cpu_before["postgres"]}
        resources = {n: {"cpu_cores": round(used[n] / elapsed, 2)} | (
            {"peak_rss_mib": round(peak_rss_mib(pids[n]), 1)} if n in pids else {}) for n in used}
        summary = main.summary()
        # Without notify's processes, so it compares with the runs before notify was measured;
        # what notify (and its receivers) cost is its own figure.
        summary["cpu_ms_per_matter"] = round(1000 * sum(v for n, v in used.items() if n not in notify_pids)
                                             / max(summary["scored"], 1), 2)
        if notify_pids:
            summary["notify_cpu_ms_per_matter"] = round(
                1000 * sum(used[n] for n in notify_pids) / max(summary["scored"], 1), 2)
        print(f"main run: {summary}", flush=True)
        notified: dict[str, Any] | None = None
        burst: dict[str, Any] | None = None
        if notify is not None:
            notified = await notify.latencies(stack, main)
            print(f"notify, dispatch → the assignee's mail accepted: {notified}", flush=True)
            if args.burst:
                burst = await notify.burst(stack, args.burst, county=args.towns > 1)
                print(f"notify, a burst of {args.burst} tasks to one town's robots: {burst}", flush=True)
        privacy = await scan_topics(stack.kafka.bootstrap, ["压测"])
        print(f"privacy scan of every topic: {privacy}", flush=True)
        bare = await run_bare_chain(stack.kafka.bootstrap, args.bare_messages)
        print(f"bare aiokafka chain: {bare}", flush=True)
        stack.postgres.create_database("bare_http")
        bare_http = await run_bare_http(stack.postgres.dsn("bare_http"), stack.workdir)
        print(f"bare HTTP filing, one row per request: {bare_http}", flush=True)
        best = max(s["sustained_throughput"] for s in [*ramp, summary])
        return {
            "at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
            "settings": args.env, "towns": args.towns, "points": args.points,
            "ramp": ramp, "main": summary, "resources": resources, "bare_chain": bare,
            "privacy_scan": privacy,
            # Our best sustained rate (the main run is held to its offered rate) against the bare chain.
            "ratio_to_bare_chain": round(best / bare["throughput"], 4) if bare["throughput"] else None,
            # The bare first hop alone, against the same best rate: how much of the machine's
            # filing capacity the rest of Townflow leaves.
            "bare_http": bare_http,
            "ratio_to_bare_http": round(best / bare_http["throughput"], 4) if bare_http["throughput"] else None,
            "notify": notified, "notify_burst": burst,
            "latencies_ms": main.latencies_ms(),
        }
    finally:
        stack.stop()
        if notify is not None:
            notify.stop()


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    lat = result["latencies_ms"]
    if lat:
        left.plot(lat, [i / len(lat) for i in range(len(lat))])
    left.set_xlabel("filed → first score.updated (ms)")
    left.set_ylabel("fraction of matters")
    left.set_title(f"latency CDF at {result['main']['offered_rate']:.0f}/s offered")
    left.grid(True, alpha=0.3)
    offered = [s["offered_rate"] for s in result["ramp"]]
    right.plot(offered, [s["sustained_throughput"] for s in result["ramp"]], "o-", label="sustained matters/s")
    right.plot(offered, offered, "--", alpha=0.4, label="offered")
    twin = right.twinx()
    twin.plot(offered, [s["latency_ms"]["p99"] or 0 for s in result["ramp"]], "s-", color="tab:red", label="p99 ms")
    twin.set_ylabel("p99 latency (ms)")
    right.set_xlabel("offered matters/s")
    right.set_ylabel("sustained matters/s")
    right.set_title("ramp: where the knee is")
    lines, labels = right.get_legend_handles_labels()
    more_lines, more_labels = twin.get_legend_handles_labels()
    right.legend(lines + more_lines, labels + more_labels, loc="upper left")
    right.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith(("TOWNFLOW_", "OTEL_")):
        raise argparse.ArgumentTypeError(f"expected TOWNFLOW_NAME=value, got {text!r}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--matters", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=50.0, help="offered matters per second in the main run")
    parser.add_argument("--ramp", default="50,100,150,200,250,300,350", help="offered rates of the ramp steps")
    parser.add_argument("--step-matters", type=int, default=1500)
    parser.add_argument("--bare-messages", type=int, default=20_000)
    parser.add_argument("--points", action="store_true",
                        help="file the located items (four matters in ten) with a point in their village (issue #30)")
    parser.add_argument("--towns", type=int, default=1,
                        help="1: the demo town; N: a county of N towns (copies of 青禾镇), filed across all")
    parser.add_argument("--no-notify", action="store_true",
                        help="run without notify (it joins after the ramp and is measured in the main run)")
    parser.add_argument("--notify-replicas", type=int, default=1, help="notify's replicas in the main run")
    parser.add_argument("--burst", type=int, default=500,
                        help="tasks filed at once to one town's robots after the main run (0: none)")
    parser.add_argument("--env", type=_setting, action="append", default=[], metavar="TOWNFLOW_X=VALUE",
                        help="a service setting for this run (repeatable), e.g. TOWNFLOW_KAFKA_FETCH_MIN_BYTES=65536")
    args = parser.parse_args()
    args.env = dict(args.env)
    result = asyncio.run(bench(args))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stored = {k: v for k, v in result.items() if k != "latencies_ms"}
    stem.with_suffix(".json").write_text(json.dumps(stored, indent=2) + "\n")  # before the plot can fail
    (RESULTS / "latest.json").write_text(json.dumps(stored, indent=2) + "\n")
    plot(result, stem.with_suffix(".png"))
    print(f"wrote {stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
