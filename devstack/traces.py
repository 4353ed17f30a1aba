"""A small local trace backend: it receives OTLP/HTTP spans from the services and answers
`GET /api/traces/<trace id>` and `GET /api/traces?service=<name>` with JSON, so a newcomer can read a
matter's trace on a machine without Jaeger, and tests can assert on the spans the real services
export. Spans are kept in memory (the newest 200,000)."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[tuple[str, str], ...]
    attributes: tuple[tuple[str, str], ...]


class OtlpReceiver:
    def __init__(self, port: int = 0) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path.startswith("/api/traces/"):
                    spans = receiver.trace(url.path.rsplit("/", 1)[-1])
                    body: Any = {"data": [{"traceID": url.path.rsplit("/", 1)[-1],
                                           "spans": [asdict(s) for s in spans]}] if spans else []}
                elif url.path == "/api/traces":
                    service = parse_qs(url.query).get("service", [None])[0]
                    body = {"data": receiver.recent_traces(service)}
                else:
                    self.send_error(404)
                    return
                payload = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                receiver._add(request)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _add(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "?")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    spans.append(ReceivedSpan(
                        service=service, name=span.name, kind=span.kind, trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(), parent_span_id=span.parent_span_id.hex(),
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        attributes=tuple((a.key, a.value.string_value) for a in span.attributes)))
        with self._lock:
            self.spans.extend(spans)
            del self.spans[:-200_000]

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def recent_traces(self, service: str | None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest traces (optionally those touching `service`), with their services."""
        with self._lock:
            spans = list(self.spans)
        traces: dict[str, set[str]] = {}
        for span in reversed(spans):
            traces.setdefault(span.trace_id, set()).add(span.service)
        return [{"traceID": t, "services": sorted(s)} for t, s in traces.items()
                if service is None or service in s][:limit]

    def linking_to(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if any(t == trace_id for t, _ in s.links)]
