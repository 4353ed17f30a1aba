"""Appraisal's refusal codes (docs/refusals.md): each refusal the service can give, declared once.
The shared ones (town.*, auth.*, value.*, request.*) are in townflow_shared.problems.

The statuses say whose the fault is. 422: the input is not what the OpenAPI document allows (its
schemas carry the patterns and bounds these checks enforce). 404: a month with nothing to show.
409: a request as the document allows that the town's records refuse (no one to share a pool by,
a unit that is not one of the town's seconded units)."""

from __future__ import annotations

from townflow_shared.problems import Catalogue

CODES = Catalogue("appraisal")

# The month a figure is asked of.
PERIOD_MALFORMED = CODES.code("period.malformed", 422, "a period is a month: YYYY-MM")
PERIOD_OUT_OF_RANGE = CODES.code("period.out_of_range", 422, "the period is outside the years the calendar knows",
                                 "a period between {first} and {last}")
PERIOD_NO_FIGURES = CODES.code("period.no_figures", 404, "the month holds no figures",
                               "no figures for {period}")
# 差异化分配.
BONUS_NO_WEIGHTS = CODES.code("bonus.no_weights", 409, "no one has a positive weight to share the pool by",
                              "no one has a positive weight to share the pool of {period} by")
# 月度通报.
BULLETIN_WORKBOOK_UNAVAILABLE = CODES.code("bulletin.workbook_unavailable", 503,
                                           "the workbook could not be made right now; try again shortly")
# 双向考评: the parent department's score of a seconded unit.
SCORE_UNIT_NOT_SECONDED = CODES.code("score.unit_not_seconded", 409, "not a seconded unit of this town",
                                     "{unit} is not a seconded unit of this town")
# The county's rankings of its towns.
RANKING_COUNTY_ONLY = CODES.code("ranking.county_only", 403, "the county's rankings are for the county roles")
# What-if: the rules laid over the town's.
WHATIF_RULE_INVALID = CODES.code("whatif.rule_invalid", 422, "not a valid appraisal rule",
                                 "not a valid appraisal rule: {why}")
