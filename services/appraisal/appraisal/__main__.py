"""`python -m appraisal` runs the service; `python -m appraisal rebuild --into DSN [--compare]`
replays every topic into an empty database (see rebuild.py); `python -m appraisal what-if
--rules FILE --period YYYY-MM [--town CODE]` prints a month's figures under other rules beside the
live ones (see whatif.py); `python -m appraisal audit verify|prune` checks or prunes its audit
trail (townflow_shared.audit_trail)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from townflow_shared.logs import comparison_options, run_service

from .settings import AppraisalSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m appraisal")
    sub = parser.add_subparsers(dest="command")
    p_rebuild = sub.add_parser("rebuild", help="replay every topic into an empty database")
    p_rebuild.add_argument("--into", required=True, help="PostgreSQL URL of the empty target database")
    p_rebuild.add_argument("--compare", action="store_true",
                           help="then compare every period's figures with the live database (exit 1 on a difference)")
    p_what_if = sub.add_parser("what-if", help="a month's figures under other rules, beside the live ones")
    p_what_if.add_argument("--rules", required=True, help="a YAML file: rules.yaml's appraisal section, or part of it")
    p_what_if.add_argument("--period", required=True, help="YYYY-MM")
    comparison_options(p_what_if)
    settings = AppraisalSettings()
    if (args := run_service("appraisal.app:create_app", settings, parser)) is None:
        return
    if args.command == "what-if":
        import yaml

        with open(args.rules, encoding="utf-8") as f:
            changes = yaml.safe_load(f) or {}
        sys.exit(asyncio.run(_what_if(settings, args.rules, changes, args.period, args.town, args.json)))
    sys.exit(asyncio.run(_rebuild(settings, args.into, args.compare)))


async def _what_if(settings: AppraisalSettings, rules_file: str, changes: dict[str, Any], period: str,
                   town_code: str | None, as_json: bool) -> int:
    import json

    from pydantic import ValidationError

    from townflow_shared import db
    from townflow_shared.county import load_county

    from .models import is_period
    from .unit_of_work import PostgresUnitOfWork
    from .whatif import read_month, rules_with, table, what_if

    if not is_period(period):
        print(f"--period {period!r}: YYYY-MM, 2000-01 to 2100-12", file=sys.stderr)
        return 2
    county = load_county(settings.town_dir)
    town = county.town(town_code) if town_code else county.only_town
    if town is None:
        print(f"--town: one of {', '.join(sorted(county.towns))}", file=sys.stderr)
        return 2
    try:
        other = rules_with(town.rules.appraisal, changes)
    except ValidationError as exc:
        print(f"{rules_file}: {exc}", file=sys.stderr)
        return 2
    database = db.Database()
    database.use(await db.create_pool(settings.database_url.get_secret_value(), 1, 2))
    try:
        async with PostgresUnitOfWork(database, readonly=True) as uow:  # one snapshot, only read
            month = await read_month(uow.store, town, period)
        result = await what_if(month, town, period, other)
    finally:
        await database.pool.close()
    print(json.dumps(result, ensure_ascii=False, indent=2) if as_json else table(result))
    return 0


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
