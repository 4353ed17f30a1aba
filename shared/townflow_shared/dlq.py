"""Dead letters (SPEC §6.1): only poison goes to `<topic>.dlq`.

A record is poison when it can never succeed, and that is decided positively: it is not JSON,
does not validate as its topic's event, belongs on another topic, or a handler refuses it by the
service's own rules (`Rejected`). It goes, unchanged, to `<topic>.dlq` with headers naming the
error, the service and where it came from; it is written to the outbox in the transaction that
records it in the inbox, so a redelivery (a crash, a rebalance, a rewound group) never
dead-letters it twice. Everything else — a database that is away, read-only after a failover,
full or slow, a lock or serialisation failure, a broker error, even a bug — is an outage to wait
out: the batch is retried (see retry.py), never dead-lettered.
"""

from __future__ import annotations

import json
import re

from aiokafka import ConsumerRecord
from pydantic import ValidationError


class Rejected(Exception):
    """A handler refuses an event by the service's own rules: it can never succeed."""


class TopicMismatch(ValueError):
    """An event arrived on a topic other than its own."""


# What parsing a record can raise for a record that will never parse.
UNPARSABLE: tuple[type[BaseException], ...] = (ValidationError, ValueError, UnicodeDecodeError, TopicMismatch)


def describe(exc: BaseException) -> str:
    """A reason without the offending values: a bad message may hold what must not be logged."""
    if isinstance(exc, ValidationError):
        parts = [f"{_field_path(e['loc'])}: {e['msg']}"
                 for e in exc.errors(include_input=False, include_url=False)]
        return f"validation failed: {'; '.join(parts)}"[:1000]
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return f"not JSON: {type(exc).__name__} at position {getattr(exc, 'pos', '?')}"
    return f"{type(exc).__name__}: {exc}"[:1000]


def _field_path(loc: tuple[int | str, ...]) -> str:
    """`data.ticket_no`, without the handler's parameter name and the union's event-type tag."""
    parts = [str(p) for p in loc]
    while parts and (parts[0] == "event" or re.fullmatch(r"[a-z_]+\.[a-z_]+\.[a-z_]+", parts[0])):
        parts.pop(0)
    return ".".join(parts) or "(message)"


def dead_letter_headers(record: ConsumerRecord, service: str, exc: BaseException) -> dict[str, str]:
    """The record's own headers (as text) and what went wrong, where and for whom."""
    original = {k: v.decode(errors="replace") for k, v in (record.headers or ()) if not k.startswith("x-dlq-")}
    return original | {
        "x-dlq-error": describe(exc),
        "x-dlq-error-type": type(exc).__name__,
        "x-dlq-service": service,
        "x-dlq-topic": record.topic,
        "x-dlq-partition": str(record.partition),
        "x-dlq-offset": str(record.offset),
    }
