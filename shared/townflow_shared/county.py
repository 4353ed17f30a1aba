"""A county's configuration (SPEC §8): one Townflow for every town of a county.

`TOWNFLOW_TOWN_DIR` names either one town's folder (its six files, as before) or a county's: a
`county.yaml` (code, name, time zone, the holidays and adjusted working days its towns share,
its departments, its staff with county roles) and one sub-folder per town holding that town's six
files. A wrong file fails start-up with a `TownConfigError` naming the file (so the town) and the
field.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .town import Account, Town, TownConfigError, _read, _Strict, _validate, known_zone, load_town

CountyRole = Literal["county_admin", "county_reader", "auditor"]


class Department(_Strict):
    code: str
    name: str


class CountyStaff(_Strict):
    id: str
    name: str
    roles: list[CountyRole] = Field(min_length=1)


class CountyInfo(_Strict):
    code: str = Field(pattern=r"^\d{6}$")
    name: str
    timezone: str = "Asia/Shanghai"
    holidays: list[date] = Field(default_factory=list)
    adjusted_working_days: list[date] = Field(default_factory=list)
    departments: list[Department] = Field(default_factory=list)
    staff: list[CountyStaff] = Field(default_factory=list)
    accounts: list[Account] = Field(default_factory=list)  # console sign-ins of the county's staff

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)


class County(_Strict):
    info: CountyInfo | None  # None: a one-town folder
    towns: dict[str, Town]   # by town code

    def town(self, code: str) -> Town | None:
        return self.towns.get(code)

    @property
    def only_town(self) -> Town | None:
        """The town of a one-town deployment."""
        return next(iter(self.towns.values())) if len(self.towns) == 1 else None

    def town_of_old_rows(self, legacy_code: str | None) -> str | None:
        """The town of rows written before the county change: a one-town deployment's own, or the
        one a county names in TOWNFLOW_LEGACY_TOWN_CODE, which must be one of its towns — a mistyped
        code would give every old row a town nobody serves."""
        if self.only_town is not None:
            return self.only_town.code
        if legacy_code is not None and legacy_code not in self.towns:
            raise TownConfigError(f"TOWNFLOW_LEGACY_TOWN_CODE={legacy_code} is not a town of this county"
                                  f" (its towns: {', '.join(sorted(self.towns))})")
        return legacy_code


def load_county(folder: Path | str) -> County:
    """A county folder, or a one-town folder as a county of one; TownConfigError on the first problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TownConfigError(f"{folder}: town or county folder not found (TOWNFLOW_TOWN_DIR)")
    if not (folder / "county.yaml").exists():
        town = load_town(folder)
        return County(info=None, towns={town.code: town})
    info: CountyInfo = _validate(CountyInfo, _read(folder, "county.yaml"), folder / "county.yaml")
    seen_staff: set[str] = set()
    for i, person in enumerate(info.staff):
        if person.id in seen_staff:
            raise TownConfigError(f"{folder / 'county.yaml'}: field staff.{i}.id: duplicate {person.id!r}")
        seen_staff.add(person.id)
    for i, account in enumerate(info.accounts):
        if account.staff not in seen_staff:
            raise TownConfigError(f"{folder / 'county.yaml'}: field accounts.{i}.staff: unknown county staff id"
                                  f" {account.staff!r}")
    towns: dict[str, Town] = {}
    folders: dict[str, Path] = {}
    # Every visible sub-folder is a town: one whose town.yaml is missing or misspelt fails by name
    # instead of silently leaving its town out of the county.
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        town = load_town(sub, county_holidays=info.holidays, county_adjusted_working_days=info.adjusted_working_days,
                         county_code=info.code)
        if town.code in towns:
            raise TownConfigError(f"{sub / 'town.yaml'}: field code: {town.code} is also the code of the town in"
                                  f" {folders[town.code]}")
        towns[town.code] = town
        folders[town.code] = sub
    if not towns:
        raise TownConfigError(f"{folder}: a county needs at least one town folder (with the town's six files)")
    # A login names one person in the whole county: the console signs in by login alone.
    logins: dict[str, Path] = {a.login: folder / "county.yaml" for a in info.accounts}
    if len(logins) < len(info.accounts):
        raise TownConfigError(f"{folder / 'county.yaml'}: field accounts: a login appears twice")
    for code, town in towns.items():
        for i, login in enumerate(town.accounts):
            if login in logins:
                raise TownConfigError(f"{folders[code] / 'accounts.yaml'}: field accounts.{i}.login: {login!r} is"
                                      f" also a login in {logins[login]}")
            logins[login] = folders[code] / "accounts.yaml"
    return County(info=info, towns=towns)
