"""One log format for every service: time, level, service, trace id, message. No payloads:
events and requests may hold what must not reach a log line."""

from __future__ import annotations

import logging

from opentelemetry import trace

from . import audit_trail
from .settings import ServiceSettings


class _TraceIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else "-"
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_TraceIdFilter())
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s {service} trace=%(trace_id)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)  # one line per message is noise at our volume
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def serve(app_factory: str, settings: ServiceSettings) -> None:
    """Run a service's ASGI app with uvicorn, logs set up first."""
    import uvicorn

    setup_logging(settings.service_name, settings.log_level)
    # h11 refuses a head larger than its buffer with a 400 and closes mid-upload, which the
    # caller sees as a reset: a buffer larger than any URL we answer 414 to (guards.InputGuard).
    uvicorn.run(app_factory, factory=True, host=settings.http_host, port=settings.http_port,
                log_config=None, access_log=False, http="h11", forwarded_allow_ips=settings.http_forwarded_allow_ips,
                h11_max_incomplete_event_size=settings.http_max_head_bytes)


def run_service(app_factory: str, settings: ServiceSettings) -> None:
    """The whole `python -m <service>` of a service with no commands of its own: `audit
    verify|prune` when those are the arguments (townflow_shared.audit_trail), else the service."""
    audit_trail.cli(settings)
    serve(app_factory, settings)
