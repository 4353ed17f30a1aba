"""One log format for every service: time, level, service, trace id, message. No payloads:
events and requests may hold what must not reach a log line."""

from __future__ import annotations

import argparse
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
                h11_max_incomplete_event_size=settings.http_max_head_bytes,
                timeout_keep_alive=settings.http_keep_alive_seconds)


def run_service(app_factory: str, settings: ServiceSettings,
                parser: argparse.ArgumentParser | None = None) -> argparse.Namespace | None:
    """`python -m <service>`: `audit verify|prune` when those are the arguments
    (townflow_shared.audit_trail); else, with `parser` (a service's own commands, subparsers under
    `command`), the arguments of a command given, logging set up for a command line; else the
    service, and None once it has stopped."""
    audit_trail.cli(settings)
    if parser is not None and (args := parser.parse_args()).command is not None:
        setup_logging(settings.service_name, "WARNING")
        return args
    serve(app_factory, settings)
    return None


def comparison_options(command: argparse.ArgumentParser) -> None:
    """The options every "beside the live figures" command shares (appraisal's what-if, dispatch's
    rehearse): which town, and JSON (what the API answers) instead of a table."""
    command.add_argument("--town", help="the town's code (a county deployment's towns; default: the only one)")
    command.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
