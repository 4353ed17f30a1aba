"""The town configuration (SPEC §4): YAML files in TOWNFLOW_TOWN_DIR, validated at start-up.

A wrong file fails start-up with a `TownConfigError` naming the file, the field and the problem.
Every number that SPEC §5 calls a default lives in `rules.yaml` and is modelled by `Rules`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, time
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .calendar import TimeLimit, WorkCalendar
from .events import Colour
from .place import PlaceError, TownPlaces, has_places, load_places

Role = Literal[
    "clerk", "proxy_agent", "village_station", "command_centre", "staff", "module_leader",
    "officer", "appraisal_admin", "admin", "auditor",
]
ModuleKind = Literal["module", "centre", "enforcement", "seconded", "command"]
ItemKind = Literal["service", "enforcement", "territorial"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TownConfigError(ValueError):
    """A configuration file is wrong; the message names the file, the field and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Village(_Strict):
    code: str
    name: str


def known_zone(value: str) -> str:
    """An IANA time zone name (Asia/Shanghai), or ValueError: a misspelt zone stops start-up
    instead of every date answering 500."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from exc
    return value


class TownInfo(_Strict):
    code: str = Field(pattern=r"^\d{9}$")
    name: str
    timezone: str = "Asia/Shanghai"
    working_hours: list[str] = ["08:30-12:00", "14:00-17:30"]
    working_weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = [
        "mon", "tue", "wed", "thu", "fri",
    ]
    holidays: list[date] = []
    adjusted_working_days: list[date] = []
    party_secretary: str
    command_centre_duty: list[str] = Field(min_length=1)
    villages: list[Village] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("working_hours")
    @classmethod
    def _periods(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one working period is needed")
        previous_end = time(0)
        for period in value:
            try:
                start_text, end_text = period.split("-")
                start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
            except ValueError as exc:
                raise ValueError(f"{period!r} is not like '08:30-12:00'") from exc
            if not previous_end <= start < end:
                raise ValueError(f"{period!r} overlaps or is out of order")
            previous_end = end
        return value


class Module(_Strict):
    code: str
    name: str
    kind: ModuleKind
    leader: str
    parent_department: str | None = None


class Staff(_Strict):
    id: str
    name: str
    module: str
    post_coefficient: float = Field(default=1.0, gt=0, le=5)
    roles: list[Role] = ["staff"]
    enforcement_certificate: bool = False


class Account(_Strict):
    """A sign-in of the staff console (SPEC §9) for local runs and tests: the password only as an
    argon2 hash (`python -m console hash-password`). Production signs in at the county's OIDC issuer."""

    login: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
    staff: str
    password_hash: str = Field(pattern=r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


class Post(_Strict):
    code: str
    name: str = ""
    module: str
    a_holder: str
    b_holder: str
    load_cap: int | None = Field(default=None, ge=1)
    # The grid cells (15-digit codes of grid.geojson) this post holds, 网格员/包村干部: a located
    # territorial matter in one of them comes to this post before its item's (issue #30).
    cells: list[str] = []


class CatalogItem(_Strict):
    code: str
    name: str
    kind: ItemKind
    post: str
    lead_module: str
    cooperating_modules: list[str] = []
    time_limit: str
    default_colour: Colour = "yellow"
    difficulty: float = Field(default=1.0, ge=1.0, le=2.0)
    legal_basis: str
    delegated: bool = True
    department: str | None = None
    joint_units: list[str] = []
    # A matter of this item happens at a place (a broken road, a stall on the pavement, a site to
    # visit) and may carry a point; a person's own service matter does not: its place is a home.
    located: bool = False
    # Photos a filing of this item may carry (issue #29; FixMyStreet takes three); 0: none.
    photos_max: int = Field(default=3, ge=0, le=9)
    # Photos of a task of this item at each step after the filing (issue #29): the holder's after
    # photos at completion (处置后照片), the command centre's at the closure check (核查); at least
    # one of the after photos when the item needs the work seen done (a repaired road, a cleared site).
    task_photos_max: int = Field(default=3, ge=1, le=9)
    completion_photo_required: bool = False

    @field_validator("time_limit")
    @classmethod
    def _limit(cls, value: str) -> str:
        limit = TimeLimit.parse(value)
        if limit.unit == "wh" or limit.amount < 1:
            raise ValueError("time limit must be like '5wd' (working days) or '24h' (clock hours)")
        return value

    @property
    def task_kind(self) -> Literal["service", "enforcement", "joint_visit"]:
        if self.kind == "enforcement":
            return "enforcement"
        if self.joint_units:
            return "joint_visit"
        return "service"


class IntakeRules(_Strict):
    repeat_filing_count: int = Field(default=3, ge=2)
    repeat_filing_window_days: int = Field(default=30, ge=1)
    # Ticket numbers are sequential: a citizen's code is all that keeps a stranger from their
    # matter and its one rating, so guessing is limited per ticket (SPEC §6.1).
    wrong_codes_per_hour: int = Field(default=10, ge=1)
    # 重复件 (SPEC §10): open matters filed this many days back are looked at for a new filing.
    duplicate_window_days: int = Field(default=7, ge=1)
    # How alike two normalised locations must be (character-bigram Dice, 0–1; containment is 1).
    duplicate_location_similarity: float = Field(default=0.5, gt=0, le=1)
    # 重复件 by place (issue #30): an open matter of the same item this close to a new one's point
    # (metres; FixMyStreet suggests those within 50 m).
    duplicate_distance_m: float = Field(default=50, gt=0, le=1000)
    # Whether a citizen with the ticket's access code sees the matter's photos (issue #29): a
    # town decides, since a photo of a neighbour's extension shows more than the citizen's own matter.
    citizen_sees_photos: bool = False


class DispatchRules(_Strict):
    respond_by: dict[Colour, str] = {"red": "1h", "orange": "4h", "yellow": "1wd"}
    resolve_by_red: str = "24h"
    resolve_by_orange_cap: str = "3wd"
    return_window: str = "2wh"
    default_load_cap: int = Field(default=20, ge=1)
    reminder_at: float = Field(default=0.8, gt=0)
    overdue_at: float = Field(default=1.0, gt=0)
    escalated_at: float = Field(default=1.5, gt=0)

    @field_validator("resolve_by_red", "resolve_by_orange_cap", "return_window")
    @classmethod
    def _limit(cls, value: str) -> str:
        TimeLimit.parse(value)
        return value

    @field_validator("respond_by")
    @classmethod
    def _limits(cls, value: dict[str, str]) -> dict[str, str]:
        for colour in ("red", "orange", "yellow"):
            if colour not in value:
                raise ValueError(f"missing colour {colour}")
            TimeLimit.parse(value[colour])
        return value


class EnforcementRules(_Strict):
    min_officers: int = Field(default=2, ge=2)
    decision_limit_days: int = 90
    decision_warning_day: int = 60
    extension_days: int = 30
    # 多头检查 (SPEC §10): separate inspections of one target by this many units within the window.
    repeated_inspection_window_days: int = Field(default=30, ge=1)
    repeated_inspection_units: int = Field(default=2, ge=2)


class AppraisalWeights(_Strict):
    response: float = 0.30
    resolution: float = 0.35
    satisfaction: float = 0.35


class PointsRules(_Strict):
    completed: float = 10
    colour_factor: dict[Colour, float] = {"red": 1.5, "orange": 1.2, "yellow": 1.0}
    on_time: float = 2
    overdue: float = -5
    escalated: float = -10
    invalid_return: float = -3
    satisfied: float = 2
    unsatisfied: float = -5
    inspection_officer: float = 5
    combined_extra_task: float = 3


class AlertRules(_Strict):
    reminder_overdue: int = 3
    talk_overdue: int = 5
    talk_satisfaction_below: float = 0.80
    talk_min_ratings: int = 5
    accountability_overdue: int = 8
    accountability_on_escalated_red: bool = True


class DimensionRules(_Strict):
    max_each: float = 25
    efficiency_weights: dict[str, float] = {"response": 0.5, "resolution": 0.5}
    quality_weights: dict[str, float] = {"satisfaction": 0.7, "no_rework": 0.3}
    discipline_penalty_overdue: float = 5
    discipline_penalty_escalated: float = 10


class SecondedRules(_Strict):
    town_weight: float = 0.6
    department_weight: float = 0.4


class AppraisalRules(_Strict):
    weights: AppraisalWeights = AppraisalWeights()
    points: PointsRules = PointsRules()
    alerts: AlertRules = AlertRules()
    dimensions: DimensionRules = DimensionRules()
    seconded: SecondedRules = SecondedRules()
    rankings_size: int = 5


class Rules(_Strict):
    intake: IntakeRules = IntakeRules()
    dispatch: DispatchRules = DispatchRules()
    enforcement: EnforcementRules = EnforcementRules()
    appraisal: AppraisalRules = AppraisalRules()


class Town(_Strict):
    info: TownInfo
    modules: dict[str, Module]
    staff: dict[str, Staff]
    posts: dict[str, Post]
    catalog: dict[str, CatalogItem]
    rules: Rules
    accounts: dict[str, Account] = {}  # console sign-ins by login (optional accounts.yaml)
    places: TownPlaces | None = None  # boundary, villages, grid cells (optional GeoJSON files, place.py)

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,),
                              arbitrary_types_allowed=True)

    @property
    def code(self) -> str:
        return self.info.code

    @cached_property
    def calendar(self) -> WorkCalendar:
        periods = []
        for period in self.info.working_hours:
            start, end = period.split("-")
            periods.append((time.fromisoformat(start.strip()), time.fromisoformat(end.strip())))
        return WorkCalendar(
            tz=ZoneInfo(self.info.timezone),
            periods=tuple(periods),
            weekdays=frozenset(WEEKDAYS.index(d) for d in self.info.working_weekdays),
            holidays=frozenset(self.info.holidays),
            adjusted_working_days=frozenset(self.info.adjusted_working_days),
        )

    @property
    def villages(self) -> dict[str, Village]:
        return {v.code: v for v in self.info.villages}

    def load_cap(self, post: Post) -> int:
        return post.load_cap or self.rules.dispatch.default_load_cap

    @cached_property
    def cell_posts(self) -> dict[str, Post]:
        """The post holding each grid cell that posts.yaml gives one."""
        return {cell: post for post in self.posts.values() for cell in post.cells}


