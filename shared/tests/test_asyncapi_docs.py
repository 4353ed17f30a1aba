"""The checked-in AsyncAPI documents are exactly what the code generates, and valid AsyncAPI by the
AsyncAPI initiative's own parser (@asyncapi/parser from npm, pinned in
shared/tests/asyncapi/package-lock.json, installed by `make install`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import ALL_SERVICES, REPO

VALIDATOR = Path(__file__).resolve().parent / "asyncapi"
DOCUMENTS = sorted((REPO / "docs" / "asyncapi").glob("*.json"))


def test_asyncapi_documents_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, "-m", "devstack.contracts", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def node() -> str:
    """node with the pinned parser installed (`npm ci` here when `make install` has not run)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed to validate the AsyncAPI documents (Debian: nodejs npm)")
        pytest.skip("node/npm not installed (Debian: apt-get install nodejs npm): AsyncAPI validation skipped")
    if not (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=VALIDATOR, check=True,
                       capture_output=True, timeout=600)
    return node


def _validate(node: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node, "validate.mjs", *map(str, paths)], cwd=VALIDATOR, capture_output=True,
                          text=True, timeout=120)


def test_every_asyncapi_document_is_valid(node: str) -> None:
    assert {p.stem for p in DOCUMENTS} == set(ALL_SERVICES)  # one per service that publishes or consumes events
    result = _validate(node, *DOCUMENTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("valid AsyncAPI 3.0.0") == len(DOCUMENTS), result.stdout


def test_an_invalid_asyncapi_document_fails(node: str, tmp_path: Path) -> None:
    """The check can fail: a document without its `info`, and one whose message reference dangles."""
    document = json.loads(DOCUMENTS[0].read_text(encoding="utf-8"))
    without_info = {k: v for k, v in document.items() if k != "info"}
    dangling = json.loads(DOCUMENTS[0].read_text(encoding="utf-8"))
    channel = next(iter(dangling["channels"].values()))
    next(iter(channel["messages"].values()))["$ref"] = "#/components/messages/nowhere"
    for name, broken in (("without-info", without_info), ("dangling", dangling)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(broken), encoding="utf-8")
        result = _validate(node, path)
        assert result.returncode == 1 and "error" in result.stdout, (name, result.stdout + result.stderr)
