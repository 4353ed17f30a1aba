"""Who may sign in: the accounts of the county's configuration (`accounts.yaml` per town,
`accounts:` in county.yaml), each an argon2 hash of a password. Roles, name and town come from
the staff files, so a person's rights are what the services' town files say."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from townflow_shared.county import County

_hasher = PasswordHasher()
# Checked when the login is unknown, so an unknown login takes as long as a wrong password.
_DUMMY = _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class Person:
    """The signed-in person, as the session keeps them and the tokens name them."""

    login: str
    sub: str
    name: str
    roles: frozenset[str]
    town: str | None  # None: county staff
    town_name: str

    def has_any(self, roles: frozenset[str] | set[str], reading: bool = False) -> bool:
        """As the services read a token (auth.Principal.has_any): admin and county_admin hold
        every role, county_reader every role for reading."""
        if self.roles & {"admin", "county_admin"}:
            return True
        return (reading and "county_reader" in self.roles) or bool(self.roles & roles)

    @property
    def county_wide(self) -> bool:
        """As auth.Principal.county_wide: the county roles, and an auditor with no town."""
        return bool(self.roles & {"county_admin", "county_reader"}) or (self.town is None and "auditor" in self.roles)


@dataclass(frozen=True)
class _Account:
    person: Person
    password_hash: str


class Accounts:
    def __init__(self, county: County) -> None:
        self._by_login: dict[str, _Account] = {}
        county_name = county.info.name if county.info else ""
        if county.info:
            staff = {s.id: s for s in county.info.staff}
            for a in county.info.accounts:
                s = staff[a.staff]
                self._by_login[a.login] = _Account(
                    Person(a.login, s.id, s.name, frozenset(s.roles), None, county_name), a.password_hash)
        for town in county.towns.values():
            for a in town.accounts.values():
                member = town.staff[a.staff]
                self._by_login[a.login] = _Account(
                    Person(a.login, member.id, member.name, frozenset(member.roles), town.code, town.info.name),
                    a.password_hash)

    def __len__(self) -> int:
        return len(self._by_login)

    def knows(self, login: str) -> bool:
        return login in self._by_login

    def holder(self, login: str) -> Person | None:
        """Whose account `login` is (the audit trail names it), unchecked: no sign-in."""
        account = self._by_login.get(login)
        return account.person if account is not None else None

    def people(self) -> list[Person]:
        return [a.person for a in self._by_login.values()]

    async def sign_in(self, login: str, password: str) -> Person | None:
        """The person when the password matches their hash; argon2 runs off the event loop."""
        account = self._by_login.get(login)
        return await asyncio.to_thread(self._check, account, password)

    @staticmethod
    def _check(account: _Account | None, password: str) -> Person | None:
        try:
            _hasher.verify(account.password_hash if account else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        return account.person if account else None
