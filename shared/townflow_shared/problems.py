"""Refusals as RFC 9457 problem documents, one shape in every service.

A refusal names a stable `code` (dotted, lower-case: `task.not_assignee`) from its service's
catalogue, the `field` at fault where one input is (dotted for nested: `citizen.phone`), several at
once as `errors`, and the values its message needs as `params`. `detail` is English for logs and
integrators; people read the console's Chinese for the code, never a sentence parsed back.

Each service declares its codes once, in its `refusals.toml` (read into a `Catalogue` by its
`refusals.py`); the shared ones (`request.*`, `value.*`, `auth.*`, `town.*`, `service.*`) are in
this package's `refusals.toml`. `docs/refusals.md` is generated
from all of them (`python -m townflow_shared.problems`) and a test keeps it current.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:townflow:problem:"  # `type` of a code's document: a URI naming the code
_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True)
class Code:
    """One kind of refusal: its code, HTTP status, short English title and detail template
    (formatted with the refusal's `params`)."""

    name: str
    status: int
    title: str
    detail: str
    catalogue: str = ""

    def __call__(self, field: str | None = None, *, errors: Sequence[FieldError] | None = None,
                 headers: Mapping[str, str] | None = None, detail: str | None = None, **params: Any) -> Refusal:
        """The refusal of this code, to raise: `raise CODES["task.not_found"]()`."""
        return Refusal(self, field=field, errors=list(errors or ()), headers=dict(headers or {}),
                       params=params, detail=detail)

    def error(self, field: str, **params: Any) -> FieldError:
        """This code as one of several field errors of a 422."""
        return FieldError(field=field, code=self.name, detail=_format(self.detail, params, self.title),
                          params=_plain_params(params) or None)

    def pydantic(self, **params: Any) -> PydanticCustomError:
        """This code raised from a pydantic validator: the 422 names it (and the field) as is."""
        return PydanticCustomError(self.name, self.detail, params)  # type: ignore[arg-type]


@dataclass
class Catalogue:
    """A service's refusal codes, declared once: in `refusals.toml`, package data of the service.
    A table of data rather than a call per code, since a list of calls repeats its own shape a hundred
    times and the docs and the console's test read the codes, not the code.

    Code raises a refusal by its code, `CODES["task.not_found"](...)`: the same string the docs, the
    console's Chinese table and a client see, so a search for a code finds where it is given. A typo
    is no name mypy could catch; `shared/tests/test_refusal_uses.py` reads every `CODES[...]` of the
    product and fails on a code its catalogue does not declare, and on a declared code nothing gives."""

    service: str
    codes: dict[str, Code] = field(default_factory=dict)

    @classmethod
    def of(cls, package: str | None) -> Catalogue:
        """The catalogue of a service's package (its `refusals.toml`), named after the package."""
        if not package:
            raise ValueError("Catalogue.of needs the package that holds refusals.toml")
        return cls.read(package, resources.files(package) / "refusals.toml")

    @classmethod
    def read(cls, service: str, path: Traversable) -> Catalogue:
        """The catalogue in `path`: a table per code with `status`, `title` and, where the refusal
        says more than its title, `detail` (a template of its `params`)."""
        catalogue = cls(service)
        with path.open("rb") as file:
            for name, entry in tomllib.load(file).items():
                if (set(entry) - {"status", "title", "detail"} or not isinstance(entry.get("status"), int)
                        or not isinstance(entry.get("title"), str)):
                    raise ValueError(f"{path}: {name!r} needs status and title (and may have a detail), "
                                     f"got {sorted(entry)}")
                catalogue.code(name, entry["status"], entry["title"], entry.get("detail"))
        return catalogue

    def __getitem__(self, name: str) -> Code:
        try:
            return self.codes[name]
        except KeyError:
            raise KeyError(f"{self.service}'s refusals.toml declares no code {name!r}") from None

    def code(self, name: str, status: int, title: str, detail: str | None = None) -> Code:
        if not _CODE.match(name):
            raise ValueError(f"refusal code {name!r} is not dotted lower-case")
        if name in self.codes or name in _ALL:
            raise ValueError(f"refusal code {name!r} is declared twice")
        declared = Code(name, status, title, detail or title, self.service)
        self.codes[name] = declared
        _ALL[name] = declared
        return declared

    def __iter__(self) -> Iterable[Code]:  # type: ignore[override]
        return iter(self.codes.values())


_ALL: dict[str, Code] = {}  # every code of every catalogue imported, for pydantic's custom errors


def known(name: str) -> Code | None:
    return _ALL.get(name)


class FieldError(BaseModel):
    field: str = Field(description="the input at fault, dotted for nested (citizen.phone)")
    code: str
    detail: str
    params: dict[str, Any] | None = None


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(description="urn:townflow:problem:<code>")
    title: str
    status: int
    detail: str = Field(description="English, for logs and integrators; people read the code's words")
    code: str = Field(description="stable, dotted lower-case: see docs/refusals.md")
    field: str | None = Field(default=None, description="the one input at fault, dotted for nested")
    params: dict[str, Any] | None = Field(default=None, description="values the code's message needs")
    errors: list[FieldError] | None = Field(default=None, description="several inputs at fault at once")


class Refusal(Exception):
    """A command refused: raised by a command handler or an adapter, answered as a problem document."""

    def __init__(self, code: Code, *, field: str | None = None, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None, params: dict[str, Any] | None = None,
                 detail: str | None = None) -> None:
        self.code = code
        self.field = field
        self.errors = errors or []
        self.headers = headers or {}
        self.params = params or {}
        self.detail = detail or _format(code.detail, self.params, code.title)
        super().__init__(f"{code.name}: {self.detail}")

    @property
    def status(self) -> int:
        return self.code.status

    def document(self) -> Problem:
        return Problem(type=TYPE_PREFIX + self.code.name, title=self.code.title, status=self.code.status,
                       detail=self.detail, code=self.code.name, field=self.field,
                       params=_plain_params(self.params) or None, errors=self.errors or None)

    def response(self) -> JSONResponse:
        return JSONResponse(self.document().model_dump(mode="json", exclude_none=True),
                            status_code=self.code.status, media_type=MEDIA_TYPE, headers=self.headers or None)


def _format(template: str, params: Mapping[str, Any], fallback: str | None = None) -> str:
    """The template with its params; `fallback` (the code's title) when a param is missing."""
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError, AttributeError):
        return fallback if fallback is not None else template


