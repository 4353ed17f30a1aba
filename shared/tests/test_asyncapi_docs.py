"""The checked-in AsyncAPI documents are exactly what the code generates."""

from __future__ import annotations

import subprocess
import sys

from devstack.stack import REPO


def test_asyncapi_documents_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, "-m", "devstack.contracts", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
