"""The audit page's words (issue #28): every action a service's route can record has its Chinese
name, so a new route cannot reach the auditor as a code."""

from __future__ import annotations

from pydantic import SecretStr

from appraisal.app import create_app as appraisal_app
from appraisal.settings import AppraisalSettings
from console import labels, session_audit
from devstack.stack import intake_key_env
from dispatch.app import create_app as dispatch_app
from dispatch.settings import DispatchSettings
from enforcement.app import create_app as enforcement_app
from enforcement.settings import EnforcementSettings
from intake.app import create_app as intake_app
from intake.settings import IntakeSettings
from townflow_shared import audit

SECRET = SecretStr("x" * 32)
INTAKE_KEYS = {name.removeprefix("TOWNFLOW_").lower(): value for name, value in intake_key_env().items()}


def _recorded_actions() -> set[str]:
    actions = set()
    for app in (intake_app(IntakeSettings(jwt_secret=SECRET, **INTAKE_KEYS)), dispatch_app(DispatchSettings(jwt_secret=SECRET)),
                enforcement_app(EnforcementSettings(jwt_secret=SECRET)), appraisal_app(AppraisalSettings(jwt_secret=SECRET))):
        for path, operations in app.openapi()["paths"].items():  # every route, as the audit reads its template
            for method, operation in operations.items():
                if method.upper() in audit.STATE_CHANGING:
                    actions.add(audit.action_of(method.upper(), path, operation.get("x-audit-action")).code)
    return actions


def test_every_action_a_route_records_has_its_chinese_name_and_target() -> None:
    actions = _recorded_actions() | {"matter.citizen_read", "request.citizen_read", audit.PRUNE_ACTION}
    assert actions - set(labels.AUDIT_ACTIONS) == set(), "add their names to console/labels.py AUDIT_ACTIONS"
    assert {a.split(".")[0] for a in actions} - {"matter"} <= set(labels.AUDIT_TARGETS) | {"audit"}
    assert "task.accept" in actions and "request.create" in actions and "what_if.run" in actions


def test_an_outcome_reads_as_a_word() -> None:
    assert [labels.audit_outcome(o) for o in ("ok", "task.not_assignee", "error")] == ["成功", "已拒绝", "出错"]


def test_every_action_and_outcome_of_the_consoles_own_trail_has_its_chinese_name() -> None:
    assert set(session_audit.ACTIONS) - set(labels.AUDIT_ACTIONS) == set(), "name them in console/labels.py"
    assert set(session_audit.OUTCOMES) - set(labels.AUDIT_OUTCOMES) == set(), "name them in console/labels.py"
    assert {"account", "address"} <= set(labels.AUDIT_TARGETS) and "console" in labels.AUDIT_SYSTEMS
    assert labels.audit_outcome(session_audit.WRONG_PASSWORD) == "口令错误"
