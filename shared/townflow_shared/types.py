"""Input types for request models at the edge, shared by every service so hostile input gets the
same answer everywhere: strict numbers and booleans (no `"seed": false` taken as 0), instants with
an offset within the years the calendar knows, money with bounded digits, identifiers without
invisible or direction-control characters (one enterprise must not become two for 多头检查).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, Strict

from .problems import INVISIBLE, OUT_OF_RANGE

# The years an instant may fall in: the calendar's arithmetic (working hours, holidays, windows of
# 60 days) stays far from datetime's limits, so year 9999 or 0001 is a refusal, never a 500.
FIRST_YEAR, LAST_YEAR = 2000, 2100

StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]


def _within_years(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise OUT_OF_RANGE.pydantic(min=f"{FIRST_YEAR}-01-01", max=f"{LAST_YEAR}-12-31")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_within_years)]
"""A moment with its UTC offset, between 2000 and 2100."""

# Money (a bonus pool): yuan with fen, up to a billion; no NaN, no Infinity, no 1E+999999.
Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2, allow_inf_nan=False, ge=0)]

# Unicode's format characters (Cf): zero-width spaces and joiners, the BOM, the bidi embeddings,
# overrides and isolates; and the line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Cc"})


def has_invisible(text: str) -> bool:
    return any(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)


def _visible_identifier(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if has_invisible(value):
        raise INVISIBLE.pydantic()
    return value


Identifier = Annotated[str, AfterValidator(_visible_identifier)]
"""An identifier a person types (a target, a ticket number, a staff id): trimmed, NFC, and no
invisible or direction-control character."""


def _visible_text(value: str) -> str:
    # Free text keeps its line breaks and tabs; the direction overrides and zero-width characters
    # that could make it read differently from what is stored are refused.
    if any(unicodedata.category(ch) in ("Cf", "Zl", "Zp") or (unicodedata.category(ch) == "Cc" and ch not in "\n\r\t")
           for ch in value):
        raise INVISIBLE.pydantic()
    return value


Text = Annotated[str, AfterValidator(_visible_text)]
"""Free text (a description, a reason): line breaks allowed, hidden controls refused."""


class Command(BaseModel):
    """The base of every request body: unknown members refused."""

    model_config = ConfigDict(extra="forbid")
