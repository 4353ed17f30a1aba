"""The alert rules' own unit tests (deploy/prometheus/alerts_test.yml), run by promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_the_alert_rules_fire_as_their_tests_expect() -> None:
    result = subprocess.run(["promtool", "test", "rules", str(PROMETHEUS / "alerts_test.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
