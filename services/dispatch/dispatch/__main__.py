"""`python -m dispatch` runs the service; `python -m dispatch rehearse --town CODE --from DAY --to DAY
--layout DIR [--seed N] [--times drawn|replayed] [--as-of MOMENT] [--json]` replays the town's period on the layout in
DIR (its modules.yaml, posts.yaml, staff.yaml, rules.yaml, catalog.yaml; the others stay the
town's) beside the real one (see rehearsal.py, docs/rehearsal.md); `--town all` rehearses every
town of the county, one line each and the county's sums; `python -m dispatch audit
verify|prune` checks or prunes its audit trail (townflow_shared.audit_trail)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from townflow_shared import audit_trail
from townflow_shared.logs import serve, setup_logging

from .settings import DispatchSettings

if TYPE_CHECKING:
    from townflow_shared.town import Town


def main() -> None:
    audit_trail.cli(DispatchSettings())  # `python -m dispatch audit verify|prune`
    parser = argparse.ArgumentParser(prog="python -m dispatch")
    sub = parser.add_subparsers(dest="command")
    p_rehearse = sub.add_parser("rehearse", help="a past period replayed on another layout, beside the real one")
    p_rehearse.add_argument("--town", help="the town's code (a county deployment's towns; default: the only one),"
                            " or `all`: every town, one line each and the county's sums")
    p_rehearse.add_argument("--from", dest="first", required=True, type=date.fromisoformat,
                            help="the period's first day, YYYY-MM-DD")
    p_rehearse.add_argument("--to", dest="last", required=True, type=date.fromisoformat,
                            help="its last day, YYYY-MM-DD (included)")
    p_rehearse.add_argument("--layout", required=True, type=Path,
                            help="a folder of the layout's changed files (with --town all: DIR/<town code>/ for a"
                                 " town's own, files at DIR's top for every other town)")
    p_rehearse.add_argument("--seed", type=int, default=0, help="the draw of handling times (default 0)")
    p_rehearse.add_argument("--times", choices=("drawn", "replayed"), default="drawn",
                            help="handling times drawn from history (default), or each task's own replayed")
    p_rehearse.add_argument("--as-of", type=datetime.fromisoformat, default=None,
                            help="read the history as it stood then (an ISO moment with its offset; default now)")
    p_rehearse.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    args = parser.parse_args()
    settings = DispatchSettings()
    if args.command is None:
        serve("dispatch.app:create_app", settings)
        return
    setup_logging(settings.service_name, "WARNING")
    sys.exit(asyncio.run(_rehearse(settings, args)))


async def _rehearse(settings: DispatchSettings, args: argparse.Namespace) -> int:
    import json

    from townflow_shared import db
    from townflow_shared.clock import Clock
    from townflow_shared.county import load_county
    from townflow_shared.town import TownConfigError

    from . import rehearsal
    from .flows import rehearsal_of

    county = load_county(settings.town_dir)
    if args.town == "all":
        return await _rehearse_county(settings, args, county.towns)
    town = county.town(args.town) if args.town else county.only_town
    if town is None:
        print(f"--town: one of {', '.join(sorted(county.towns))}", file=sys.stderr)
        return 2
    if args.last < args.first:
        print("--to: the period's last day is before its first", file=sys.stderr)
        return 2
    try:
        layout = rehearsal.alternative_town(town, rehearsal.layout_files(args.layout))
    except TownConfigError as exc:
        print(f"--layout: {exc}", file=sys.stderr)
        return 2
    if args.as_of is not None and args.as_of.tzinfo is None:
        print("--as-of: a moment with its offset (2026-12-15T18:00:00+08:00)", file=sys.stderr)
        return 2
    start, end = rehearsal.period_of_days(args.first, args.last, town)
    pool = await db.create_pool(settings.database_url.get_secret_value(), 1, 2)
    try:
        began = time.perf_counter()
        comparison = await rehearsal_of(pool, town, layout, start, end, args.as_of or Clock().now(), times=args.times,
                                        seed=args.seed)
        took = time.perf_counter() - began
    finally:
        await pool.close()
    if args.json:
        print(json.dumps(rehearsal.as_plain(comparison), ensure_ascii=False, indent=2))
    else:
        print(rehearsal.as_table(comparison))
        print(f"\n({comparison.matters} matters rehearsed twice in {took:.2f} s)")
    return 0


async def _rehearse_county(settings: DispatchSettings, args: argparse.Namespace, towns: Mapping[str, Town]) -> int:
    """`--town all`: every town on its layout (rehearsal.county_layouts), one after the other."""
    import json

    from townflow_shared import db
    from townflow_shared.clock import Clock
    from townflow_shared.town import TownConfigError

    from . import rehearsal
    from .flows import county_rehearsal

    if args.last < args.first:
        print("--to: the period's last day is before its first", file=sys.stderr)
        return 2
    if args.as_of is not None and args.as_of.tzinfo is None:
        print("--as-of: a moment with its offset (2026-12-15T18:00:00+08:00)", file=sys.stderr)
        return 2
    try:
        layouts = rehearsal.county_layouts(towns, args.layout)
    except TownConfigError as exc:
        print(f"--layout: {exc}", file=sys.stderr)
        return 2
    pool = await db.create_pool(settings.database_url.get_secret_value(), 1, 2)
    try:
        began = time.perf_counter()
        done = await county_rehearsal(pool, layouts, args.first, args.last, args.as_of or Clock().now(),
                                      times=args.times, seed=args.seed)
        took = time.perf_counter() - began
    finally:
        await pool.close()
    comparisons = [comparison for comparison, _ in done]
    if args.json:
        print(json.dumps(rehearsal.county_plain(comparisons), ensure_ascii=False, indent=2))
    else:
        print(rehearsal.county_table(comparisons))
        slowest = max(done, key=lambda d: d[1], default=None)
        print(f"\n({sum(c.matters for c in comparisons)} matters of {len(done)} towns rehearsed twice in {took:.2f} s"
              + (f"; the slowest town {slowest[0].town_code} {slowest[1]:.2f} s)" if slowest else ")"))
    return 0


if __name__ == "__main__":
    main()
