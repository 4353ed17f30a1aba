"""The console's sign-in accounts in the town configuration (SPEC §9): argon2 hashes only, each
naming a staff member of its town (or of the county), each login once in the whole county."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import TownConfigError, load_town


@pytest.fixture
def county(tmp_path: Path) -> Path:
    folder = tmp_path / "county"
    shutil.copytree(DEMO_COUNTY_DIR, folder)
    return folder


def _edit_accounts(path: Path, change: object) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(raw["accounts"])  # type: ignore[operator]
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")


def test_every_demo_town_staff_member_and_county_staff_member_has_an_account() -> None:
    loaded = load_county(DEMO_COUNTY_DIR)
    for town in loaded.towns.values():
        assert {a.staff for a in town.accounts.values()} == set(town.staff)
    assert loaded.info is not None
    assert {a.staff for a in loaded.info.accounts} == {s.id for s in loaded.info.staff}
    assert all(a.password_hash.startswith("$argon2id$") for t in loaded.towns.values() for a in t.accounts.values())


def test_a_town_without_accounts_has_no_sign_ins() -> None:
    assert load_town(DEMO_TOWN_DIR).accounts == {}


def test_an_account_for_an_unknown_staff_member_fails_naming_the_file_and_field(county: Path) -> None:
    _edit_accounts(county / "bailu" / "accounts.yaml", lambda accounts: accounts[2].update(staff="s999"))
    with pytest.raises(TownConfigError, match=r"bailu/accounts.yaml: field accounts.2.staff: unknown staff id 's999'"):
        load_county(county)


def test_a_password_instead_of_an_argon2_hash_is_refused(county: Path) -> None:
    _edit_accounts(county / "qinghe" / "accounts.yaml", lambda accounts: accounts[0].update(password_hash="secret"))
    with pytest.raises(TownConfigError, match=r"qinghe/accounts.yaml: field accounts.0.password_hash"):
        load_county(county)


def test_a_login_used_in_two_towns_is_refused(county: Path) -> None:
    _edit_accounts(county / "shiqiao" / "accounts.yaml", lambda accounts: accounts[0].update(login="qh-s010"))
    with pytest.raises(TownConfigError, match=r"'qh-s010' is also a login in .*qinghe/accounts.yaml"):
        load_county(county)


def test_a_county_account_names_county_staff(county: Path) -> None:
    text = (county / "county.yaml").read_text(encoding="utf-8").replace("{login: c003, staff: c003",
                                                                       "{login: c003, staff: c009")
    (county / "county.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(TownConfigError, match=r"county.yaml: field accounts.2.staff: unknown county staff id 'c009'"):
        load_county(county)
