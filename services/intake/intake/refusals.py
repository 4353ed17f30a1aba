"""Every refusal intake gives, declared once (RFC 9457 problem documents, `docs/refusals.md`).

`field` names the input at fault where there is one (`item_code`, `citizen.phone`, `into`,
`ticket_no`, `code`); `params` carry what the console's Chinese needs. The towns' own refusals
(`town.not_served`, `town.not_yours`, `town.required`, `town.not_found`) are the shared ones.

The statuses say whose the fault is. 422: the input is not what the OpenAPI document allows
(its schemas carry every pattern, bound and "required when" these checks enforce, so a client
can tell before it calls). 404: the matter the path names is not there. 409: a request as the
document allows that the town's records refuse: a body naming what the town does not have (an
item, a village, a proxy agent, a matter to merge into), an item that needs a target, a key used
with another body, matters that cannot merge.
"""

from __future__ import annotations

from pathlib import Path

from townflow_shared.problems import Catalogue

CODES = Catalogue.read("intake", Path(__file__).with_name("refusals.toml"))

ITEM_UNKNOWN = CODES["item.unknown"]
"""params: item (as given), town (its name), suggestions (the closest item codes, best first) and
suggestion_names (their names, in the same order): the console offers them to pick."""
VILLAGE_UNKNOWN = CODES["filing.village_unknown"]
CHANNEL_FIELD_MISSING = CODES["filing.channel_field_missing"]
"""field: proxy_agent_id (channel proxy, 代办) or village_record_id (channel village_station, 三转)."""
PROXY_AGENT_UNKNOWN = CODES["filing.proxy_agent_unknown"]
TARGET_MISSING = CODES["filing.target_missing"]
CITIZEN_CONTACT_MISSING = CODES["citizen.contact_missing"]
PHONE_MALFORMED = CODES["citizen.phone_malformed"]
ID_NUMBER_MALFORMED = CODES["citizen.id_number_malformed"]
IDEMPOTENCY_KEY_REUSED = CODES["idempotency.key_reused"]
CITIZEN_KEY_UNSET = CODES["filing.citizen_ref_key_unset"]

TICKET_NOT_FOUND = CODES["ticket.not_found"]
"""One answer for both, so a guess learns nothing of which ticket numbers exist."""
ACCESS_CODE_MALFORMED = CODES["ticket.code_malformed"]
TOO_MANY_WRONG_CODES = CODES["ticket.too_many_wrong_codes"]

ALREADY_RATED = CODES["rating.already_given"]
NOT_YET_COMPLETED = CODES["rating.not_completed"]

MATTER_NOT_FOUND = CODES["merge.ticket_not_found"]
INTO_UNKNOWN = CODES["merge.into_unknown"]
INTO_ITSELF = CODES["merge.into_itself"]
OTHER_TOWN = CODES["merge.other_town"]
ALREADY_MERGED = CODES["merge.already_merged"]
HAS_MERGED_MATTERS = CODES["merge.has_merged_matters"]
NOT_OPEN = CODES["merge.not_open"]
PRIMARY_MERGED = CODES["merge.primary_merged"]
PRIMARY_NOT_OPEN = CODES["merge.primary_closed"]
NOT_MERGED = CODES["unmerge.not_merged"]
MERGE_STANDS = CODES["unmerge.primary_closed"]

MATTER_UNKNOWN = CODES["matter.not_found"]
"""One answer for a task intake has not seen dispatched and for another town's matter (SPEC §8)."""
