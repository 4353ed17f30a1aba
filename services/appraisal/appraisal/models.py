"""Appraisal's request and response models (SPEC §5.5): what each route takes and answers, so
its OpenAPI document is closed. Periods are months of the years the calendar knows; the bonus
pool is shared `Money` (bounded digits, so the split is exact to the cent)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from townflow_shared.types import FIRST_YEAR, LAST_YEAR, Command, Identifier, Money, StrictFloat

from .refusals import PERIOD_MALFORMED, PERIOD_OUT_OF_RANGE
from .rules import SubjectType

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
FIRST_PERIOD, LAST_PERIOD = f"{FIRST_YEAR}-01", f"{LAST_YEAR}-12"


def _month(value: str) -> str:
    if not _PERIOD.fullmatch(value):
        raise PERIOD_MALFORMED.pydantic()
    if not FIRST_PERIOD <= value <= LAST_PERIOD:  # a month of the years the calendar knows, never a 500
        raise PERIOD_OUT_OF_RANGE.pydantic(first=FIRST_PERIOD, last=LAST_PERIOD)
    return value


Period = Annotated[str, AfterValidator(_month),
                   Field(json_schema_extra={"pattern": _PERIOD.pattern, "examples": ["2026-11"]})]
"""An appraisal period: a calendar month, YYYY-MM, between 2000-01 and 2100-12."""

Pool = Money
"""A bonus pool in yuan with fen, bounded (Money): the split is exact to the cent."""


def is_period(value: str) -> bool:
    """`value` is a period this service takes (the command line checks its --period so)."""
    try:
        _month(value)
    except Exception:
        return False
    return True


# --- requests ---------------------------------------------------------------------------------
class SecondedScore(Command):
    """The parent county department's score of a seconded unit of a town (双向考评)."""

    unit: Identifier
    period: Period
    score: Annotated[StrictFloat, Field(ge=0, le=100)]


class WhatIf(Command):
    period: Period
    rules: dict[str, Any] = Field(description="appraisal rules to lay over the town's (rules.yaml's appraisal"
                                              " section, or any part of it), e.g. {\"weights\": {\"response\": 0.6}}")


# --- responses --------------------------------------------------------------------------------
Rates = dict[str, float | None]


class Counts(BaseModel):
    dispatched: int
    responded: int
    resolved: int
    completed: int
    reworked: int
    extended: int
    rated: int
    satisfied: int
    overdue: int
    escalated: int
    escalated_red: int
    closed: int
    reopened: int


class Score(BaseModel):
    """A subject's figures of a month; a seconded unit's with its parent department's score."""

    subject_type: SubjectType
    subject_id: str
    period: str
    rates: Rates
    points: float
    dimensions: dict[str, float | None]
    composite: float | None
    rank: int | None
    counts: Counts
    town_code: str
    department_score: float | None = Field(default=None, description="seconded units only")
    final: float | None = Field(default=None, description="seconded units only: 双向考评's final score")


class RateRow(BaseModel):
    subject_id: str
    period: str
    response: float | None
    resolution: float | None
    satisfaction: float | None
    rework: float | None
    extension: float | None
    reopen: float | None
    dispatched: int
    rated: int


class Ranked(BaseModel):
    subject_id: str
    composite: float | None
    rank: int | None


class Board(BaseModel):
    red: list[Ranked]
    black: list[Ranked]


class Rankings(BaseModel):
    """红黑榜 of a town's month, by subject type."""

    period: str
    town_code: str
    staff: Board
    module: Board
    village: Board
    seconded_unit: Board


class TownRates(BaseModel):
    response: float | None
    resolution: float | None
    satisfaction: float | None


class TownRanks(BaseModel):
    composite: int | None
    response: int | None
    resolution: int | None
    satisfaction: int | None


class TownRow(BaseModel):
    town_code: str
    name: str
    dispatched: int
    responded: int
    resolved: int
    rated: int
    satisfied: int
    composite: float | None
    rates: TownRates
    ranks: TownRanks


class CountyRankings(BaseModel):
    period: str
    towns: list[TownRow]
    rankings: dict[str, list[str]] = Field(description="each measure's towns, best first")


class Share(BaseModel):
    staff_id: str
    module: str
    post_coefficient: float
    points: float
    weight: float
    share: str = Field(description="yuan, to the cent")


class Bonus(BaseModel):
    period: str
    town_code: str
    pool: str
    total: str
    shares: list[Share]


class Alert(BaseModel):
    staff_id: str
    period: str
    level: str
    reasons: list[str]
    raised_at: str
    cause_event_id: str


class LedgerEntry(BaseModel):
    reason: str
    points: float
    event_id: str | None
    ref: str
    staff_id: str


class Ledger(BaseModel):
    town_code: str
    subject_type: SubjectType
    subject_id: str
    period: str
    points: float
    entries: list[LedgerEntry]


class SecondedScorePosted(BaseModel):
    town_code: str
    unit: str
    period: str
    town_score: float | None
    department_score: float
    final: float | None


class WhatIfSide(BaseModel):
    composite: float | None
    points: float
    rank: int | None
    rates: Rates
    dimensions: dict[str, float | None]
    alerts: list[str] | None = Field(default=None, description="staff only: the alert levels due")


class WhatIfDifference(BaseModel):
    composite: float | None
    points: float | None
    rank: float | None
    dimensions: dict[str, float | None] | None


class WhatIfSubject(BaseModel):
    subject_type: SubjectType
    subject_id: str
    live: WhatIfSide | None
    what_if: WhatIfSide | None
    difference: WhatIfDifference


class WhatIfResult(BaseModel):
    town_code: str
    period: str
    rules: dict[str, Any] = Field(description="the appraisal rules the what-if figures are under")
    subjects: list[WhatIfSubject]


BulletinFormat = Literal["xlsx", "csv"]
