"""Dead letters: a message that cannot be parsed, validated or handled goes, unchanged, to
`<topic>.dlq` with headers naming the error, the service and where it came from; the consumer
then moves on (see consumer.py). Errors that pass (database or broker unreachable) are retried
instead."""

from __future__ import annotations

import json
import re

import asyncpg
from aiokafka import ConsumerRecord
from pydantic import ValidationError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,
    OSError,
    TimeoutError,
)
RETRY_PAUSE_SECONDS = 1.0


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


def dead_letter_headers(record: ConsumerRecord, service: str, exc: BaseException) -> list[tuple[str, bytes]]:
    original = [(k, v) for k, v in (record.headers or ()) if not k.startswith("x-dlq-")]
    return [
        *original,
        ("x-dlq-error", describe(exc).encode()),
        ("x-dlq-error-type", type(exc).__name__.encode()),
        ("x-dlq-service", service.encode()),
        ("x-dlq-topic", record.topic.encode()),
        ("x-dlq-partition", str(record.partition).encode()),
        ("x-dlq-offset", str(record.offset).encode()),
    ]
