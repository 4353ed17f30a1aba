"""The guard at the edge of every service and the console: hostile input is refused before any
route sees it, as a problem document, cheaply, and without holding up the event loop.

One plain-ASGI middleware (`InputGuard`) answers:
- 414 `request.uri_too_long` for a URL longer than the limit (uvicorn reads heads up to
  `http_max_head_bytes`, see logs.serve, so a long URL gets this answer, not a reset);
- 413 `request.body_too_large` for a body over the limit: on its Content-Length before a byte
  of it is read, or as soon as a chunked body passes it;
- 408 `request.body_too_slow` when the body has not arrived within the time allowed;
- for a JSON body: 422 `request.body_too_many_members` / `request.body_too_deep` counted on the
  bytes before any parse (a parse costs the GIL for as long as it runs, so only bodies known to be
  small in members are parsed), 400 `request.malformed_json`, and 422 naming the field for NaN,
  Infinity or a number too large for a float (`value.not_finite`), a lone UTF-16 surrogate
  (`value.lone_surrogate`) and NUL (`value.nul_character`, PostgreSQL text cannot hold it);
- NUL in the path or a query parameter.

Nothing here is recursive: JSON nested thousands deep is a 422, never a RecursionError.
Refusals never echo the input: a field name is cut short, no value is repeated.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import (
    BODY_TOO_DEEP,
    BODY_TOO_LARGE,
    BODY_TOO_MANY_KEYS,
    BODY_TOO_SLOW,
    MALFORMED_JSON,
    NOT_FINITE,
    NUL,
    SURROGATE,
    TOO_MANY_DIGITS,
    URI_TOO_LONG,
    Refusal,
    invalid,
)

if TYPE_CHECKING:
    from .settings import ServiceSettings


@dataclass(frozen=True)
class EdgeLimits:
    """What the guard lets through: the settings `TOWNFLOW_HTTP_*`, whose defaults are written
    once, in settings.py."""

    max_body_bytes: int
    max_json_depth: int
    max_json_members: int
    body_timeout_seconds: float
    max_url_length: int
    # A multipart body (photos: the only uploads) may be this large; 0: as large as any body.
    max_upload_bytes: int = 0

    @classmethod
    def defaults(cls) -> EdgeLimits:
        from .settings import ServiceSettings

        return cls.of(ServiceSettings.model_construct())  # the defaults, without reading the environment

    @classmethod
    def of(cls, settings: ServiceSettings) -> EdgeLimits:
        return cls(max_body_bytes=settings.http_max_body_bytes, max_json_depth=settings.http_max_json_depth,
                   max_json_members=settings.http_max_json_members,
                   body_timeout_seconds=settings.http_body_timeout_seconds,
                   max_url_length=settings.http_max_url_length, max_upload_bytes=settings.http_max_upload_bytes)


# A field named in a refusal is cut to this: a 500 KB key is not echoed back.
FIELD_PART_CHARS = 64
FIELD_CHARS = 200
# Python refuses to turn more digits than this into an int (sys.int_info.default_max_str_digits).
MAX_INT_DIGITS = 4300
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89abAB]|\\u[dD][c-fC-F]|\xed[\xa0-\xbf]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Outside strings only brackets, commas and colons make structure; `accumulate` over the brackets
# gives the depth at each, in C.
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SLICE = 65536  # bytes counted between two turns of the event loop


class InputGuard:
    """Hostile input refused at the edge (see the module docstring). Plain ASGI: Starlette's
    BaseHTTPMiddleware costs a task group and a stream per request."""

    def __init__(self, app: ASGIApp, limits: EdgeLimits | None = None,
                 answer: Callable[[Scope, Refusal], ASGIApp] | None = None) -> None:
        self.app = app
        self.limits = limits or EdgeLimits.defaults()
        # How a refusal is answered: a problem document for the services; the console draws a
        # Chinese page in its layout instead, since a person reads it in a browser.
        self.answer = answer or (lambda scope, refusal: refusal.response())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._url_refusal(scope)
        if refusal is None and scope["method"] in _BODY_METHODS and _has_body(scope):
            refusal, messages = await self._read_body(scope, receive)
            if refusal is None and messages is None:
                return  # the caller went away while sending
            if refusal is None and messages is not None:
                replay = iter(messages)

                async def receive_again() -> Message:
                    return next(replay, None) or await receive()

                await self.app(scope, receive_again, send)
                return
        if refusal is not None:
            await self.answer(scope, refusal)(scope, _no_body, send)
            return
        await self.app(scope, receive, send)

    def _url_refusal(self, scope: Scope) -> Refusal | None:
        query: bytes = scope.get("query_string", b"")
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if len(raw_path) + len(query) + (1 if query else 0) > self.limits.max_url_length:
            return URI_TOO_LONG(limit=self.limits.max_url_length)
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    return invalid([NUL.error(_field(["query", name.replace("\x00", "")]))])
        if "\x00" in scope["path"]:
            return invalid([NUL.error("path")])
        return None

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[Refusal | None, list[Message] | None]:
        """The body's messages (to hand on), or the refusal; (None, None) when the caller left."""
        limit = self.limits.max_body_bytes
        if _is_multipart(scope):
            limit = max(limit, self.limits.max_upload_bytes)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            # Before reading a byte: uvicorn drains what follows without handing it to us.
            return (BODY_TOO_LARGE(limit=limit) if declared.isdigit() else MALFORMED_JSON()), None
        messages: list[Message] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.body_timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None, None
                    messages.append(message)
                    size += len(message.get("body", b""))
                    if size > limit:
                        return BODY_TOO_LARGE(limit=limit), None
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            return BODY_TOO_SLOW(seconds=_seconds(self.limits.body_timeout_seconds)), None
        if _is_json(scope):
            body = b"".join(m.get("body", b"") for m in messages)
            refusal = await json_refusal(body, self.limits)
            if refusal is not None:
                return refusal, None
        return None, messages


