"""The town's own codes by the names its staff use (items, villages, staff, posts, modules and
seconded units, county departments, towns) and the town's clock: read once from the county's
configuration, looked up here by every page and refusal. The services' fixed codes (statuses,
colours, channels…) are labels.py's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo

from townflow_shared.county import County
from townflow_shared.town import Town

from . import labels
from .times import shown


class Names(dict[str, str]):
    """Codes of one kind by name; called with a code, its name, or the code as it came when the
    configuration does not know it (none: an empty text)."""

    def __call__(self, code: str | None) -> str:
        return self.get(code or "", code or "")


@dataclass(frozen=True)
class TownNames:
    """One town's codes by name (a county role's: the names every town gives alike) and its clock:
    `here.item("S001")`, `here.staff(staff_id)`."""

    zone: tzinfo
    item: Names = field(default_factory=Names)
    village: Names = field(default_factory=Names)
    staff: Names = field(default_factory=Names)
    post: Names = field(default_factory=Names)
    unit: Names = field(default_factory=Names)  # modules and seconded units, then county departments
    town: Names = field(default_factory=Names)
    limits: dict[str, str] = field(default_factory=dict)  # an item's time limit, as its catalog gives it

    def subject(self, kind: str, code: str | None) -> str:
        """An appraisal subject (SUBJECT_TYPES): a staff member, a module or seconded unit, a village."""
        return {"staff": self.staff, "village": self.village}.get(kind, self.unit)(code)

    def limit(self, item_code: str, given: str = "") -> str:
        """An item's time limit in words (3个工作日), from the town's catalog, else as `given`."""
        return self.limits.get(item_code) or labels.time_limit(given)

    def when(self, value: object) -> str:
        return shown(value, self.zone)

    def flat(self) -> dict[str, str]:
        """Every code → name, for a refusal's params (which do not say what kind of code they carry):
        the town's staff win over a unit or item of the same spelling."""
        return {**self.unit, **self.post, **self.village, **self.item, **self.staff, **self.town}


def _town_names(town: Town, county: County, towns: Names) -> TownNames:
    departments = {d.code: d.name for d in county.info.departments} if county.info else {}
    return TownNames(
        zone=ZoneInfo(town.info.timezone),
        item=Names({i.code: i.name for i in town.catalog.values()}),
        village=Names({v.code: v.name for v in town.info.villages}),
        staff=Names({s.id: s.name for s in town.staff.values()}),
        post=Names({p.code: p.name for p in town.posts.values() if p.name}),
        unit=Names({**departments, **{m.code: m.name for m in town.modules.values()}}),
        town=towns,
        limits={i.code: labels.time_limit(i.time_limit) for i in town.catalog.values()})


def _shared(per_town: list[Names]) -> Names:
    """A code only where every town that has it names it alike (module codes, say): never a staff
    id or a village code, which name different people and places in each town."""
    seen: dict[str, set[str]] = {}
    for names in per_town:
        for code, name in names.items():
            seen.setdefault(code, set()).add(name)
    return Names({code: next(iter(found)) for code, found in seen.items() if len(found) == 1})


class CountyNames:
    """Every town's names, by town code; `of(None)` is the county's (a county role's pages)."""

    def __init__(self, county: County) -> None:
        towns = Names({code: town.info.name for code, town in county.towns.items()})
        self._towns = {code: _town_names(town, county, towns) for code, town in county.towns.items()}
        zone = county.info.timezone if county.info else next(iter(county.towns.values())).info.timezone
        each = list(self._towns.values())
        self._county = TownNames(
            zone=ZoneInfo(zone), item=_shared([t.item for t in each]), post=_shared([t.post for t in each]),
            unit=_shared([t.unit for t in each]), town=towns, limits={})

    def of(self, town_code: str | None) -> TownNames:
        return self._towns.get(town_code or "", self._county)

    def towns(self) -> list[TownNames]:
        """Every town's names (the audit page finds a person by name in any of them)."""
        return list(self._towns.values())
