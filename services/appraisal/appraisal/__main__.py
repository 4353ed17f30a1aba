"""`python -m appraisal` runs the service; `python -m appraisal rebuild --into DSN [--compare]`
replays every topic into an empty database (see rebuild.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from townflow_shared.logs import serve, setup_logging

from .settings import AppraisalSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m appraisal")
    sub = parser.add_subparsers(dest="command")
    p_rebuild = sub.add_parser("rebuild", help="replay every topic into an empty database")
    p_rebuild.add_argument("--into", required=True, help="PostgreSQL URL of the empty target database")
    p_rebuild.add_argument("--compare", action="store_true",
                           help="then compare every period's figures with the live database (exit 1 on a difference)")
    args = parser.parse_args()
    settings = AppraisalSettings()
    if args.command != "rebuild":
        serve("appraisal.app:create_app", settings)
        return
    setup_logging(settings.service_name, "WARNING")
    sys.exit(asyncio.run(_rebuild(settings, args.into, args.compare)))


async def _rebuild(settings: AppraisalSettings, into: str, compare: bool) -> int:
    from .rebuild import differences, rebuild, snapshot

    await rebuild(settings, into, report=lambda line: print(line, flush=True))
    if not compare:
        return 0
    diffs = differences(await snapshot(settings, settings.database_url.get_secret_value()),
                        await snapshot(settings, into))
    if diffs:
        print(f"{len(diffs)} differences:", *diffs[:50], sep="\n")
        return 1
    print("figures identical to the live database")
    return 0


if __name__ == "__main__":
    main()
