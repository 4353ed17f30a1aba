"""Where the CPU goes: the real stack under a steady load, each service run under cProfile,
then every process's CPU per matter (PostgreSQL's backends and Kafka included) and each
service's functions by own time.

    python -m bench.profile [--rate 60] [--matters 3000] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import sys
import tempfile
import time
from pathlib import Path

from devstack.stack import Stack

from .load import measure
from .procstats import cpu_seconds


def all_pids() -> dict[int, str]:
    pids = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                pids[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return pids


def group_of(cmdline: str, services: dict[int, str], pid: int) -> str | None:
    if pid in services:
        return services[pid]
    if "postgres" in cmdline:
        return "postgres"
    if "kafka" in cmdline.lower() and "java" in cmdline:
        return "kafka"
    return None


def cpu_by_group(services: dict[int, str]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for pid, cmdline in all_pids().items():
        group = group_of(cmdline, services, pid)
        if group is not None:
            try:
                totals[group] = totals.get(group, 0.0) + cpu_seconds(pid)
            except OSError:
                continue
    return totals


# uvicorn re-raises SIGTERM after its graceful shutdown, under the handler it found at start:
# ours, which writes the profile before leaving.
PROFILED = """
import cProfile, runpy, signal, sys, time
name, out = sys.argv[1], sys.argv[2]
profile = cProfile.Profile(time.process_time)  # CPU time: waiting is not cost
def leave(*_):
    profile.disable()
    profile.dump_stats(out)
    sys.exit(0)
signal.signal(signal.SIGTERM, leave)
sys.argv = [name]
profile.enable()
runpy.run_module(name, run_name="__main__")
leave()
"""


async def run(args: argparse.Namespace, outdir: Path) -> None:
    stack = Stack.in_temp_dir()
    stack.service_argv = lambda name: [sys.executable, "-c", PROFILED, name, str(outdir / f"{name}.prof")]
    try:
        stack.start_infra()
        stack.start_services()
        services = {p.child.proc.pid: name for name, p in stack.services.items()}  # type: ignore[union-attr]
        await measure(stack, 300, args.rate / 2, settle_seconds=60)  # warm up
        before, t0 = cpu_by_group(services), time.monotonic()
        result = await measure(stack, args.matters, args.rate, settle_seconds=120)
        elapsed = time.monotonic() - t0
        after = cpu_by_group(services)
        print(f"{result.summary()}")
        scored = len(result.scored) or 1
        print(f"{'process':<12} {'cores':>6} {'ms CPU per matter':>18}")
        for group in sorted(after, key=lambda g: -(after[g] - before.get(g, 0.0))):
            used = after[group] - before.get(group, 0.0)
            print(f"{group:<12} {used / elapsed:>6.2f} {1000 * used / scored:>18.2f}")
    finally:
        stack.stop()
    for name in ("intake", "dispatch", "enforcement", "appraisal"):
        path = outdir / f"{name}.prof"
        if path.exists():
            print(f"\n===== {name}")
            pstats.Stats(str(path)).sort_stats("tottime").print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--matters", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="a directory to keep the <service>.prof files in")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args, args.keep.resolve()))
        return
    with tempfile.TemporaryDirectory(prefix="townflow-profile-") as outdir:
        asyncio.run(run(args, Path(outdir)))


if __name__ == "__main__":
    main()
