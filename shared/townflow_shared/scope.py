"""Which towns a call is about (SPEC §8), decided here once for every service and the event side.

| case                                   | a read (list or record)          | a new record / an action          |
| -------------------------------------- | -------------------------------- | --------------------------------- |
| own town (named or not)                | that town                        | that town                         |
| another served town, a town's staff    | 404 `town.not_found` (a record:  | 403 `town.not_yours`              |
|                                        | the record's own not-found code) |                                   |
| county role, no town named             | every town                       | one-town deployment: its town;    |
|                                        |                                  | a county: 422 `town.required`     |
| county role, a served town named       | that town                        | that town (county_admin; the      |
|                                        |                                  | reader is refused by its role)    |
| a town the deployment does not serve   | 404 `town.not_served`            | 404 `town.not_served`             |
| (named, or a token's)                  |                                  |                                   |
| a stored record of a town no longer    | the record's own not-found code  | the record's own not-found code   |
| served                                 |                                  |                                   |
| an event for a town not served         | poison: dead-lettered            |                                   |
"""

from __future__ import annotations

from .auth import Principal
from .county import County
from .dlq import Rejected
from .problems import TOWN_NOT_FOUND, TOWN_NOT_SERVED, TOWN_NOT_YOURS, TOWN_REQUIRED, Code
from .town import Town


def _served(county: County, code: str, field: str | None) -> Town:
    town = county.town(code)
    if town is None:
        raise TOWN_NOT_SERVED(field, town=code)
    return town


def towns_to_read(county: County, principal: Principal, named: str | None, field: str = "town") -> list[Town]:
    """The towns a list or a figure covers: the caller's own; for the county roles every town,
    or the one `named`."""
    if named is not None:
        town = _served(county, named, field)
        if not principal.may_read(town.code):
            raise TOWN_NOT_FOUND(field)  # another town's list is as absent as its records
        return [town]
    if principal.county_wide:
        return list(county.towns.values())
    return [_callers_town(county, principal)]


def town_of_new_record(county: County, principal: Principal, named: str | None,
                       field: str = "town_code") -> Town:
    """The town a new record (a filing, an inspection, a plan, an off-post entry) belongs to:
    the caller's own; a county role names it unless the deployment serves one town."""
    if named is not None:
        town = _served(county, named, field)
        if not principal.may_act(town.code):
            raise TOWN_NOT_YOURS(field, town=town.code, yours=principal.town or "no town")
        return town
    if principal.town is not None:
        return _callers_town(county, principal)
    only = county.only_town
    if only is None:
        raise TOWN_REQUIRED(field, towns=sorted(county.towns))
    return only


def town_of_record(county: County, principal: Principal | None, code: str, *, acting: bool,
                   not_found: Code) -> Town:
    """The town of a stored record the caller reads (`acting=False`) or acts on: another town's
    record is not found when read (`not_found`, the record's own code, so it cannot be told from
    one that does not exist) and refused when acted on; a town no longer served is not found.
    `principal` None: a caller who proved a citizen's access code, of this record only."""
    town = county.town(code)
    if town is None:
        raise not_found()
    if principal is None:
        return town
    if acting:
        if not principal.may_act(code):
            raise TOWN_NOT_YOURS(town=code, yours=principal.town or "no town")
    elif not principal.may_read(code):
        raise not_found()
    return town


def town_of_event(county: County, code: str) -> Town:
    """The town an event belongs to; one this deployment does not serve is poison (SPEC §8)."""
    town = county.town(code)
    if town is None:
        raise Rejected(f"town {code} is not served by this deployment")
    return town


def _callers_town(county: County, principal: Principal) -> Town:
    code = principal.town
    if code is None:  # a county role without a town claim
        raise TOWN_REQUIRED("town")
    town = county.town(code)
    if town is None:  # a token for a town this deployment does not serve (yet, or any more)
        raise TOWN_NOT_SERVED(None, town=code)
    return town
