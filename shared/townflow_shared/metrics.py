"""Prometheus metrics shared by every service, on one registry served at /metrics.

Events consumed (by topic and outcome), handler durations and batch sizes are counted by our
batch consumer (FastStream's Prometheus middleware would count batches, not events); the
outbox, DLQ and HTTP figures are ours too.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)


# Every metric of ours is on REGISTRY (what /metrics serves): one made elsewhere would never be seen.
def counter(name: str, documentation: str, *labels: str) -> Counter:
    return Counter(name, documentation, labels, registry=REGISTRY)


def gauge(name: str, documentation: str, *labels: str) -> Gauge:
    return Gauge(name, documentation, labels, registry=REGISTRY)


def histogram(name: str, documentation: str, *labels: str, buckets: Sequence[float]) -> Histogram:
    return Histogram(name, documentation, labels, registry=REGISTRY, buckets=buckets)


OUTBOX_PUBLISHED = counter("townflow_outbox_published_total", "Events the outbox relay published, by topic",
                           "service", "topic")
OUTBOX_BACKLOG = gauge("townflow_outbox_backlog", "Events written to the outbox and not yet published",
                       "service")
OUTBOX_OLDEST_AGE = gauge("townflow_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event",
                          "service")
# The audit trail (audit_trail.py): records written and not yet chained. A backlog that grows, or
# an oldest record older than seconds, means the sealing pass stalls: records are then protected
# by the trigger alone.
AUDIT_UNSEALED = gauge("townflow_audit_unsealed", "Audit records written and not yet sealed into the chain",
                       "service")
AUDIT_UNSEALED_AGE = gauge("townflow_audit_unsealed_oldest_age_seconds",
                           "Age of the oldest audit record not yet sealed", "service")
OUTBOX_ERRORS = counter("townflow_outbox_relay_errors_total", "Relay cycles that failed and will be retried",
                        "service")
DLQ_MESSAGES = counter("townflow_dlq_messages_total",
                       "Messages sent to a dead-letter topic, by original topic", "service", "topic")
# Each pass of a sender loop (retry.keep_sending: notify's messages, intake's SMS), each replica its
# own: a test waits for passes rather than for a time when it shows that nothing more is sent.
SENDER_PASSES = counter("townflow_sender_passes_total", "Passes of a sender loop (a wake-up that sent or found nothing)",
                        "sender")
CONSUMER_RETRIES = counter("townflow_consumer_retries_total",
                           "Consumed batches that failed for a reason other than poison and will be retried, by error type",
                           "service", "error")
CONSUMER_RETRYING = gauge("townflow_consumer_retrying",
                          "1 while the consumer waits out an error (database or broker away), else 0",
                          "service")
DUPLICATES_SKIPPED = counter("townflow_inbox_duplicates_total",
                             "Redelivered events the inbox recognised and skipped", "service", "topic")
HTTP_REQUESTS = counter("townflow_http_requests_total", "HTTP requests by route and status",
                        "service", "method", "route", "status")
HTTP_DURATION = histogram("townflow_http_request_duration_seconds", "HTTP request duration by route",
                          "service", "method", "route",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
EVENTS_CONSUMED = counter("townflow_events_consumed_total",
                          "Consumed events by topic and outcome (handled, duplicate, dead_lettered)",
                          "service", "topic", "outcome")
HANDLER_DURATION = histogram("townflow_event_handler_duration_seconds",
                             "Time one event's handler took, by topic", "service", "topic",
                             buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
BATCH_SIZE = histogram("townflow_consume_batch_size", "Records per consumed batch (one transaction each)",
                       "service", buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
OUTBOX_PARKED = counter("townflow_outbox_parked_total",
                        "Outbox rows the broker refused for good, moved to outbox_parked, by topic",
                        "service", "topic")
OUTBOX_PARKED_ROWS = gauge("townflow_outbox_parked_rows",
                           "Rows waiting in outbox_parked for an operator (re-publish or discard)", "service")
STUCK_SESSIONS_ENDED = counter("townflow_db_stuck_sessions_ended_total",
                               "Sessions of the service ended because their client stopped mid-statement"
                               " (db.END_STUCK_SESSIONS): a replica paused or stalled", "service")
TOPIC_RETENTION_MS = gauge("townflow_topic_retention_ms",
                           "retention.ms of a contract topic as read from the broker at start-up (-1: forever)",
                           "service", "topic")
TOPIC_RETENTION_TOO_SHORT = gauge("townflow_topic_retention_too_short",
                                  "1 when a contract topic keeps its messages for less time than it should",
                                  "service", "topic")
