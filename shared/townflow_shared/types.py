"""Input types for request models at the edge, shared by every service so hostile input gets the
same answer everywhere: strict numbers and booleans (no `"seed": false` taken as 0), instants with
an offset and days within the years the calendar knows, money with bounded digits, identifiers
without invisible or direction-control characters (one enterprise must not become two for 多头检查).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, TypeVar, get_args

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from .problems import INVISIBLE, NOT_DATE, NOT_DATETIME, OUT_OF_RANGE, Code

# The years an instant or a day may fall in: the calendar's arithmetic (working hours, holidays, windows of
# 60 days) stays far from datetime's limits, so year 9999 or 0001 is a refusal, never a 500.
FIRST_YEAR, LAST_YEAR = 2000, 2100


def _integral(value: object) -> object:
    # JSON has numbers, not ints and floats: 16.0 is the integer 16 (as JSON Schema's `integer`
    # says), 16.5 and "16" and true are not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


StrictInt = Annotated[int, Strict(), BeforeValidator(_integral)]
StrictBool = Annotated[bool, Strict()]
StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]


_Dated = TypeVar("_Dated", bound=date)  # a day, or an instant (a datetime is a date)


def _within_years(value: _Dated) -> _Dated:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise OUT_OF_RANGE.pydantic(min=f"{FIRST_YEAR}-01-01", max=f"{LAST_YEAR}-12-31")
    return value


# The years as the documents say them: an RFC 3339 date's own year (the one checked) from 2000 to
# 2100. Spelt out whole (with the `date`/`date-time` format beside it) so a generator drawing from
# the pattern draws dates, and the pattern says no more and no less than what is accepted.
DAY_PATTERN = "^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
INSTANT_PATTERN = (DAY_PATTERN[:-1] + "[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]+)?"
                   "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")


def _written_as(parsed: type, text: re.Pattern[str], refusal: Code) -> BeforeValidator:
    """Only a value already `parsed` or a text of the form the document gives; anything else is
    `refusal`. Pydantic alone would also read a number (1700000000, "1700000000") as a moment or a
    day, and a midnight date and time as a day, which the documents do not allow."""

    def check(value: object) -> object:
        if not isinstance(value, parsed) and not (isinstance(value, str) and text.match(value)):
            raise refusal.pydantic()
        return value

    return BeforeValidator(check)


# An instant's text begins with its date (the rest is pydantic's to read); a day's is the date alone.
Instant = Annotated[AwareDatetime, _written_as(datetime, re.compile(r"^[0-9]{4}-"), NOT_DATETIME),
                    AfterValidator(_within_years), Field(json_schema_extra={"pattern": INSTANT_PATTERN})]
"""A moment with its UTC offset, between 2000 and 2100."""
Day = Annotated[date, _written_as(date, re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), NOT_DATE),
                AfterValidator(_within_years), Field(json_schema_extra={"pattern": DAY_PATTERN})]
"""A calendar day (YYYY-MM-DD), between 2000 and 2100."""

# Money (a bonus pool): yuan with fen, up to a billion; no NaN, no Infinity, no 1E+999999.
Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2, allow_inf_nan=False, ge=0)]

# Unicode's format characters (Cf): zero-width spaces and joiners, the BOM, the bidi embeddings,
# overrides and isolates; and the line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Cc"})


# What the OpenAPI documents say of these types, so a client (and the fuzzer) knows which text is
# refused: in an identifier no invisible character (those categories) except the whitespace
# trimmed off its ends; in free text none but line breaks and tabs. Character classes of Unicode
# 14 (Python 3.11's unicodedata; shared/tests/test_types.py recomputes them): BMP characters
# escaped, the astral ones literal, which Python's and ECMA's regular expressions both read.
_INVISIBLE_CLASS = (
    "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2"
    "\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f")
_TRIMMED_CLASS = ("\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028-\\u2029"
                  "\\u202f\\u205f\\u3000")
# Free text keeps the tab (0009), the line feed (000a) and the carriage return (000d).
_HIDDEN_IN_TEXT_CLASS = _INVISIBLE_CLASS.replace("\\u0000-\\u001f", "\\u0000-\\u0008\\u000b-\\u000c\\u000e-\\u001f")
IDENTIFIER_PATTERN = f"^[{_TRIMMED_CLASS}]*[^{_INVISIBLE_CLASS}]*[{_TRIMMED_CLASS}]*$"
# Something is left once trimmed: a character Python's strip() keeps. Not `\S`, whose JSON Schema
# (ECMA-262) meaning keeps U+0085 and U+001C-001F, which strip() removes.
NOT_BLANK_PATTERN = f"[^{_TRIMMED_CLASS}]"
TEXT_PATTERN = f"^[^{_HIDDEN_IN_TEXT_CLASS}]*$"
# Any text but NUL, which the edge refuses in every query parameter, path and body (guards.py).
NO_NUL_PATTERN = "^[^\\u0000]*$"
# A town's code as a request names one (town.yaml's nine digits). Documented, not enforced: a
# request naming any other value is answered as for a town not served (404 `town.not_served`).
TOWN_CODE_PATTERN = "^[0-9]{9}$"


def has_invisible(text: str) -> bool:
    return any(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)


def _visible_identifier(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if has_invisible(value):
        raise INVISIBLE.pydantic()
    return value


Identifier = Annotated[str, AfterValidator(_visible_identifier), Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN})]
"""An identifier a person types (a target, a ticket number, a staff id): trimmed, NFC, and no
invisible or direction-control character."""
# Its checks, to put after length bounds that count the characters as sent (as the schema's
# maxLength does): pydantic applies a `Field(max_length=...)` given after them to the trimmed value.
IDENTIFIER_CHECKS = get_args(Identifier)[1:]


def _visible_text(value: str) -> str:
    # Free text keeps its line breaks and tabs; the direction overrides and zero-width characters
    # that could make it read differently from what is stored are refused.
    if any(unicodedata.category(ch) in ("Cf", "Zl", "Zp") or (unicodedata.category(ch) == "Cc" and ch not in "\n\r\t")
           for ch in value):
        raise INVISIBLE.pydantic()
    return value


Text = Annotated[str, AfterValidator(_visible_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
"""Free text (a description, a reason): line breaks allowed, hidden controls refused."""


class Command(BaseModel):
    """The base of every request body: unknown members refused."""

    model_config = ConfigDict(extra="forbid")
