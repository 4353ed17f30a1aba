"""Appraisal's refusal codes (docs/refusals.md): each refusal the service can give, declared once.
The shared ones (town.*, auth.*, value.*, request.*) are in townflow_shared.problems.

The statuses say whose the fault is. 422: the input is not what the OpenAPI document allows (its
schemas carry the patterns and bounds these checks enforce). 404: a month with nothing to show.
409: a request as the document allows that the town's records refuse (no one to share a pool by,
a unit that is not one of the town's seconded units)."""

from __future__ import annotations

from pathlib import Path

from townflow_shared.problems import Catalogue

CODES = Catalogue.read("appraisal", Path(__file__).with_name("refusals.toml"))

PERIOD_MALFORMED = CODES["period.malformed"]
PERIOD_OUT_OF_RANGE = CODES["period.out_of_range"]
PERIOD_NO_FIGURES = CODES["period.no_figures"]
BONUS_NO_WEIGHTS = CODES["bonus.no_weights"]
BULLETIN_WORKBOOK_UNAVAILABLE = CODES["bulletin.workbook_unavailable"]
SCORE_UNIT_NOT_SECONDED = CODES["score.unit_not_seconded"]
RANKING_COUNTY_ONLY = CODES["ranking.county_only"]
WHATIF_RULE_INVALID = CODES["whatif.rule_invalid"]
