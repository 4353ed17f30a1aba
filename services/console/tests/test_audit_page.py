"""The audit page's words (issue #28): every action a service's route can record has its Chinese
name, so a new route cannot reach the auditor as a code."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import SecretStr

from appraisal.app import create_app as appraisal_app
from appraisal.settings import AppraisalSettings
from console import labels, session_audit
from console.errors import ServiceError
from console.pages.audit import _Merge
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


def _trail(ats: list[str], page: int, fail_after: int | None = None) -> Any:
    """A trail of records at `ats` (newest first) served `page` at a time, as GET /v1/audit pages;
    refused (as a service's refusal) after `fail_after` pages."""
    served: list[int] = []

    async def fetch(before: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        if fail_after is not None and len(served) == fail_after:
            raise ServiceError(502, "审计记录暂时读不到")
        start = before or 0
        records = [{"at": at, "n": start + i} for i, at in enumerate(ats[start:start + min(page, limit)])]
        served.append(len(records))
        end = start + len(records)
        return records, end if end < len(ats) else None

    fetch.served = served  # type: ignore[attr-defined]
    return fetch


async def test_the_export_merges_the_trails_newest_first_a_page_of_each_at_a_time() -> None:
    one = _trail(["2026-12-07T10:00:05+08:00", "2026-12-07T10:00:03+08:00", "2026-12-07T10:00:01+08:00"], page=2)
    two = _trail(["2026-12-07T02:00:04+00:00", "2026-12-07T02:00:02+00:00"], page=2)  # UTC: 10:00:04 in the town
    three = _trail([], page=2)
    merge = _Merge([one, two, three], limit=100)
    await merge.fill()
    assert one.served == [2] and two.served == [2] and three.served == [0]  # the first page of each, no more
    got = [datetime.fromisoformat(r["at"]).second async for r in merge.records()]
    assert got == [5, 4, 3, 2, 1]
    assert one.served == [2, 1] and two.served == [2]


async def test_the_export_takes_at_most_the_limit_of_each_trail_and_a_late_refusal_is_raised() -> None:
    many = _trail([f"2026-12-07T10:00:{59 - s:02d}+08:00" for s in range(50)], page=10)
    merge = _Merge([many], limit=25)
    assert len([r async for r in merge.records()]) == 25
    refused = _Merge([_trail([f"2026-12-07T10:00:{59 - s:02d}+08:00" for s in range(30)], page=10, fail_after=1)],
                     limit=100)
    await refused.fill()
    with pytest.raises(ServiceError):
        [r async for r in refused.records()]
