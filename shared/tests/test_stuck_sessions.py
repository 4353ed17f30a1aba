"""Every replica ends its service's sessions stuck mid-statement (db.END_STUCK_SESSIONS; against a
real server in tests/database/test_session_limits.py): how often it looks, and that it does."""

from __future__ import annotations

from pathlib import Path

from townflow_shared import db
from townflow_shared.runtime import ServiceRuntime, end_stuck_sessions
from townflow_shared.settings import ServiceSettings


def test_a_stuck_session_is_ended_within_a_fifth_more_than_the_limit() -> None:
    assert db.reaper_interval(5.0) == 1.0
    assert db.reaper_interval(2.0) == 0.4
    assert db.reaper_interval(0.5) == 0.2  # no more than five looks a second however low the limit


def test_every_replica_reaps_unless_told_not_to() -> None:
    assert ServiceSettings().db_stuck_session_seconds == 5.0
    runtime = ServiceRuntime(ServiceSettings(), Path(__file__).parent)
    assert end_stuck_sessions in runtime.background
    never = ServiceRuntime(ServiceSettings(db_stuck_session_seconds=0), Path(__file__).parent)
    assert end_stuck_sessions not in never.background
