"""Who reads and acts in which town (SPEC §8), and the runtime's towns, without a stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from townflow_shared.auth import Principal
from townflow_shared.dlq import Rejected
from townflow_shared.runtime import ServiceRuntime
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR, ServiceSettings

A, B = "321003104", "321003107"


def _who(*roles: str, town: str | None = A) -> Principal:
    return Principal(sub="s010", roles=frozenset(roles), town=town)


def test_a_towns_staff_reads_and_acts_in_their_own_town_only() -> None:
    clerk = _who("clerk")
    assert clerk.may_read(A) and clerk.may_act(A)
    assert not clerk.may_read(B) and not clerk.may_act(B)


def test_a_county_reader_reads_every_town_and_acts_in_none() -> None:
    reader = _who("county_reader", town=None)
    assert reader.may_read(A) and reader.may_read(B)
    assert not reader.may_act(A) and not reader.may_act(B)
    assert reader.has_any(["command_centre"], reading=True)
    assert not reader.has_any(["command_centre"], reading=False)


def test_the_county_admin_reads_and_acts_in_every_town_with_every_role() -> None:
    admin = _who("county_admin", town=None)
    assert all(admin.may_read(t) and admin.may_act(t) for t in (A, B))
    assert admin.has_any(["officer"])


def test_a_towns_admin_holds_every_role_in_its_own_town_only() -> None:
    admin = _who("admin")
    assert admin.has_any(["officer"]) and admin.may_act(A) and not admin.may_act(B)


def _runtime(folder: Path) -> ServiceRuntime:
    return ServiceRuntime(ServiceSettings(town_dir=folder), Path(__file__).parent)


def test_a_one_town_deployment_has_its_town() -> None:
    runtime = _runtime(DEMO_TOWN_DIR)
    assert runtime.town.code == A and runtime.town_of(A) is runtime.town


def test_a_county_picks_the_town_of_each_event_and_refuses_a_town_it_does_not_serve() -> None:
    runtime = _runtime(DEMO_COUNTY_DIR)
    assert runtime.town_of(B).code == B
    with pytest.raises(Rejected, match="999999999"):
        runtime.town_of("999999999")
    with pytest.raises(RuntimeError):
        _ = runtime.town  # no single town: the code must say which