async def json_refusal(body: bytes, limits: EdgeLimits) -> Refusal | None:
    """Why this JSON body is refused, or None. Members and depth are counted on the bytes first,
    a slice at a time with the event loop let run between slices, so only a body of few members
    reaches `json.loads` (which holds the GIL for as long as it parses)."""
    if not body.strip():
        return None
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")  # escaped backslashes, then escaped quotes
    if _structure(plain) > limits.max_json_members:  # commas inside strings count here: count again, exactly
        inside, members = False, 0
        for start in range(0, len(plain), _SLICE):
            pieces = plain[start:start + _SLICE].split(b'"')
            members += _structure(b"".join(pieces[1 if inside else 0::2]))
            if members > limits.max_json_members:
                return BODY_TOO_MANY_KEYS(limit=limits.max_json_members)
            inside ^= (len(pieces) - 1) % 2 == 1
            await asyncio.sleep(0)
    # Within the limit, strings are as few as the members (a comma or a colon between any two),
    # so taking them all out at once is cheap.
    outside = b"".join(plain.split(b'"')[::2])
    openers = outside.count(b"[") + outside.count(b"{")
    if outside.count(b"]") + outside.count(b"}") != openers:
        return MALFORMED_JSON()  # so the brackets walked below are as few as the members
    brackets = outside.translate(None, _NOT_BRACKETS)
    if brackets and max(accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > limits.max_json_depth:
        return BODY_TOO_DEEP(limit=limits.max_json_depth)
    marks: list[_Mark] = []
    try:
        document = json.loads(body, parse_constant=lambda _: _mark(marks, NOT_FINITE),
                              parse_float=lambda text: _finite(text, marks),
                              parse_int=lambda text: _integer(text, marks))
    except RecursionError:  # cannot happen within the depth limit; kept as a guard of the guard
        return BODY_TOO_DEEP(limit=limits.max_json_depth)
    except ValueError:  # JSONDecodeError, and bytes that are not UTF-8/16/32
        return MALFORMED_JSON()
    text_suspect = b"\\u0000" in body or _ESCAPED_SURROGATE.search(body) is not None
    if not marks and not text_suspect:
        return None
    for path, value in _walk(document):
        if isinstance(value, _Mark):
            params = {"max_digits": MAX_INT_DIGITS, "decimal_places": 0} if value.code is TOO_MANY_DIGITS else {}
            return invalid([value.code.error(_field(path), **params)])
        if isinstance(value, str) and text_suspect:
            if "\x00" in value:
                return invalid([NUL.error(_field(path))])
            if _LONE_SURROGATE.search(value):
                return invalid([SURROGATE.error(_field(path))])
    return None


@dataclass(frozen=True)
class _Mark:
    """Stands in the parsed document for a number refused, so the walk can name its field."""

    code: Any


def _mark(marks: list[_Mark], code: Any) -> _Mark:
    mark = _Mark(code)
    marks.append(mark)
    return mark


def _finite(text: str, marks: list[_Mark]) -> float | _Mark:
    value = float(text)
    return value if math.isfinite(value) else _mark(marks, NOT_FINITE)


def _integer(text: str, marks: list[_Mark]) -> int | _Mark:
    return int(text) if len(text) <= MAX_INT_DIGITS else _mark(marks, TOO_MANY_DIGITS)


class _Key(str):
    """A member's name met as a value of the walk (its NUL or surrogate is the fault)."""


def _walk(document: Any) -> Iterator[tuple[list[str | int], Any]]:
    """Every value with its path, keys included (as `_Key`), depth first, with a stack of our own."""
    stack: list[tuple[list[str | int], Any]] = [([], document)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            for key, item in value.items():
                yield [*path, key], _Key(key)
                stack.append(([*path, key], item))
        elif isinstance(value, list):
            stack.extend(([*path, i], item) for i, item in enumerate(value))


def _field(path: list[str | int]) -> str:
    """A path as a dotted field name, each part and the whole cut short, NULs and lone
    surrogates dropped (the document is JSON and names no input in bulk)."""
    parts = [_LONE_SURROGATE.sub("", str(p).replace("\x00", ""))[:FIELD_PART_CHARS] for p in path]
    if parts and parts[0] == "query":
        parts = parts[1:]
    return ".".join(parts)[:FIELD_CHARS] or "body"


def _structure(text: bytes) -> int:
    """Members and items, counted on JSON text outside its strings: each comma, each container."""
    return text.count(b",") + text.count(b"[") + text.count(b"{")


def _has_body(scope: Scope) -> bool:
    declared = _header(scope, b"content-length")
    return (declared is not None and declared != "0") or _header(scope, b"transfer-encoding") is not None


def _is_json(scope: Scope) -> bool:
    """As FastAPI decides to parse a body as JSON: `application/json` or `application/*+json`."""
    content_type = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    main, _, sub = content_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _is_multipart(scope: Scope) -> bool:
    return (_header(scope, b"content-type") or "").lower().startswith("multipart/form-data")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1")).strip()
    return None


def _seconds(value: float) -> int | float:
    return int(value) if value == int(value) else value


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
