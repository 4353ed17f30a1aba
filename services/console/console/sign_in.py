"""Signing in with a local account, under the failure limits (issue #28, 等保 2.0 level 3:
登录失败处理): after `console_sign_in_failures` failures within `console_sign_in_lock_minutes` the
account waits that long — its right password is refused meanwhile, unchecked —, and a client
address that failed `console_sign_in_address_failures` times waits as well, whatever login it
tries. The counts live in the console's database, so they hold across replicas. A success clears
the account's count.

Every attempt, and each lock it causes, is an audit record (session_audit.py) written in the
transaction that counts it: the count and its record commit together. No password and no typed
login that names no account ever reaches a record (a password typed into the login box would)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from townflow_shared.audit import Entry

from . import rules, session_audit
from .accounts import Accounts, Person
from .session_audit import Account, Where

log = logging.getLogger("console.sign_in")


class FailureStore(Protocol):
    async def for_update(self, subjects: Sequence[str]) -> tuple[datetime, dict[str, list[datetime]]]: ...
    async def save(self, failures: dict[str, list[datetime]]) -> None: ...
    async def record(self, entries: Sequence[Entry]) -> None:
        """Write audit records in the store's transaction."""


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_address: int
    window: timedelta


@dataclass(frozen=True)
class Refused:
    """No session: `wait_seconds` set when the limits refused the attempt before any check."""

    wait_seconds: int | None = None


async def check_sign_in(accounts: Accounts, failures: Callable[[], AbstractAsyncContextManager[FailureStore]],
                        limits: Limits, login: str, password: str, where: Where) -> Person | Refused:
    """The person, when the password is theirs and neither the account nor the address is waiting."""
    holder = accounts.holder(login)
    account = Account.of(holder)
    by_login, by_address = f"login:{login}", f"address:{where.client}"
    entries: list[Entry] = []
    async with failures() as store:
        now, seen = await store.for_update([by_login, by_address])

        def audit(action: str, outcome: str = session_audit.OK, wait: int | None = None, who: Account = account,
                  ) -> None:
            entries.append(session_audit.record(action, now, who, where, outcome,
                                                {"wait_seconds": wait} if wait is not None else None))

        waits = {subject: rules.failure_wait(seen[subject], now, allowed, limits.window)
                 for subject, allowed in ((by_login, limits.per_account), (by_address, limits.per_address))}
        person: Person | None = None
        refused = Refused()
        if (wait := waits[by_login]) is not None:
            audit(session_audit.SIGN_IN, session_audit.ACCOUNT_WAITING, wait)
            refused = Refused(wait)
        elif (wait := waits[by_address]) is not None:
            audit(session_audit.SIGN_IN, session_audit.ADDRESS_WAITING, wait)
            refused = Refused(wait)
        elif (person := await accounts.sign_in(login, password)) is not None:
            await store.save({by_login: []})
            audit(session_audit.SIGN_IN, who=Account.of(person, signed_in=True))
        else:
            kept = {subject: [*rules.failures_kept(seen[subject], now, limits.window), now] for subject in seen}
            await store.save(kept)
            audit(session_audit.SIGN_IN, session_audit.WRONG_PASSWORD if holder else session_audit.UNKNOWN_ACCOUNT)
            # this failure made the account, or the address, wait
            if (wait := rules.failure_wait(kept[by_login], now, limits.per_account, limits.window)) is not None:
                audit(session_audit.ACCOUNT_LOCK, wait=wait)
            if (wait := rules.failure_wait(kept[by_address], now, limits.per_address, limits.window)) is not None:
                entries.append(session_audit.address_lock(now, where.client, wait, where))
        await store.record(entries)
    for entry in entries:  # and the log, as before the audit trail: what an operator greps
        log.log(logging.INFO if entry.outcome == session_audit.OK and entry.action == session_audit.SIGN_IN
                else logging.WARNING, "%s %s account=%s", entry.action, entry.outcome, entry.target_id or "-")
    return person if person is not None else refused
