"""What the console's audit trail records (issue #28; 等保 2.0 level 3, 安全审计 and 身份鉴别):
sign-ins accepted and refused, the locks the failure limits put on an account or an address,
sign-outs, and sessions that ended by themselves (idle, lifetime) or at the county's provider.
Plain functions building the shared `audit.Entry`: the console's store writes each one in the
transaction of what it records, and the shared sealing pass chains them into the console's own
chain, as every service's (townflow_shared.audit_trail, docs/security-audit.md).

A record names the account (`target_id`: a login of the county's files — never what was typed when
it names none: a password typed into the login box would be), who (`actor`: the staff id, once
signed in), the client address, X-Forwarded-For as it came and the correlation id; nothing else
about the person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from opentelemetry import trace

from townflow_shared.audit import OK, Entry

from .accounts import Person

SERVICE = "console"
SIGN_IN = "session.sign_in"  # with a local account
OIDC_SIGN_IN = "session.oidc_sign_in"  # at the county's provider
ACCOUNT_LOCK = "session.account_lock"  # this failure made the account wait
ADDRESS_LOCK = "session.address_lock"  # this failure made the client address wait
SIGN_OUT = "session.sign_out"  # 退出 (or signing in anew over a live session)
IDLE_TIMEOUT = "session.idle_timeout"
LIFETIME_END = "session.lifetime_end"
PROVIDER_END = "session.provider_end"  # the provider refused to renew it: signed out or disabled there
ACTIONS = (SIGN_IN, OIDC_SIGN_IN, ACCOUNT_LOCK, ADDRESS_LOCK, SIGN_OUT, IDLE_TIMEOUT, LIFETIME_END, PROVIDER_END)

# A refused sign-in's outcome (the services' records carry their refusal's code the same way).
WRONG_PASSWORD = "sign_in.wrong_password"  # noqa: S105 - an outcome's code
UNKNOWN_ACCOUNT = "sign_in.unknown_account"
ACCOUNT_WAITING = "sign_in.account_waiting"  # refused unchecked: the account waits
ADDRESS_WAITING = "sign_in.address_waiting"  # refused unchecked: the address waits
OIDC_REFUSED = "sign_in.oidc_refused"
OIDC_UNAVAILABLE = "sign_in.oidc_unavailable"
OUTCOMES = (WRONG_PASSWORD, UNKNOWN_ACCOUNT, ACCOUNT_WAITING, ADDRESS_WAITING, OIDC_REFUSED, OIDC_UNAVAILABLE)


@dataclass(frozen=True)
class Where:
    """Where a request came from, as its records say: the client address the console counts
    (X-Forwarded-For resolved from a trusted ingress), the header as it came, the trace id."""

    client: str
    forwarded_for: str = ""
    correlation_id: str = ""

    @classmethod
    def of(cls, request: Request) -> Where:
        context = trace.get_current_span().get_span_context()
        return cls(request.client.host if request.client is not None else "",
                   request.headers.get("x-forwarded-for", "")[:200],
                   f"{context.trace_id:032x}" if context.is_valid else "")


NOWHERE = Where("")  # what the console does by itself: a session's timeout


@dataclass(frozen=True)
class Account:
    """The account a record is about: its login, and its holder's staff id, roles and town when
    the county's files (or the provider) name one."""

    login: str = ""
    person: Person | None = None
    signed_in: bool = False  # the holder is the actor (a sign-in accepted, a session of theirs)

    @classmethod
    def of(cls, person: Person | None, signed_in: bool = False) -> Account:
        return cls(person.login if person is not None else "", person, signed_in)


def record(action: str, at: datetime, account: Account, where: Where, outcome: str = OK,
           detail: dict[str, Any] | None = None) -> Entry:
    """One record of the console's chain. The holder's town makes it their town auditor's too,
    even for a failure on their account; the actor is the holder only when it was them."""
    person = account.person
    return Entry(service=SERVICE, at=at, actor=person.sub if person and account.signed_in else "",
                 roles=tuple(sorted(person.roles)) if person and account.signed_in else (),
                 town=person.town if person is not None else None, action=action, target_type="account",
                 target_id=account.login[:200], outcome=outcome, client=where.client,
                 forwarded_for=where.forwarded_for, correlation_id=where.correlation_id, detail=detail or {})


def address_lock(at: datetime, address: str, wait_seconds: int, where: Where) -> Entry:
    """The client address waits, whatever login it tries: a record about the address."""
    return Entry(service=SERVICE, at=at, actor="", roles=(), town=None, action=ADDRESS_LOCK, target_type="address",
                 target_id=address[:200], outcome=OK, client=where.client, forwarded_for=where.forwarded_for,
                 correlation_id=where.correlation_id, detail={"wait_seconds": wait_seconds})
