"""The one way the console reaches the four services: HTTP with the signed-in person's token for
that service, a client span continuing the page's trace (W3C traceparent), and every refusal
turned into a `ServiceError` the pages show in plain words next to the field it names."""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Protocol

import httpx
from opentelemetry import propagate, trace

from townflow_shared.county import County
from townflow_shared.telemetry import tracer

from .accounts import Person
from .errors import ServiceError, refusal
from .metrics import SERVICE_CALLS, SERVICE_DURATION
from .names import CountyNames, TownNames

SERVICES = ("intake", "dispatch", "enforcement", "appraisal")  # whose audit trails the auditor searches
# The address of the browser whose page is calling, set by `web.guard` for the request.
browser_address: ContextVar[str | None] = ContextVar("console_browser_address", default=None)


class TokenSource(Protocol):
    """Where the person's token for a service comes from: the console's own signer (tokens.py) or
    the county's OIDC provider by token exchange (oidc.py)."""

    async def token_for(self, person: Person, service: str) -> str: ...


class Services:
    def __init__(self, urls: dict[str, str], tokens: TokenSource, client: httpx.AsyncClient,
                 county: County | None = None) -> None:
        self._urls = urls
        self._tokens = tokens
        self._client = client
        self.names = CountyNames(county) if county is not None else None

    def names_for(self, person: Person | None) -> TownNames | None:
        """The codes a refusal's params may name, and its clock: the person's town's (a county
        role's: the county's)."""
        return self.names.of(person.town if person is not None else None) if self.names is not None else None

    async def call(self, person: Person | None, service: str, method: str, path: str, *,
                   params: dict[str, Any] | None = None, json: Any = None,
                   headers: dict[str, str] | None = None, data: dict[str, str] | None = None,
                   files: list[tuple[str, tuple[str, bytes, str]]] | None = None, under: str | None = None) -> Any:
        """The service's JSON answer; `ServiceError` for any 4xx/5xx or when it cannot be reached.
        `data` and `files`: a multipart body (photos: `files` as httpx takes them); `under`, the
        multipart field holding the command's JSON, whose refusals name fields under it
        (`filing.item_code`): the page shows them beside its own inputs (`item_code`)."""
        response = await self._send(person, service, method, path, params=params, json=json, headers=headers,
                                    data=data, files=files, under=under)
        return response.json() if response.content else None

    async def download(self, person: Person | None, service: str, path: str, *,
                       params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """A file the service answers, headers read and body not: the page streams it on and
        closes it (a monthly spreadsheet need not sit in the console's memory)."""
        return await self._send(person, service, "GET", path, params=params, headers=headers, stream=True)

    async def _send(self, person: Person | None, service: str, method: str, path: str, *,
                    params: dict[str, Any] | None = None, json: Any = None,
                    headers: dict[str, str] | None = None, stream: bool = False,
                    data: dict[str, str] | None = None, files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
                    under: str | None = None) -> httpx.Response:
        sent = dict(headers or {})
        if address := browser_address.get():  # the services' audit records say where the person sat
            sent.setdefault("X-Forwarded-For", address)
        if person is not None:
            sent["Authorization"] = f"Bearer {await self._tokens.token_for(person, service)}"
        query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        started = time.perf_counter()
        status = "unreachable"
        with tracer().start_as_current_span(f"{method} {service}", kind=trace.SpanKind.CLIENT,
                                            attributes={"http.request.method": method, "server.address": service,
                                                        "url.path": path}) as span:
            propagate.inject(sent)  # the service's server span continues this trace
            try:
                request = self._client.build_request(method, self._urls[service] + path, params=query, json=json,
                                                     data=data, files=files, headers=sent)
                response = await self._client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                raise ServiceError(0, f"无法连接{SERVICE_NAMES[service]}服务，请稍后再试。") from exc
            finally:
                SERVICE_DURATION.labels(service, method).observe(time.perf_counter() - started)
            status = str(response.status_code)
            span.set_attribute("http.response.status_code", response.status_code)
            SERVICE_CALLS.labels(service, method, status).inc()
            if response.status_code >= 400:
                if stream:  # the refusal's words are in the body: read it, then let the connection go
                    await response.aread()
                    await response.aclose()
                raise refusal(response, self.names_for(person), under)
            return response


SERVICE_NAMES = {"intake": "受理", "dispatch": "派单", "enforcement": "执法", "appraisal": "考核", "notify": "消息"}