FILES = ("town.yaml", "modules.yaml", "staff.yaml", "posts.yaml", "catalog.yaml", "rules.yaml")
OPTIONAL_FILES = ("rules.yaml", "accounts.yaml")  # absent: the defaults; no console sign-ins
# The files of a layout (a reform rehearsal's, issue #32): everything of a town but its identity,
# villages and calendar (town.yaml).
LAYOUT_FILES = ("modules.yaml", "posts.yaml", "staff.yaml", "rules.yaml", "catalog.yaml")


def town_files(town: Town) -> dict[str, str]:
    """The town's files as YAML text, from what was loaded (comments are not kept): what a rehearsal
    starts a layout from, in dispatch and on the console's page."""
    parts: dict[str, Any] = {
        "town.yaml": town.info.model_dump(mode="json"),
        "modules.yaml": {"modules": [m.model_dump(mode="json") for m in town.modules.values()]},
        "staff.yaml": {"staff": [s.model_dump(mode="json") for s in town.staff.values()]},
        "posts.yaml": {"posts": [p.model_dump(mode="json") for p in town.posts.values()]},
        "catalog.yaml": {"items": [i.model_dump(mode="json") for i in town.catalog.values()]},
        "rules.yaml": town.rules.model_dump(mode="json"),
    }
    return {name: yaml.safe_dump(content, allow_unicode=True, sort_keys=False) for name, content in parts.items()}


