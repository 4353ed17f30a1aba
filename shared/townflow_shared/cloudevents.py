"""CloudEvents 1.0 in Kafka binary content mode (SPEC §11): the `ce_*` headers of a message.

The value stays the envelope of SPEC §3.1, byte for byte, so a v1 consumer sees no change; the
headers let any CloudEvents SDK read the same message as an event whose data is that envelope.
They are derived from the value itself when the message leaves the outbox (outbox.py, `_send`),
the one place every outgoing message is built: our events, dead letters, rows an operator
re-publishes and rows enqueued before this existed all get them the same way.

A value that is not an envelope (a dead letter of something that never was one: not a JSON object
with a non-empty id, type, source, town_code and an RFC 3339 time with offset) gets no `ce_*`
header at all: a CloudEvents reader then sees no event rather than a wrong one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

SPECVERSION = "1.0"
CE_PREFIX = "ce_"
# The envelope fields every event has; without them a value is not one of our envelopes.
_REQUIRED = ("id", "type", "source", "time", "town_code")
# CloudEvents extension names are lowercase letters and digits only, so the envelope's
# snake_case names are spelled without the underscore.
EXTENSIONS = {"towncode": "town_code", "correlationid": "correlation_id", "causationid": "causation_id"}


def is_cloudevent_header(name: str) -> bool:
    return name.lower().startswith(CE_PREFIX)


def cloudevent_source(town_code: str, service: str) -> str:
    """`ce_source`: the producing service of one town, as a URI reference."""
    return f"/towns/{town_code}/{service}"


def cloudevent_headers(value: bytes) -> dict[str, str]:
    """The `ce_*` headers of a message whose value is `value`, or {} when it is no envelope.

    `ce_time` is the envelope's `time` exactly as written (RFC 3339 with the town's offset); a
    null `causation_id` (or an empty subject) is left out, as CloudEvents has no null attribute."""
    envelope = _envelope(value)
    if envelope is None:
        return {}
    headers = {
        "ce_specversion": SPECVERSION,
        "ce_id": envelope["id"],
        "ce_source": cloudevent_source(envelope["town_code"], envelope["source"]),
        "ce_type": envelope["type"],
        "ce_time": envelope["time"],
    }
    if envelope.get("subject"):
        headers["ce_subject"] = str(envelope["subject"])
    for extension, field in EXTENSIONS.items():
        if envelope.get(field) not in (None, ""):
            headers[f"{CE_PREFIX}{extension}"] = str(envelope[field])
    return headers


def _envelope(value: bytes) -> dict[str, Any] | None:
    try:
        envelope = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(envelope, dict):
        return None
    if not all(isinstance(envelope.get(f), str) and envelope[f] for f in _REQUIRED):
        return None
    try:  # a dead letter's `time` may be anything; an SDK would refuse a ce_time that is no RFC 3339
        if datetime.fromisoformat(envelope["time"]).tzinfo is None:
            return None
    except ValueError:
        return None
    return envelope
