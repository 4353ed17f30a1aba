"""The three tiers (README "Tests"): unit tests in shared/tests and services/*/tests do no I/O,
database tests in tests/database/ use PostgreSQL alone, stack tests in tests/ the whole system.

The unit tier is held to it: a unit test that opens a network connection fails at once, naming the
address, instead of quietly needing a running PostgreSQL, broker or service. Tests are marked by
tier (`pytest -m unit`, `-m database`, `-m stack`)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent
DATABASE_TIER = ROOT / "tests" / "database"
STACK_TIER = ROOT / "tests"
NETWORK = (socket.AF_INET, socket.AF_INET6)

# No per-example deadline for the properties: on a busy 2-core machine an example that takes 20 ms
# may take 400 — a fact about the machine, not the code, and a flaky failure.
settings.register_profile("townflow", deadline=None)
settings.load_profile("townflow")  # AF_UNIX stays open: a worker process's pipe is not I/O here


def tier_of(path: Path) -> str:
    path = path.resolve()
    if path.is_relative_to(DATABASE_TIER):
        return "database"
    return "stack" if path.is_relative_to(STACK_TIER) else "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(Path(item.path)))


def _refused(connect: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(sock: socket.socket, address: Any, *args: Any) -> Any:
        if sock.family in NETWORK:
            raise AssertionError(f"a unit test connected to {address}: it belongs in tests/database "
                                 "(PostgreSQL) or tests/ (the stack)")
        return connect(sock, address, *args)
    return guarded


@pytest.fixture(autouse=True)
def _no_network_in_the_unit_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if tier_of(Path(request.node.path)) == "unit":
        monkeypatch.setattr(socket.socket, "connect", _refused(socket.socket.connect))
        monkeypatch.setattr(socket.socket, "connect_ex", _refused(socket.socket.connect_ex))