def _plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params as JSON can carry them, short: a refusal never echoes input in bulk."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, bool) or value is None or (isinstance(value, int) and abs(value) < 10**15):
            out[key] = value
        elif isinstance(value, float) and math.isfinite(value):
            out[key] = value
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[key] = [str(v)[:80] for v in list(value)[:50]]
        else:
            out[key] = str(value)[:200]
    return out


# --- the shared catalogue ---------------------------------------------------------------------
SHARED = Catalogue.read("shared", Path(__file__).with_name("refusals.toml"))
MALFORMED_JSON = SHARED["request.malformed_json"]
BODY_TOO_LARGE = SHARED["request.body_too_large"]
BODY_TOO_DEEP = SHARED["request.body_too_deep"]
BODY_TOO_MANY_KEYS = SHARED["request.body_too_many_members"]
BODY_TOO_SLOW = SHARED["request.body_too_slow"]
URI_TOO_LONG = SHARED["request.uri_too_long"]
UNSUPPORTED_MEDIA = SHARED["request.unsupported_media_type"]
INVALID = SHARED["request.invalid"]
ROUTE_NOT_FOUND = SHARED["route.not_found"]
METHOD_NOT_ALLOWED = SHARED["route.method_not_allowed"]
REFUSED = SHARED["request.refused"]
MISSING = SHARED["value.missing"]
TOO_SHORT = SHARED["value.too_short"]
TOO_LONG = SHARED["value.too_long"]
MALFORMED = SHARED["value.malformed"]
NOT_ALLOWED = SHARED["value.not_allowed"]
NOT_INTEGER = SHARED["value.not_integer"]
NOT_NUMBER = SHARED["value.not_number"]
NOT_FINITE = SHARED["value.not_finite"]
NOT_BOOLEAN = SHARED["value.not_boolean"]
NOT_TEXT = SHARED["value.not_text"]
NOT_OBJECT = SHARED["value.not_object"]
NOT_LIST = SHARED["value.not_list"]
NOT_DATETIME = SHARED["value.not_datetime"]
NOT_DATE = SHARED["value.not_date"]
NOT_DURATION = SHARED["value.not_duration"]
NO_OFFSET = SHARED["value.offset_missing"]
OUT_OF_RANGE = SHARED["value.out_of_range"]
TOO_SMALL = SHARED["value.too_small"]
TOO_LARGE = SHARED["value.too_large"]
TOO_MANY_DIGITS = SHARED["value.too_many_digits"]
NOT_UUID = SHARED["value.not_uuid"]
UNEXPECTED = SHARED["value.unexpected"]
INVISIBLE = SHARED["value.invisible_character"]
NUL = SHARED["value.nul_character"]
SURROGATE = SHARED["value.lone_surrogate"]
INVALID_VALUE = SHARED["value.invalid"]
TOKEN_MISSING = SHARED["auth.token_missing"]
TOKEN_INVALID = SHARED["auth.token_invalid"]
AUTH_NOT_CONFIGURED = SHARED["auth.not_configured"]
TOKEN_WITHOUT_TOWN = SHARED["auth.token_without_town"]
ROLE_MISSING = SHARED["auth.role_missing"]
TOWN_NOT_SERVED = SHARED["town.not_served"]
TOWN_NOT_FOUND = SHARED["town.not_found"]
TOWN_NOT_YOURS = SHARED["town.not_yours"]
TOWN_REQUIRED = SHARED["town.required"]
DATABASE_UNAVAILABLE = SHARED["service.database_unavailable"]
SERVICE_BUSY = SHARED["service.busy"]
CLOCK_OUT_OF_RANGE = SHARED["clock.out_of_range"]


