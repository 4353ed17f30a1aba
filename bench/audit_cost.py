"""What the audit trail costs `make bench`'s knee (issue #28's target: at most 5 %), A/B in one run:
`python -m bench` with the same arguments, once per variant per round, the variants taking turns
(A B C A B C ...) so that a busy moment of the shared machine falls on all of them. A variant is
a source tree the services run from (their PYTHONPATH; the harness is this tree's), with the audit
trail as it is there, or with its writes switched off (bench/audit_off: measuring only, never a
setting of the product).

    python -m bench.audit_cost --variant main=/path/to/tree-at-main --variant change=. \\
        --variant off=.:off [--variant points=.:points] [--rounds 2] [-- bench's arguments]

A variant spelt `TREE:points` files the located matters with a point (`python -m bench --points`):
what a point costs the knee (issue #30's target: at most 5 %).

Prints each run's sustained rate (and p99) at every ramp step and the main run, and each
round's ratios to the first variant — of the knee, and of the CPU a matter costs the whole
machine in the main run (services, Kafka, PostgreSQL's backends), which moves far less with the
shared machine's neighbours; writes bench/results/audit-cost-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PACKAGES = ("shared", "services/intake", "services/dispatch", "services/enforcement", "services/appraisal",
            "services/console")
DEFAULT_BENCH = ["--matters", "3000", "--rate", "120", "--ramp", "150,200,250", "--step-matters", "3000",
                 "--bare-messages", "5000"]


def python_path(tree: Path, audit_off: bool) -> str:
    paths = [str(tree / p) for p in PACKAGES] + [str(HERE.parent)]
    return os.pathsep.join(([str(HERE / "audit_off")] if audit_off else []) + paths)


def one_run(name: str, tree: Path, audit_off: bool, bench_args: list[str]) -> dict[str, Any]:
    """One `python -m bench` of a variant; its result file's figures."""
    before = set(RESULTS.glob("2*.json"))
    env = os.environ | {"PYTHONPATH": python_path(tree, audit_off)}
    for attempt in range(3):  # a stack that did not start in time on the busy machine is started again
        if subprocess.run([sys.executable, "-m", "bench", *bench_args], env=env, cwd=HERE.parent).returncode == 0:
            break
        print(f"{name}: bench failed (attempt {attempt + 1}); again", flush=True)
    else:
        raise RuntimeError(f"{name}: bench failed three times")
    [written] = set(RESULTS.glob("2*.json")) - before
    result = json.loads(written.read_text())
    steps = [(s["offered_rate"], s["sustained_throughput"], s["latency_ms"]["p99"]) for s in result["ramp"]]
    main = result["main"]
    return {"variant": name, "file": written.name, "steps": steps,
            "main": (main["offered_rate"], main["sustained_throughput"], main["latency_ms"]["p99"]),
            "cpu_ms_per_matter": main.get("cpu_ms_per_matter"),
            "cpu_ms_by_process": {n: round(1000 * r["cpu_cores"] / max(main["sustained_throughput"], 1e-9), 2)
                                  for n, r in result["resources"].items()},
            "knee": max(s[1] for s in steps) if steps else None, "bare_chain": result["bare_chain"]["throughput"],
            "bare_http": result["bare_http"]["throughput"]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_cost")
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=TREE[:off]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("bench_args", nargs="*", help="python -m bench's arguments (after --)")
    args = parser.parse_args()
    variants = []
    for text in args.variant:
        name, _, spec = text.partition("=")
        tree, *flags = spec.split(":")
        variants.append((name, Path(tree).resolve(), "off" in flags, ["--points"] if "points" in flags else []))
    bench_args = args.bench_args or DEFAULT_BENCH
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for name, tree, off, extra in variants:
            runs.append(one_run(name, tree, off, bench_args + extra) | {"round": r + 1})
            last = runs[-1]
            print(f"round {r + 1} {name}: steps {last['steps']} main {last['main']} knee {last['knee']} "
                  f"CPU {last['cpu_ms_per_matter']} ms a matter", flush=True)
    first = variants[0][0]

    def paired(measure: str) -> dict[str, list[float]]:
        """Each round's ratio of a variant to the first variant's run of the same round."""
        ratios: dict[str, list[float]] = {}
        for r in range(1, args.rounds + 1):
            base = next(x for x in runs if x["round"] == r and x["variant"] == first)
            for x in runs:
                if x["round"] == r and x["variant"] != first and base[measure] and x[measure]:
                    ratios.setdefault(x["variant"], []).append(round(x[measure] / base[measure], 3))
        return ratios

    knee, cpu = paired("knee"), paired("cpu_ms_per_matter")
    result = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "bench_args": bench_args,
              "variants": {n: f"{t}{' (audit writes off)' if o else ''}{' (with points)' if e else ''}"
                           for n, t, o, e in variants}, "runs": runs,
              f"knee_ratio_to_{first}": knee,
              f"knee_ratio_to_{first}_median": {n: statistics.median(v) for n, v in knee.items()},
              f"cpu_per_matter_ratio_to_{first}": cpu,
              f"cpu_per_matter_ratio_to_{first}_median": {n: statistics.median(v) for n, v in cpu.items()}}
    out = RESULTS / f"audit-cost-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
