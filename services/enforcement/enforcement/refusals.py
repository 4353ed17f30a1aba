"""Every refusal enforcement can give, declared once (see townflow_shared.problems).

The console shows each code in Chinese with its `params`; `detail` is English for logs and
integrators. The shared codes (`town.*`, `auth.*`, `value.*`, `request.*`) come on top.
"""

from __future__ import annotations

from townflow_shared.problems import Catalogue

CODES = Catalogue("enforcement")

# --- inspections (综合查一次) -------------------------------------------------------------------
INSPECTION_NOT_FOUND = CODES.code("inspection.not_found", 404, "no such inspection")
INSPECTION_NOT_PLANNED = CODES.code(
    "inspection.not_planned", 409, "the inspection has already started",
    "the inspection is {status}, not planned")
INSPECTION_NOT_STARTED = CODES.code(
    "inspection.not_started", 409, "start the inspection before its result",
    "the inspection is {status}; start it before the result")
# Who may post a result (SPEC §6.1): an officer of the inspection or the enforcement module's leader.
NOT_ON_TEAM = CODES.code(
    "inspection.not_officer", 403, "you are not on this inspection",
    "{officer} is not on this inspection (its officers: {officers}); only they or the enforcement "
    "module's leader may post its result")
NOT_NAMED_IN_RESULT = CODES.code(
    "inspection.poster_not_named", 403, "you are not among the officers this result names",
    "{officer} is not among the officers named in this result; only an officer on the inspection "
    "or the enforcement module's leader may post it")
UNKNOWN_STAFF = CODES.code(
    "inspection.unknown_staff", 422, "not staff of the inspection's town", "unknown staff: {staff}")
# Administrative Penalty Law art. 42: at least two certified officers.
TOO_FEW_CERTIFIED = CODES.code(
    "inspection.too_few_certified", 422, "too few officers hold an enforcement certificate",
    "at least {required} officers holding enforcement certificates are required, got {certified}")
# Whoever starts an inspection goes on it, unless a leader sends a team (rules.start_team).
STARTER_NOT_OFFICER = CODES.code(
    "inspection.starter_not_officer", 403, "only an officer, a module leader or an admin starts an inspection",
    "{starter} is not an officer of the inspection's town; only its officers (who go on the visit) or a "
    "module leader or admin (who sends the team) may start it")
UNIT_ABSENT = CODES.code(
    "inspection.unit_absent", 422, "every unit of the inspection must be present",
    "every unit must be present; absent: {units}")
UNIT_FOREIGN = CODES.code(
    "inspection.unit_foreign", 422, "a unit that is not one of this inspection's",
    "not units of this inspection: {units}")
FINDING_MISSING = CODES.code(
    "inspection.finding_missing", 422, "one finding per covered task",
    "one finding per covered task; missing: {tasks}")
FINDING_NOT_COVERED = CODES.code(
    "inspection.finding_not_covered", 422, "a finding for a task this inspection does not cover",
    "tasks not covered by this inspection: {tasks}")
FINDING_REPEATED = CODES.code(
    "inspection.finding_repeated", 422, "one finding per task, not more",
    "more than one finding for the tasks: {tasks}")
RECTIFY_BY_MISSING = CODES.code(
    "inspection.rectify_by_missing", 422, "a rectify finding needs its rectify_by date",
    "a rectify outcome needs rectify_by (task {task})")

# --- cases ------------------------------------------------------------------------------------
CASE_NOT_FOUND = CODES.code("case.not_found", 404, "no such case")
CASE_TRANSFERRED = CODES.code(
    "case.transferred", 409, "the case was transferred and is no longer handled here")
CASE_CLOSED = CODES.code("case.closed", 409, "the case is closed")
STEP_OUT_OF_ORDER = CODES.code(
    "case.step_out_of_order", 409, "case steps go filed, investigated, reviewed, decided, closed",
    "the next step after {current} is {expected}, not {requested}")
STEP_UNKNOWN = CODES.code("case.step_unknown", 422, "no such case step", "unknown step {step!r}")
TRANSFER_BY_FINDING_ONLY = CODES.code(
    "case.transfer_by_finding_only", 409, "a case is transferred only by its finding",
    "transfers follow from a not_delegated or criminal finding")
DECISION_MISSING = CODES.code(
    "case.decision_missing", 422, "a decision step records the decision")
CASE_DECIDED = CODES.code(
    "case.decided", 409, "the case is decided; nothing left to extend",
    "the case is {step}; nothing left to extend")
ALREADY_EXTENDED = CODES.code(
    "case.already_extended", 409, "the one extension has already been recorded")
EXTENSION_TOO_LATE = CODES.code(
    "case.extension_too_late", 409, "an extension is recorded before the decision limit",
    "an extension must be recorded before day {day}")

# --- random inspection plans (双随机一公开) -------------------------------------------------------
PLAN_NOT_FOUND = CODES.code("plan.not_found", 404, "no such plan")
SAMPLE_TOO_LARGE = CODES.code(
    "plan.sample_too_large", 422, "more targets drawn than there are",
    "sample_size {sample_size} exceeds the {targets} distinct targets")
# The town's staff, not the request, is short (409: the request is as the document allows).
TOO_FEW_OFFICERS = CODES.code(
    "plan.too_few_officers", 409, "the town has too few certified officers to draw two per target",
    "at least two certified officers are needed; the town has {officers}")
