"""`python -m intake` runs the service. `python -m intake data re-encrypt [--every]` seals every
matter's personal data under the current key (TOWNFLOW_INTAKE_DATA_KEY_ID) while the service runs;
`python -m intake data erase` erases now what the retention period lets go; `python -m intake data
new-key [--algorithm sm4-gcm]` prints a key for TOWNFLOW_INTAKE_DATA_KEYS
(docs/security-encryption.md). `python -m intake audit verify|prune` checks or prunes its
audit trail (townflow_shared.audit_trail)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from townflow_shared import audit_trail
from townflow_shared.logs import serve, setup_logging

from .settings import IntakeSettings


def main() -> None:
    audit_trail.cli(IntakeSettings())  # `python -m intake audit verify|prune`
    parser = argparse.ArgumentParser(prog="python -m intake")
    sub = parser.add_subparsers(dest="command")
    data = sub.add_parser("data", help="the citizen's personal data at rest").add_subparsers(dest="action",
                                                                                               required=True)
    re_encrypt = data.add_parser("re-encrypt", help="seal every matter under the current key, in batches")
    re_encrypt.add_argument("--batch-size", type=int, default=500)
    re_encrypt.add_argument("--every", action="store_true",
                            help="every matter, not only those under another key (after a new lookup key)")
    data.add_parser("erase", help="erase now the personal data of matters closed before the retention period")
    new_key = data.add_parser("new-key", help="print a new key as TOWNFLOW_INTAKE_DATA_KEYS takes it")
    new_key.add_argument("--algorithm", choices=["aes-256-gcm", "sm4-gcm"], default="aes-256-gcm")
    args = parser.parse_args()
    settings = IntakeSettings()
    if args.command is None:
        serve("intake.app:create_app", settings)
        return
    if args.action == "new-key":
        from .personal_data import new_key_spec

        print(new_key_spec(args.algorithm))
        return
    setup_logging(settings.service_name, "WARNING")
    sys.exit(asyncio.run(_data(settings, args.action, args.batch_size if args.action == "re-encrypt" else 0,
                               getattr(args, "every", False))))


async def _data(settings: IntakeSettings, action: str, batch_size: int, every: bool) -> int:
    from townflow_shared import db
    from townflow_shared.clock import Clock
    from townflow_shared.county import load_county

    from . import flows, store
    from .personal_data import Keyring

    keyring = Keyring.from_settings(settings)
    database = db.Database()
    database.use(await db.create_pool(settings.database_url.get_secret_value(), 1, 2, service="intake"))
    unit_of_work = store.unit_of_work(database)
    try:
        if action == "re-encrypt":
            done = await flows.reseal(unit_of_work, keyring, batch_size, every=every,
                                      report=lambda line: print(line, flush=True))
            print(f"done: {done.moved} matters sealed under {keyring.current.key_id}; "
                  f"{len(done.unreadable)} could not be opened")
            return 1 if done.unreadable else 0
        clock = Clock()
        deps = flows.Deps(settings=settings, county=load_county(settings.town_dir), clock=clock,
                          unit_of_work=unit_of_work, filing_writer=flows.filing_writer(unit_of_work, clock, keyring),
                          citizen_ref_key=None, keyring=keyring)
        print(f"erased the personal data of {await flows.erase_expired_personal_data(deps)} matters")
        return 0
    finally:
        await database.pool.close()


if __name__ == "__main__":
    main()
