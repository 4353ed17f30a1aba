"""Signing in with a local account, under the failure limits (issue #28, 等保 2.0 level 3:
登录失败处理): after `console_sign_in_failures` failures within `console_sign_in_lock_minutes` the
account waits that long — its right password is refused meanwhile, unchecked —, and a client
address that failed `console_sign_in_address_failures` times waits as well, whatever login it
tries. The counts live in the console's database, so they hold across replicas. A success clears
the account's count.

Each refusal and lock is reported as a `SignInEvent` (`report`): the one place the audit trail
hooks in. No password and no typed login that names no account ever reaches it (a password
typed into the login box would)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from . import rules
from .accounts import Accounts, Person

log = logging.getLogger("console.sign_in")


class FailureStore(Protocol):
    async def for_update(self, subjects: Sequence[str]) -> tuple[datetime, dict[str, list[datetime]]]: ...
    async def save(self, failures: dict[str, list[datetime]]) -> None: ...


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_address: int
    window: timedelta


@dataclass(frozen=True)
class SignInEvent:
    """What the audit trail records of a sign-in: `account` is a login of the county's files, or
    None when the login typed names none."""

    # account_locked: this failure made the account wait; refused_locked, refused_address: an
    # attempt refused unchecked while the account, or the address, waits.
    kind: Literal["sign_in.succeeded", "sign_in.failed", "sign_in.account_locked", "sign_in.refused_locked",
                  "sign_in.refused_address"]
    account: str | None
    wait_seconds: int | None = None


def report(event: SignInEvent) -> None:
    """The audit hook (issue #28): one structured log line per event, for now."""
    log.log(logging.INFO if event.kind == "sign_in.succeeded" else logging.WARNING,
            "%s account=%s wait_seconds=%s", event.kind, event.account or "-",
            event.wait_seconds if event.wait_seconds is not None else "-")


@dataclass(frozen=True)
class Refused:
    """No session: `wait_seconds` set when the limits refused the attempt before any check."""

    wait_seconds: int | None = None


async def check_sign_in(accounts: Accounts, failures: Callable[[], AbstractAsyncContextManager[FailureStore]],
                  limits: Limits, login: str, password: str, address: str) -> Person | Refused:
    """The person, when the password is theirs and neither the account nor the address is waiting."""
    known = login if accounts.knows(login) else None
    by_login, by_address = f"login:{login}", f"address:{address}"
    async with failures() as store:
        now, seen = await store.for_update([by_login, by_address])
        waits = {subject: rules.failure_wait(seen[subject], now, allowed, limits.window)
                 for subject, allowed in ((by_login, limits.per_account), (by_address, limits.per_address))}
        if (wait := waits[by_login]) is not None:
            report(SignInEvent("sign_in.refused_locked", known, wait))
            return Refused(wait)
        if (wait := waits[by_address]) is not None:
            report(SignInEvent("sign_in.refused_address", known, wait))
            return Refused(wait)
        person = await accounts.sign_in(login, password)
        if person is not None:
            await store.save({by_login: []})
            report(SignInEvent("sign_in.succeeded", known))
            return person
        kept = {subject: [*rules.failures_kept(seen[subject], now, limits.window), now] for subject in seen}
        await store.save(kept)
    report(SignInEvent("sign_in.failed", known))
    if (wait := rules.failure_wait(kept[by_login], now, limits.per_account, limits.window)) is not None:
        report(SignInEvent("sign_in.account_locked", known, wait))  # this failure locked it
    return Refused()
