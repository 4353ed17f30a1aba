"""Every refusal a service gives is named by its code, `CODES["task.not_found"]`, rather than by a
Python name bound to it (townflow_shared.problems.Catalogue says why). mypy cannot see a typo in a
string, so this test reads each service's code the way Python does and holds every `CODES[...]`
against the service's `refusals.toml`: a code nobody declared fails here, not on the day it is
raised; a declared code no line gives is dead weight in the docs and the console's table."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "dispatch", "enforcement", "appraisal")


def _declared(service: str) -> set[str]:
    with (ROOT / "services" / service / service / "refusals.toml").open("rb") as file:
        return set(tomllib.load(file))


def _given(service: str) -> dict[str, list[str]]:
    """Each code a service's modules subscript `CODES` with, and where."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "services" / service / service).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "CODES"):
                assert isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str), (
                    f"{path.relative_to(ROOT)}:{node.lineno}: a refusal is named by its code, written out")
                found.setdefault(node.slice.value, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_code_a_service_gives_is_declared(service: str) -> None:
    given, declared = _given(service), _declared(service)
    assert len(given) >= 5  # the walk found the service's refusals, not an empty folder
    undeclared = {code: where for code, where in given.items() if code not in declared}
    assert undeclared == {}, f"{service}/refusals.toml declares none of these"


@pytest.mark.parametrize("service", SERVICES)
def test_every_declared_code_is_given_somewhere(service: str) -> None:
    assert sorted(_declared(service) - set(_given(service))) == []
