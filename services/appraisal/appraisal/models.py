"""Appraisal's request and response models (SPEC §5.5): what each route takes and answers, so
its OpenAPI document is closed. The document states what the server enforces (the months a
period may be, the pool's digits, the rules a what-if may change and their bounds), so a request
the document allows is one the server takes: a well-formed name of something the town does not
have is a 404 or 409, never a 422."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)

from townflow_shared.problems import MALFORMED
from townflow_shared.types import (
    FIRST_YEAR,
    LAST_YEAR,
    TOWN_CODE_PATTERN,
    Command,
    Identifier,
    Money,
    StrictBool,
    StrictFloat,
    StrictInt,
)

from .refusals import CODES
from .rules import SubjectType

_PERIOD = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
FIRST_PERIOD, LAST_PERIOD = f"{FIRST_YEAR}-01", f"{LAST_YEAR}-12"
# The same months as the document says them: 2000-01 to 2100-12. Seven characters: a pattern's `$`
# also matches before a final line break in Python's reading, which the length keeps out.
PERIOD_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$"


def _month(value: str) -> str:
    if not _PERIOD.fullmatch(value):
        raise CODES["period.malformed"].pydantic()
    if not FIRST_PERIOD <= value <= LAST_PERIOD:  # a month of the years the calendar knows, never a 500
        raise CODES["period.out_of_range"].pydantic(first=FIRST_PERIOD, last=LAST_PERIOD)
    return value


Period = Annotated[str, AfterValidator(_month),
                   Field(json_schema_extra={"pattern": PERIOD_PATTERN, "minLength": 7, "maxLength": 7,
                                            "examples": ["2026-11"]})]
"""An appraisal period: a calendar month, YYYY-MM, between 2000-01 and 2100-12."""

# A town's code as town.yaml has it (documented, not enforced: any other is a town not served, 404).
TownCode = Annotated[Identifier, WithJsonSchema({"type": "string", "pattern": TOWN_CODE_PATTERN,
                                                 "examples": ["321003104"]})]

# The pool as written: yuan with at most two decimals of fen, no sign, no exponent, at most ten
# whole digits (Money's twelve digits, two after the point).
POOL_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
_POOL = re.compile(POOL_PATTERN)


def _pool_as_written(value: object, money: ValidatorFunctionWrapHandler) -> Decimal:
    pool: Decimal = money(value)  # Money's own refusals first: too many digits, not finite, below zero
    if isinstance(value, str) and not _POOL.fullmatch(value):  # 1e3, +5, " 5": a number, not as written
        raise MALFORMED.pydantic()
    return pool


Pool = Annotated[Money, WrapValidator(_pool_as_written),
                 WithJsonSchema({"type": "string", "pattern": POOL_PATTERN, "maxLength": 13,
                                 "examples": ["50000.00"]})]
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


# What a what-if may change (rules.yaml's appraisal section, any part of it), with bounds that keep
# every figure finite: each member left out (or null) keeps the town's own rule.
Proportion = Annotated[StrictFloat, Field(ge=0, le=1)]
"""A weight or a share of a whole, 0 to 1."""
PointsPer = Annotated[StrictFloat, Field(ge=-1000, le=1000)]
"""Points for one thing done (or not), either way."""
Factor = Annotated[StrictFloat, Field(ge=0, le=10)]
Penalty = Annotated[StrictFloat, Field(ge=0, le=1000)]
# Whole numbers: the bounds are also written into the schema by hand, since behind StrictInt's
# before-validator (16.0 is 16) pydantic documents them as `ge`/`le`, which JSON Schema ignores.
Threshold = Annotated[StrictInt, Field(ge=0, le=10_000), WithJsonSchema({"type": "integer", "minimum": 0,
                                                                          "maximum": 10_000})]
"""A count a staff member's month is compared with."""
RankingsSize = Annotated[StrictInt, Field(ge=1, le=100), WithJsonSchema({"type": "integer", "minimum": 1,
                                                                          "maximum": 100})]


class WeightsChange(Command):
    response: Proportion | None = None
    resolution: Proportion | None = None
    satisfaction: Proportion | None = None


class ColourFactors(Command):
    red: Factor | None = None
    orange: Factor | None = None
    yellow: Factor | None = None


class PointsChange(Command):
    completed: PointsPer | None = None
    colour_factor: ColourFactors | None = None
    on_time: PointsPer | None = None
    overdue: PointsPer | None = None
    escalated: PointsPer | None = None
    invalid_return: PointsPer | None = None
    satisfied: PointsPer | None = None
    unsatisfied: PointsPer | None = None
    inspection_officer: PointsPer | None = None
    combined_extra_task: PointsPer | None = None


class AlertsChange(Command):
    reminder_overdue: Threshold | None = None
    talk_overdue: Threshold | None = None
    talk_satisfaction_below: Annotated[StrictFloat, Field(
        ge=0, le=2, description="a satisfaction rate, 0 to 1 (above 1: every rated month)")] | None = None
    talk_min_ratings: Threshold | None = None
    accountability_overdue: Threshold | None = None
    accountability_on_escalated_red: StrictBool | None = None


class EfficiencyWeights(Command):
    response: Proportion | None = None
    resolution: Proportion | None = None


class QualityWeights(Command):
    satisfaction: Proportion | None = None
    no_rework: Proportion | None = None


class DimensionsChange(Command):
    max_each: Annotated[StrictFloat, Field(ge=0, le=100)] | None = None
    efficiency_weights: EfficiencyWeights | None = None
    quality_weights: QualityWeights | None = None
    discipline_penalty_overdue: Penalty | None = None
    discipline_penalty_escalated: Penalty | None = None


class SecondedChange(Command):
    town_weight: Proportion | None = None
    department_weight: Proportion | None = None


class RulesChange(Command):
    """Appraisal rules to lay over the town's: rules.yaml's appraisal section, or any part of it."""

    weights: WeightsChange | None = None
    points: PointsChange | None = None
    alerts: AlertsChange | None = None
    dimensions: DimensionsChange | None = None
    seconded: SecondedChange | None = None
    rankings_size: RankingsSize | None = None

    def changes(self) -> dict[str, Any]:
        """Only what was named, as rules.yaml would say it."""
        return self.model_dump(exclude_none=True)


class WhatIf(Command):
    period: Period
    rules: RulesChange = Field(description="appraisal rules to lay over the town's, e.g. "
                                           "{\"weights\": {\"response\": 0.6}}")


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
    suspended: int = 0


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
    suspension: float | None = None
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


class CellItem(BaseModel):
    item_code: str
    count: int


class CellHotspot(BaseModel):
    """A grid cell's located matters of the month, the month before, and by item."""

    grid_cell: str = Field(description="15 digits, GB/T 30428")
    village: str | None = Field(description="the village the cell is in (town.yaml's code)")
    count: int
    previous: int = Field(description="the month before's")
    rise: int = Field(description="count − previous")
    items: list[CellItem] = Field(description="this month's by item, most first")


class Hotspots(BaseModel):
    """热点 (issue #30): a town's month's located matters per grid cell (busiest first) and the cells
    that rose most over the month before (每月一题 picks its problems from where and what)."""

    town_code: str
    period: str
    previous_period: str
    cells: list[CellHotspot]
    rising: list[str] = Field(description="the codes of the cells that rose most, the largest rise first")


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
