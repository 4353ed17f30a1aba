"""A county of many towns for the benchmark (SPEC §7.1: 渠县 has 60): the demo county's `county.yaml`
and N copies of 青禾镇, each with its own code (321003100 + n) and name. The towns' staff, posts and
catalogs are alike, so a county run and a one-town run of the same harness differ only in the
number of towns."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from townflow_shared.settings import DEMO_COUNTY_DIR

COUNTY_CODE = "321003"
QINGHE_CODE = "321003104"


def town_code(n: int) -> str:
    return f"{COUNTY_CODE}{100 + n:03d}"


def make_county(folder: Path, towns: int) -> list[str]:
    """Write a county of `towns` towns into `folder`; their codes."""
    if not 1 <= towns <= 899:
        raise ValueError("a county here has 1 to 899 towns")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_COUNTY_DIR / "county.yaml", folder / "county.yaml")
    codes = []
    for n in range(towns):
        town = folder / f"town{n:03d}"
        shutil.copytree(DEMO_COUNTY_DIR / "qinghe", town, dirs_exist_ok=True)
        info = yaml.safe_load((town / "town.yaml").read_text(encoding="utf-8"))
        info["code"], info["name"] = town_code(n), f"第{n + 1}镇"
        (town / "town.yaml").write_text(yaml.safe_dump(info, allow_unicode=True), encoding="utf-8")
        # Console logins name one person in the county: town n's are t<n>-<staff id> (qh- in 青禾镇).
        # Its places (issue #30) are 青禾镇's, under its own code: the boundary, the grid codes, the
        # cells its posts hold.
        for name in ("town.geojson", "grid.geojson", "posts.yaml"):
            path = town / name
            path.write_text(path.read_text(encoding="utf-8").replace(QINGHE_CODE, town_code(n)), encoding="utf-8")
        accounts = town / "accounts.yaml"
        accounts.write_text(accounts.read_text(encoding="utf-8").replace("login: qh-", f"login: t{n:03d}-"),
                            encoding="utf-8")
        codes.append(town_code(n))
    return codes
