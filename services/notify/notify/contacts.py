"""Who is reached where (issue #31): each town's `notify.yaml`, beside its other files, validated at
start-up. A wrong file fails start-up with a `TownConfigError` naming the file and the field.

Staff contacts are staff data, as the town's staff.yaml is (never a citizen's). A town without the
file has no channels: its events are read and nobody is told. `${NAME}` in a value is the
environment variable NAME (a robot's secret kept out of the file; the local receivers' address in
tests); one that is not set fails start-up, naming it.

    robots:                       # the town's robots: DingTalk/浙政钉, WeCom, or a signed webhook
      - {name: duty-group, kind: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=…",
         secret: "${QINGHE_DUTY_SECRET}"}
    default_channels: [{robot: duty-group}]   # anyone not listed below
    digest_at: "08:30"            # the daily digest, town-local (quoted: YAML reads 10:30 as a number); null: none
    people:
      - {staff: s030, channels: [{robot: duty-group}, {email: s030@town.example.gov.cn}]}
      - {staff: s031, channels: [{robot: duty-group}], digest_at: "07:45"}   # their own hour; false: none
"""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, field_validator, model_validator

from townflow_shared.county import County
from townflow_shared.town import Town, TownConfigError, _read, _Strict, _validate

FILE = "notify.yaml"
RobotKind = Literal["dingtalk", "wecom", "webhook"]
# DingTalk and WeCom allow a robot 20 messages a minute (more is refused with an error code). A
# generic webhook is the county's own receiver: no vendor's limit, so none unless it sets one.
VENDOR_PER_MINUTE = 20
VENDOR_KINDS = ("dingtalk", "wecom")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# A town-local time of day, "HH:MM" (a string: unquoted, YAML 1.1 reads 10:30 as 630).
_TIME_OF_DAY = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
DEFAULT_DIGEST_AT = "08:30"


