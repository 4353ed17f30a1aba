"""Two or more bench-scale results read side by side: for each read and page both runs timed (the
same name and stage), the ratio of one run's p50 and p95 to the first run's, and the median and
quartiles of those ratios — the figure an A/B gives on a shared machine, where single reads swing
by more than any change does. Runs in turn (A B A B) give A/A and B/B ratios too: the spread a
change has to stand out of.

    python -m bench.scale.compare bench/results/scale-A.json bench/results/scale-B.json [...] [--leave-out audit]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

KINDS = ("reads", "pages")


def timed(result: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Every timing of a run by (kind, stage, name): its p50 and p95 in ms."""
    out = {}
    for kind in KINDS:
        for stage, rows in result.get(kind, {}).items():
            for name, row in rows.items():
                if isinstance(row, dict) and isinstance(row.get("p95"), int | float):
                    out[(kind, stage, name)] = {"p50": float(row["p50"]), "p95": float(row["p95"])}
    return out


def quartiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"median": values[0], "q1": values[0], "q3": values[0]} if values else {}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": round(median, 3), "q1": round(q1, 3), "q3": round(q3, 3)}


def ratios(base: dict[str, Any], other: dict[str, Any], leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """`other` against `base` over the timings both have, but those whose name holds a `leave_out`."""
    a, b = timed(base), timed(other)
    common = sorted(k for k in set(a) & set(b) if not any(word in k[2] for word in leave_out))
    by = {p: [b[k][p] / a[k][p] for k in common if a[k][p] > 0] for p in ("p50", "p95")}
    worst = sorted(((b[k]["p95"] / a[k]["p95"], k) for k in common if a[k]["p95"] > 0), reverse=True)[:5]
    return {"common": len(common), "p50": quartiles(by["p50"]), "p95": quartiles(by["p95"]),
            "highest_p95_ratios": [{"ratio": round(r, 2), "kind": k[0], "stage": k[1], "name": k[2]} for r, k in worst]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="bench-scale result JSONs; the first is the base")
    parser.add_argument("--leave-out", action="append", default=[], metavar="WORD",
                        help="leave out the reads and pages whose name holds WORD (e.g. audit: what one variant has nothing of)")
    args = parser.parse_args()
    if len(args.results) < 2:
        parser.error("give at least two results")
    base, *others = [(p, json.loads(p.read_text())) for p in args.results]
    print(json.dumps([{"base": str(base[0]), "other": str(path), **ratios(base[1], result, tuple(args.leave_out))} for path, result in others],
                     indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