# --- pydantic's errors as codes -----------------------------------------------------------------
_PYDANTIC: dict[str, Code] = {
    "missing": MISSING, "string_too_short": TOO_SHORT, "string_too_long": TOO_LONG, "too_short": TOO_SHORT,
    "too_long": TOO_LONG, "string_pattern_mismatch": MALFORMED, "literal_error": NOT_ALLOWED, "enum": NOT_ALLOWED,
    "int_parsing": NOT_INTEGER, "int_type": NOT_INTEGER, "int_from_float": NOT_INTEGER,
    "int_parsing_size": TOO_LARGE, "float_parsing": NOT_NUMBER, "float_type": NOT_NUMBER,
    "finite_number": NOT_FINITE, "bool_parsing": NOT_BOOLEAN, "bool_type": NOT_BOOLEAN,
    "string_type": NOT_TEXT, "string_unicode": NOT_TEXT, "dict_type": NOT_OBJECT, "model_type": NOT_OBJECT,
    "model_attributes_type": NOT_OBJECT, "list_type": NOT_LIST, "tuple_type": NOT_LIST, "set_type": NOT_LIST,
    "frozen_set_type": NOT_LIST,
    "datetime_parsing": NOT_DATETIME, "datetime_from_date_parsing": NOT_DATETIME, "datetime_type": NOT_DATETIME,
    "datetime_object_invalid": NOT_DATETIME, "date_parsing": NOT_DATE, "date_from_datetime_parsing": NOT_DATE,
    "date_from_datetime_inexact": NOT_DATE, "date_type": NOT_DATE, "time_delta_parsing": NOT_DURATION,
    "time_delta_type": NOT_DURATION, "timezone_aware": NO_OFFSET,
    "greater_than": TOO_SMALL, "greater_than_equal": TOO_SMALL, "less_than": TOO_LARGE, "less_than_equal": TOO_LARGE,
    "decimal_parsing": NOT_NUMBER, "decimal_type": NOT_NUMBER, "decimal_max_digits": TOO_MANY_DIGITS,
    "decimal_max_places": TOO_MANY_DIGITS, "decimal_whole_digits": TOO_MANY_DIGITS,
    "uuid_parsing": NOT_UUID, "uuid_type": NOT_UUID, "uuid_version": NOT_UUID,
    "extra_forbidden": UNEXPECTED, "json_invalid": MALFORMED_JSON, "json_type": MALFORMED_JSON,
    "union_tag_invalid": NOT_ALLOWED, "union_tag_not_found": MISSING,
}
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
_PARAMS = ("min_length", "max_length", "ge", "gt", "le", "lt", "expected", "max_digits", "decimal_places",
           "min", "max", "limit")


