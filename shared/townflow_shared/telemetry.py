"""OpenTelemetry set up once at start-up; business code never touches it.

The W3C trace context travels in Kafka headers and, between a handler and the outbox relay, in
the outbox row, so one trace follows a matter across every service.
"""

from __future__ import annotations

import functools
import logging

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

log = logging.getLogger(__name__)


def setup_tracing(service_name: str, otlp_endpoint: str | None,
                  exporter: SpanExporter | None = None) -> TracerProvider:
    """Install the global tracer provider; export by OTLP/HTTP when an endpoint is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name,
                                                        "service.namespace": "townflow"}))
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current  # already set in this process (tests run several apps in one)
    trace.set_tracer_provider(provider)
    return provider


def current_trace_headers() -> dict[str, str]:
    """The current W3C trace context as a dict, to store beside an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@functools.cache
def tracer() -> trace.Tracer:
    # Once per process: get_tracer builds a tracer and resets warning filters on every call, a
    # measurable share of a handler's CPU. Before set-up it is a proxy that follows the provider.
    return trace.get_tracer("townflow")


def link_to(carrier: dict[str, str] | None, relation: str = "matter") -> None:
    """Link the current span to another trace (a human action to the matter it acts on)."""
    if not carrier:
        return
    linked = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    if linked.is_valid:
        trace.get_current_span().add_link(linked, {"townflow.link": relation})
