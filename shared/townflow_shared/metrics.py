"""Prometheus metrics shared by every service, on one registry served at /metrics.

Events consumed (by topic and outcome), handler durations and batch sizes are counted by our
batch consumer (FastStream's Prometheus middleware would count batches, not events); the
outbox, DLQ and HTTP figures are ours too.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

OUTBOX_PUBLISHED = Counter(
    "townflow_outbox_published_total", "Events the outbox relay published, by topic",
    ["service", "topic"], registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "townflow_outbox_backlog", "Events written to the outbox and not yet published",
    ["service"], registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "townflow_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event",
    ["service"], registry=REGISTRY,
)
OUTBOX_ERRORS = Counter(
    "townflow_outbox_relay_errors_total", "Relay cycles that failed and will be retried",
    ["service"], registry=REGISTRY,
)
DLQ_MESSAGES = Counter(
    "townflow_dlq_messages_total", "Messages sent to a dead-letter topic, by original topic",
    ["service", "topic"], registry=REGISTRY,
)
CONSUMER_RETRIES = Counter(
    "townflow_consumer_retries_total",
    "Consumed batches that failed for a reason other than poison and will be retried, by error type",
    ["service", "error"], registry=REGISTRY,
)
CONSUMER_RETRYING = Gauge(
    "townflow_consumer_retrying", "1 while the consumer waits out an error (database or broker away), else 0",
    ["service"], registry=REGISTRY,
)
DUPLICATES_SKIPPED = Counter(
    "townflow_inbox_duplicates_total", "Redelivered events the inbox recognised and skipped",
    ["service", "topic"], registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "townflow_http_requests_total", "HTTP requests by route and status",
    ["service", "method", "route", "status"], registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "townflow_http_request_duration_seconds", "HTTP request duration by route",
    ["service", "method", "route"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_CONSUMED = Counter(
    "townflow_events_consumed_total", "Consumed events by topic and outcome (handled, duplicate, dead_lettered)",
    ["service", "topic", "outcome"], registry=REGISTRY,
)
HANDLER_DURATION = Histogram(
    "townflow_event_handler_duration_seconds", "Time one event's handler took, by topic",
    ["service", "topic"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
BATCH_SIZE = Histogram(
    "townflow_consume_batch_size", "Records per consumed batch (one transaction each)",
    ["service"], registry=REGISTRY, buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
OUTBOX_PARKED = Counter(
    "townflow_outbox_parked_total", "Outbox rows the broker refused for good, moved to outbox_parked, by topic",
    ["service", "topic"], registry=REGISTRY,
)
OUTBOX_PARKED_ROWS = Gauge(
    "townflow_outbox_parked_rows", "Rows waiting in outbox_parked for an operator (re-publish or discard)",
    ["service"], registry=REGISTRY,
)
TOPIC_RETENTION_MS = Gauge(
    "townflow_topic_retention_ms", "retention.ms of a contract topic as read from the broker at start-up (-1: forever)",
    ["service", "topic"], registry=REGISTRY,
)
TOPIC_RETENTION_TOO_SHORT = Gauge(
    "townflow_topic_retention_too_short", "1 when a contract topic keeps its messages for less time than it should",
    ["service", "topic"], registry=REGISTRY,
)