def field_of(loc: Sequence[Any]) -> str:
    """FastAPI's `loc` as a dotted field name: ("body", "citizen", "phone") → citizen.phone."""
    parts = [str(p)[:64] for p in loc if not (isinstance(p, str) and p in _LOCATIONS and p == loc[0])]
    # A union's branch names (`function-after[...]`, a model's name) are not fields; a member's
    # name is cut short (a refusal never echoes input in bulk: a key may be 500 KB long).
    return ".".join(p for p in parts if "[" not in p)[:200] or "body"


def field_error(error: Mapping[str, Any]) -> FieldError:
    """One pydantic error as a field error: a code, a short English detail, never the input."""
    kind = str(error.get("type", ""))
    code = known(kind) or _PYDANTIC.get(kind) or INVALID_VALUE
    ctx = error.get("ctx") or {}
    params = {k: ctx[k] for k in _PARAMS if k in ctx}
    for bound in ("ge", "gt"):
        if bound in params:
            params.setdefault("limit", params[bound])
    for bound in ("le", "lt"):
        if bound in params:
            params.setdefault("limit", params[bound])
    if code is INVALID_VALUE or code.catalogue != "shared":
        message = str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        params |= {k: v for k, v in ctx.items() if k not in ("error",) and isinstance(v, (str, int, float))}
    else:
        message = _format(code.detail, params, code.title)
    return FieldError(field=field_of(error.get("loc", ())), code=code.name, detail=message[:300],
                      params=_plain_params(params) or None)


def invalid(errors: Sequence[FieldError]) -> Refusal:
    """A 422 of field errors: the one error's own code and field, or `request.invalid` for several."""
    if len(errors) == 1:
        only = errors[0]
        code = known(only.code) or INVALID_VALUE
        return Refusal(code, field=only.field, errors=list(errors), params=only.params or {}, detail=only.detail)
    return Refusal(INVALID, errors=list(errors), params={"count": len(errors)},
                   detail="; ".join(f"{e.field}: {e.detail}" for e in errors)[:1000])


# Refusal bodies stay small whatever came in: a body of 560,000 wrong keys is not answered with
# 560,000 errors.
MAX_ERRORS = 20


async def _validation_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    errors = [field_error(e) for e in exc.errors()[:MAX_ERRORS]]
    return invalid(errors).response()


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)  # noqa: S101 - registered for this type only
    return exc.response()


_BY_STATUS = {404: ROUTE_NOT_FOUND, 405: METHOD_NOT_ALLOWED, 401: TOKEN_MISSING, 403: ROLE_MISSING,
              413: BODY_TOO_LARGE, 414: URI_TOO_LONG, 400: MALFORMED_JSON}