def time_of_day(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class Robot(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: RobotKind
    url: str = Field(pattern=r"^https?://")
    # DingTalk's 加签 secret (SEC…), the webhook's HMAC key; WeCom's key is in its URL.
    secret: str | None = None
    # Messages in any minute: a vendor's robot at most (and by default) its 20; a webhook none
    # unless set (a receiver of the county's own that wants one).
    per_minute: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _signed(self) -> Robot:
        if self.kind in ("dingtalk", "webhook") and not self.secret:
            raise ValueError(f"a {self.kind} robot needs its secret (messages are signed)")
        if self.kind == "wecom" and not parse_qs(urlsplit(self.url).query).get("key"):
            raise ValueError("a WeCom robot's url carries its key (…/cgi-bin/webhook/send?key=…)")
        if self.kind in VENDOR_KINDS and self.per_minute is not None and self.per_minute > VENDOR_PER_MINUTE:
            raise ValueError(f"per_minute: a {self.kind} robot takes at most {VENDOR_PER_MINUTE} messages a minute")
        return self

    def minute_limit(self) -> int | None:
        """What it may be sent in any minute; None: no limit."""
        if self.per_minute is None and self.kind in VENDOR_KINDS:
            return VENDOR_PER_MINUTE
        return self.per_minute


class Endpoint(_Strict):
    """One place a person is reached: a robot of the town (by name) or an e-mail address."""

    robot: str | None = None
    email: str | None = Field(default=None, pattern=_EMAIL)

    @model_validator(mode="after")
    def _one(self) -> Endpoint:
        if (self.robot is None) == (self.email is None):
            raise ValueError("name either a robot or an email")
        return self

    def channel(self, town_code: str) -> str:
        """The delivery's channel: `robot:<town>/<name>` (two towns may name a robot alike) or
        `email:<address>`; one message per event, person and channel."""
        return f"robot:{town_code}/{self.robot}" if self.robot is not None else f"email:{self.email}"


class Person(_Strict):
    staff: str
    channels: list[Endpoint] = Field(min_length=1)
    # Their daily digest's time, town-local; unset: the town's; false: no digest for them.
    digest_at: str | Literal[False] | None = None

    @field_validator("digest_at")
    @classmethod
    def _time_of_day(cls, value: str | Literal[False] | None) -> str | Literal[False] | None:
        return _checked_time(value)


def _checked_time(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(_TIME_OF_DAY, value):
        raise ValueError('a time of day is "HH:MM", quoted')
    return value


class TownContacts(_Strict):
    robots: list[Robot] = Field(default_factory=list)
    default_channels: list[Endpoint] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    digest_at: str | None = DEFAULT_DIGEST_AT  # the daily digest's time, town-local; None: no digest

    @field_validator("digest_at")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        return _checked_time(value)  # type: ignore[no-any-return]

    @field_validator("robots")
    @classmethod
    def _unique(cls, robots: list[Robot]) -> list[Robot]:
        names = [r.name for r in robots]
        if len(set(names)) < len(names):
            raise ValueError("two robots have the same name")
        return robots

    def channels_of(self, staff_id: str, town_code: str) -> list[str]:
        """Where `staff_id` is told: their own channels, else the town's default ones."""
        for person in self.people:
            if person.staff == staff_id:
                return [e.channel(town_code) for e in person.channels]
        return [e.channel(town_code) for e in self.default_channels]

    def digest_time_of(self, staff_id: str) -> time | None:
        """When `staff_id`'s daily digest is due, town-local: their own time, else the town's;
        None: they get none."""
        person = next((p for p in self.people if p.staff == staff_id), None)
        chosen = person.digest_at if person is not None and person.digest_at is not None else self.digest_at
        return time_of_day(chosen) if chosen else None

    def robot(self, name: str) -> Robot | None:
        return next((r for r in self.robots if r.name == name), None)


NO_CONTACTS = TownContacts()


def _expand(value: Any, path: Path, where: tuple[Any, ...]) -> Any:
    """`${NAME}` in every string replaced by the environment's NAME."""
    if isinstance(value, dict):
        return {k: _expand(v, path, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path, (*where, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def variable(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            field = ".".join(str(p) for p in where)
            raise TownConfigError(f"{path}: field {field}: environment variable {match.group(1)} is not set")
        return found

    return _VARIABLE.sub(variable, value)


def load_contacts(folder: Path, town: Town) -> TownContacts:
    """The town's notify.yaml in `folder`, checked against its staff; none: nobody is told."""
    path = folder / FILE
    if not path.exists():
        return NO_CONTACTS
    contacts: TownContacts = _validate(TownContacts, _expand(_read(folder, FILE), path, ()), path)
    names = {r.name for r in contacts.robots}

    def check(endpoints: list[Endpoint], where: str) -> None:
        for j, endpoint in enumerate(endpoints):
            if endpoint.robot is not None and endpoint.robot not in names:
                raise TownConfigError(f"{path}: field {where}.{j}.robot: unknown robot {endpoint.robot!r}")

    check(contacts.default_channels, "default_channels")
    seen: set[str] = set()
    for i, person in enumerate(contacts.people):
        if person.staff not in town.staff:
            raise TownConfigError(f"{path}: field people.{i}.staff: unknown staff id {person.staff!r}")
        if person.staff in seen:
            raise TownConfigError(f"{path}: field people.{i}.staff: {person.staff!r} is listed twice")
        seen.add(person.staff)
        check(person.channels, f"people.{i}.channels")
    return contacts


def town_folders(town_dir: Path) -> list[Path]:
    """The folders of the towns served: the folder itself (one town), or a county's sub-folders
    (the rule of townflow_shared.county)."""
    if not (town_dir / "county.yaml").exists():
        return [town_dir]
    return sorted(p for p in town_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def load_all_contacts(town_dir: Path, county: County) -> dict[str, TownContacts]:
    """Every served town's contacts by town code."""
    found: dict[str, TownContacts] = {}
    for folder in town_folders(town_dir):
        code = str((_read(folder, "town.yaml") or {}).get("code", ""))
        town = county.town(code)
        if town is not None:
            found[code] = load_contacts(folder, town)
    return found