# PyYAML's safe loader in libyaml's C where the wheel has it: a county of 60 towns' files took a
# service (and a rebuild) about 5 seconds to read with the pure-Python one, a tenth of that in C.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.exists():
        if name in OPTIONAL_FILES:
            return {}
        raise TownConfigError(f"{path}: file is missing")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise TownConfigError(f"{path}: not valid YAML: {exc}") from exc


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _validate(model: type[BaseModel], raw: Any, path: Path, prefix: tuple[Any, ...] = ()) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TownConfigError(
            f"{path}: field {_where(prefix + tuple(first['loc']))}: {first['msg']}"
        ) from exc


def _items(raw: Any, key: str, model: type[BaseModel], path: Path, id_field: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get(key), list):
        raise TownConfigError(f"{path}: field {key}: expected a list under '{key}:'")
    result: dict[str, Any] = {}
    for index, entry in enumerate(raw[key]):
        obj = _validate(model, entry, path, (key, index))
        ident = getattr(obj, id_field)
        if ident in result:
            raise TownConfigError(f"{path}: field {key}.{index}.{id_field}: duplicate {ident!r}")
        result[ident] = obj
    return result


def load_town(folder: Path | str, *, county_holidays: Iterable[date] = (),
              county_adjusted_working_days: Iterable[date] = (), county_code: str | None = None,
              places: TownPlaces | None = None) -> Town:
    """Read and cross-check the town's YAML files; raise TownConfigError on the first problem.
    `places`: the town's map when the folder has no GeoJSON of its own (a rehearsal's layout, whose
    posts may hold the town's grid cells).

    In a county (see county.py) the county's holidays and adjusted working days apply to every
    town, its own add to them, and the town's code lies within the county's."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TownConfigError(f"{folder}: town folder not found (TOWNFLOW_TOWN_DIR)")
    p = {name: folder / name for name in FILES}
    info = _validate(TownInfo, _read(folder, "town.yaml"), p["town.yaml"])
    if county_code is not None and not info.code.startswith(county_code):
        raise TownConfigError(f"{p['town.yaml']}: field code: {info.code} is not a town of county {county_code}"
                              " (a town's 9-digit code starts with its county's 6)")
    info = info.model_copy(update={
        "holidays": sorted({*county_holidays, *info.holidays}),
        "adjusted_working_days": sorted({*county_adjusted_working_days, *info.adjusted_working_days})})
    modules = _items(_read(folder, "modules.yaml"), "modules", Module, p["modules.yaml"], "code")
    staff = _items(_read(folder, "staff.yaml"), "staff", Staff, p["staff.yaml"], "id")
    posts = _items(_read(folder, "posts.yaml"), "posts", Post, p["posts.yaml"], "code")
    catalog = _items(_read(folder, "catalog.yaml"), "items", CatalogItem, p["catalog.yaml"], "code")
    rules = _validate(Rules, _read(folder, "rules.yaml"), p["rules.yaml"])
    accounts_path = folder / "accounts.yaml"
    raw_accounts = _read(folder, "accounts.yaml")
    accounts = _items(raw_accounts, "accounts", Account, accounts_path, "login") if raw_accounts else {}

    def need(ok: bool, path: Path, field: str, problem: str) -> None:
        if not ok:
            raise TownConfigError(f"{path}: field {field}: {problem}")

    need(info.party_secretary in staff, p["town.yaml"], "party_secretary",
         f"unknown staff id {info.party_secretary!r}")
    for i, sid in enumerate(info.command_centre_duty):
        need(sid in staff, p["town.yaml"], f"command_centre_duty.{i}", f"unknown staff id {sid!r}")
    need(any(m.kind == "command" for m in modules.values()), p["modules.yaml"], "modules",
         "the command centre (kind: command) is missing")
    for i, m in enumerate(modules.values()):
        need(m.leader in staff, p["modules.yaml"], f"modules.{i}.leader", f"unknown staff id {m.leader!r}")
        need(m.kind != "seconded" or bool(m.parent_department), p["modules.yaml"],
             f"modules.{i}.parent_department", "a seconded unit names its county department")
    for i, s in enumerate(staff.values()):
        need(s.module in modules, p["staff.yaml"], f"staff.{i}.module", f"unknown module {s.module!r}")
    for i, post in enumerate(posts.values()):
        need(post.module in modules, p["posts.yaml"], f"posts.{i}.module", f"unknown module {post.module!r}")
        for holder in ("a_holder", "b_holder"):
            sid = getattr(post, holder)
            need(sid in staff, p["posts.yaml"], f"posts.{i}.{holder}", f"unknown staff id {sid!r}")
        need(post.a_holder != post.b_holder, p["posts.yaml"], f"posts.{i}.b_holder",
             "the B holder must be another person than the A holder")
    for i, item in enumerate(catalog.values()):
        where = f"items.{i}"
        need(item.post in posts, p["catalog.yaml"], f"{where}.post", f"unknown post {item.post!r}")
        need(item.lead_module in modules, p["catalog.yaml"], f"{where}.lead_module",
             f"unknown module {item.lead_module!r}")
        for j, code in enumerate(item.cooperating_modules):
            need(code in modules, p["catalog.yaml"], f"{where}.cooperating_modules.{j}", f"unknown module {code!r}")
        for j, code in enumerate(item.joint_units):
            need(code in modules, p["catalog.yaml"], f"{where}.joint_units.{j}", f"unknown module {code!r}")
        need(item.kind != "enforcement" or bool(item.department), p["catalog.yaml"],
             f"{where}.department", "an enforcement item names the county department it came from")
    for i, account in enumerate(accounts.values()):
        need(account.staff in staff, accounts_path, f"accounts.{i}.staff", f"unknown staff id {account.staff!r}")
    if has_places(folder):
        try:
            places = load_places(folder, info.code, [v.code for v in info.villages])
        except PlaceError as exc:
            raise TownConfigError(str(exc)) from exc
    held: dict[str, str] = {}
    for i, post in enumerate(posts.values()):
        for j, cell in enumerate(post.cells):
            need(places is not None and cell in places.cells, p["posts.yaml"], f"posts.{i}.cells.{j}",
                 f"unknown grid cell {cell!r} (grid.geojson)")
            need(cell not in held, p["posts.yaml"], f"posts.{i}.cells.{j}",
                 f"grid cell {cell} is held by post {held.get(cell)!r} already")
            held[cell] = post.code
    return Town(info=info, modules=modules, staff=staff, posts=posts, catalog=catalog, rules=rules,
                accounts=accounts, places=places)