async def _http_refused(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (no route, wrong method, a body FastAPI could not read)."""
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    code = _BY_STATUS.get(exc.status_code) or replace(REFUSED, status=exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and code in (ROUTE_NOT_FOUND, METHOD_NOT_ALLOWED) else None
    return Refusal(code, headers=dict(exc.headers or {}), detail=detail if detail not in (
        "Not Found", "Method Not Allowed") else None).response()


def install(app: FastAPI) -> None:
    """Answer every refusal of `app` as a problem document, and say so in its OpenAPI document."""
    app.add_exception_handler(Refusal, _refused)
    app.add_exception_handler(RequestValidationError, _validation_refused)
    app.add_exception_handler(StarletteHTTPException, _http_refused)
    _document_problems(app)


def responses(*codes: Code) -> dict[int | str, dict[str, Any]]:
    """A route's refusals for its decorator (`responses=responses(CODES["task.not_found"], ...)`): each
    status with the codes it stands for, as problem documents."""
    by_status: dict[int, list[Code]] = {}
    for code in codes:
        by_status.setdefault(code.status, []).append(code)
    return {status: {"description": ", ".join(f"`{c.name}`" for c in listed) or "refused",
                     "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for status, listed in sorted(by_status.items())}


# What any route may answer whatever it does: the edge's own refusals.
COMMON = (MALFORMED_JSON, BODY_TOO_SLOW, BODY_TOO_LARGE, URI_TOO_LONG, DATABASE_UNAVAILABLE, SERVICE_BUSY)


# What a route that reads a bearer token may answer besides (auth.require, auth.optional_principal).
AUTHENTICATED = (TOKEN_MISSING, TOKEN_INVALID, AUTH_NOT_CONFIGURED, TOKEN_WITHOUT_TOWN, ROLE_MISSING)


def _document_problems(app: FastAPI) -> None:
    """Every 4xx/5xx of every route as `application/problem+json` with the Problem schema; the
    edge's own refusals on every route; FastAPI's HTTPValidationError replaced."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        for name, schema in Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop(
                "$defs", {}).items():
            schemas[name] = schema
        schemas["Problem"] = {k: v for k, v in Problem.model_json_schema(
            ref_template="#/components/schemas/{model}").items() if k != "$defs"}
        problem = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in document.get("paths", {}).values():
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                answers = operation["responses"]
                common = [c for c in COMMON if method in ("post", "put", "patch") or c.status not in (400, 408, 413)]
                if operation.get("security"):  # a bearer token is read: its refusals on this route too
                    common += AUTHENTICATED
                for status, listed in responses(*common).items():
                    answers.setdefault(str(status), listed)
                for status, answer in answers.items():
                    if status[:1] in ("4", "5") and not _own_answer(answer):
                        answer["content"] = problem
                        if status == "422" and answer.get("description") == "Validation Error":
                            answer["description"] = "inputs that are wrong, each named with its code"
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _own_answer(answer: Mapping[str, Any]) -> bool:
    """A status a route declared with a model of its own (`/readyz`'s 503 lists its checks): kept."""
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema) and schema.get("$ref") not in ("#/components/schemas/HTTPValidationError",
                                                       "#/components/schemas/Problem")


def catalogues() -> list[Catalogue]:
    """Every catalogue of the product: the shared one and each service's (`refusals.toml`)."""
    import importlib

    found = [SHARED]
    for service in ("intake", "dispatch", "enforcement", "appraisal"):
        try:
            module = importlib.import_module(f"{service}.refusals")
        except ModuleNotFoundError:
            continue
        found.append(module.CODES)
    return found


def markdown(listed: Sequence[Catalogue]) -> str:
    """docs/refusals.md: every code of every service, with its status and English meaning."""
    lines = ["# Refusal codes", "",
             "Generated by `python -m townflow_shared.problems` from each service's `refusals.toml`; "
             "a test fails when this file is not current. Every 4xx is an RFC 9457 problem document "
             "(`application/problem+json`) with `type`, `title`, `status`, `detail` (English), `code`, "
             "and `field`, `params` or `errors: [{field, code, detail}]` where they apply. The console "
             "shows each code in Chinese (`services/console/console/refusals.py`).", ""]
    for catalogue in listed:
        lines += [f"## {catalogue.service}", "", "| code | status | meaning |", "| --- | --- | --- |"]
        lines += [f"| `{c.name}` | {c.status} | {c.detail.replace('|', '/')} |"
                  for c in sorted(catalogue.codes.values(), key=lambda c: c.name)]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/refusals.md")
    target.write_text(markdown(catalogues()), encoding="utf-8")
    print(f"wrote {target}")
