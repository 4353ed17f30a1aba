"""Every refusal enforcement can give, declared once (see townflow_shared.problems).

The console shows each code in Chinese with its `params`; `detail` is English for logs and
integrators. The shared codes (`town.*`, `auth.*`, `value.*`, `request.*`) come on top.
"""

from __future__ import annotations

from pathlib import Path

from townflow_shared.problems import Catalogue

CODES = Catalogue.read("enforcement", Path(__file__).with_name("refusals.toml"))

INSPECTION_NOT_FOUND = CODES["inspection.not_found"]
INSPECTION_NOT_PLANNED = CODES["inspection.not_planned"]
INSPECTION_NOT_STARTED = CODES["inspection.not_started"]
NOT_ON_TEAM = CODES["inspection.not_officer"]
NOT_NAMED_IN_RESULT = CODES["inspection.poster_not_named"]
UNKNOWN_STAFF = CODES["inspection.unknown_staff"]
TOO_FEW_CERTIFIED = CODES["inspection.too_few_certified"]
STARTER_NOT_OFFICER = CODES["inspection.starter_not_officer"]
UNIT_ABSENT = CODES["inspection.unit_absent"]
UNIT_FOREIGN = CODES["inspection.unit_foreign"]
FINDING_MISSING = CODES["inspection.finding_missing"]
FINDING_NOT_COVERED = CODES["inspection.finding_not_covered"]
FINDING_REPEATED = CODES["inspection.finding_repeated"]
RECTIFY_BY_MISSING = CODES["inspection.rectify_by_missing"]

CASE_NOT_FOUND = CODES["case.not_found"]
CASE_TRANSFERRED = CODES["case.transferred"]
CASE_CLOSED = CODES["case.closed"]
STEP_OUT_OF_ORDER = CODES["case.step_out_of_order"]
STEP_UNKNOWN = CODES["case.step_unknown"]
TRANSFER_BY_FINDING_ONLY = CODES["case.transfer_by_finding_only"]
DECISION_MISSING = CODES["case.decision_missing"]
CASE_DECIDED = CODES["case.decided"]
ALREADY_EXTENDED = CODES["case.already_extended"]
EXTENSION_TOO_LATE = CODES["case.extension_too_late"]

PLAN_NOT_FOUND = CODES["plan.not_found"]
SAMPLE_TOO_LARGE = CODES["plan.sample_too_large"]
TOO_FEW_OFFICERS = CODES["plan.too_few_officers"]
