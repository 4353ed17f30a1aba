"""The demo county's console accounts: every staff member of its three towns and its county staff
may sign in with the one demo password below (local runs and tests only; the files hold argon2
hashes, never the password). `python -m devstack.demo_accounts` writes the files again."""

from __future__ import annotations

import re
from pathlib import Path

from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

DEMO_PASSWORD = "hechuan-2026"  # noqa: S105 - the documented password of the demo accounts, printed by `make up`
# A login names one person in the county: the town's short prefix and the staff id.
PREFIXES = {"qinghe": "qh", "bailu": "bl", "shiqiao": "sq"}
# Who `make up` lists (the others sign in the same way: qh-<staff id>).
SHOWN = ("qh-s010", "qh-s035", "qh-s036", "qh-s030", "qh-s049", "qh-s026", "qh-s032", "qh-s002", "bl-s030",
         "c001", "c002", "c004")


def write_demo_accounts(county_dir: Path = DEMO_COUNTY_DIR) -> None:
    from argon2 import PasswordHasher

    from console.rules import password_weaknesses

    hasher = PasswordHasher()
    # The console's password policy holds for the demo's accounts too (every login is checked below).
    refused = {login: w for login in _logins(county_dir) if (w := password_weaknesses(DEMO_PASSWORD, login))}
    if refused:
        raise ValueError(f"the demo password breaks the console's password policy: {refused}")
    for folder, prefix in PREFIXES.items():
        staff = re.findall(r"\{id: (s\d+), name: ([^,]+),", (county_dir / folder / "staff.yaml").read_text())
        lines = ["# Console sign-ins of this town (SPEC §9), for local runs and tests: argon2 hashes of the",
                 f"# demo password (devstack/demo_accounts.py, README \"The console\"). Login: {prefix}-<staff id>.",
                 "accounts:"]
        lines += [f"  - {{login: {prefix}-{sid}, staff: {sid}, password_hash: '{hasher.hash(DEMO_PASSWORD)}'}}"
                  f"  # {name}" for sid, name in staff]
        (county_dir / folder / "accounts.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The county's own staff: the `accounts:` block that ends county.yaml.
    county_yaml = county_dir / "county.yaml"
    text = county_yaml.read_text(encoding="utf-8").split(ACCOUNTS_BLOCK)[0].rstrip("\n")
    staff = re.findall(r"\{id: (c\d+), name: ([^,]+),", text)
    lines = [f"  - {{login: {sid}, staff: {sid}, password_hash: '{hasher.hash(DEMO_PASSWORD)}'}}  # {name}"
             for sid, name in staff]
    county_yaml.write_text(text + "\n" + ACCOUNTS_BLOCK + "\n".join(lines) + "\n", encoding="utf-8")


def _logins(county_dir: Path) -> list[str]:
    logins = [f"{prefix}-{sid}" for folder, prefix in PREFIXES.items()
              for sid in re.findall(r"\{id: (s\d+),", (county_dir / folder / "staff.yaml").read_text())]
    return logins + re.findall(r"\{id: (c\d+),", (county_dir / "county.yaml").read_text(encoding="utf-8"))


ACCOUNTS_BLOCK = ("# Console sign-ins of the county's staff, for local runs and tests: argon2 hashes of the demo\n"
                  "# password (devstack/demo_accounts.py). Login: the staff id.\naccounts:\n")


def demo_account_lines(county_dir: Path) -> list[str]:
    """What `make up` prints: the shown logins with their person, town and roles."""
    county = load_county(county_dir)
    people: dict[str, str] = {}
    for town in county.towns.values():
        for account in town.accounts.values():
            member = town.staff[account.staff]
            people[account.login] = f"{member.name}, {town.info.name}, {' '.join(member.roles)}"
    if county.info:
        roles = {s.id: (s.name, s.roles) for s in county.info.staff}
        for account in county.info.accounts:
            name, county_roles = roles[account.staff]
            people[account.login] = f"{name}, {county.info.name}, {' '.join(county_roles)}"
    return [f"{login:<9} {people[login]}" for login in SHOWN if login in people]


if __name__ == "__main__":
    write_demo_accounts()
