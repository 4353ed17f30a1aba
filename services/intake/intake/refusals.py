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

from townflow_shared.problems import Catalogue

CODES = Catalogue("intake")

# --- filing a matter (SPEC §5.2) ----------------------------------------------------------------
ITEM_UNKNOWN = CODES.code(
    "item.unknown", 409, "no such item in the town's catalog",
    "unknown item code {item} in {town}; closest: {suggestions}")
"""params: item (as given), town (its name), suggestions (the closest item codes, best first) and
suggestion_names (their names, in the same order): the console offers them to pick."""
VILLAGE_UNKNOWN = CODES.code(
    "filing.village_unknown", 409, "no such village in the town",
    "unknown village {village} in {town}; known: {villages}")
CHANNEL_FIELD_MISSING = CODES.code(
    "filing.channel_field_missing", 422, "required for this channel",
    "required when the channel is {channel}")
"""field: proxy_agent_id (channel proxy, 代办) or village_record_id (channel village_station, 三转)."""
PROXY_AGENT_UNKNOWN = CODES.code(
    "filing.proxy_agent_unknown", 409, "not a proxy agent of the town",
    "{agent} is not a proxy agent (代办员) of {town}; known: {agents}")
TARGET_MISSING = CODES.code(
    "filing.target_missing", 409, "the enterprise or site is required for this item",
    "required for {task_kind} items: the enterprise's unified social credit code or the site id")
CITIZEN_CONTACT_MISSING = CODES.code(
    "citizen.contact_missing", 422, "give the citizen's phone or id number")
PHONE_MALFORMED = CODES.code(
    "citizen.phone_malformed", 422, "not a phone number",
    "a phone number is 5 to 20 digits, spaces or dashes, optionally after a +")
ID_NUMBER_MALFORMED = CODES.code(
    "citizen.id_number_malformed", 422, "not a resident id number",
    "a resident id number is 17 digits and a digit or X")
IDEMPOTENCY_KEY_REUSED = CODES.code(
    "idempotency.key_reused", 409, "this Idempotency-Key was used with another body",
    "this key was used before with a different request body")
CITIZEN_KEY_UNSET = CODES.code(
    "filing.citizen_ref_key_unset", 503, "filing is not configured",
    "TOWNFLOW_CITIZEN_REF_KEY is not set")

# --- the citizen's ticket and access code (SPEC §6.1) -------------------------------------------
TICKET_NOT_FOUND = CODES.code(
    "ticket.not_found", 404, "no such ticket, or the access code does not match")
"""One answer for both, so a guess learns nothing of which ticket numbers exist."""
ACCESS_CODE_MALFORMED = CODES.code(
    "ticket.code_malformed", 422, "not an access code",
    "an access code is the 6 letters and digits printed on the receipt")
TOO_MANY_WRONG_CODES = CODES.code(
    "ticket.too_many_wrong_codes", 429, "too many wrong access codes for this ticket",
    "too many wrong access codes for this ticket; try again in {retry_after} seconds")

# --- the citizen's rating -----------------------------------------------------------------------
ALREADY_RATED = CODES.code("rating.already_given", 409, "this matter has already been rated")
NOT_YET_COMPLETED = CODES.code(
    "rating.not_completed", 409, "a matter can be rated only after it is completed",
    "a matter can be rated only after it is completed; it is {status}")

# --- 重复件: merge and unmerge (SPEC §10) -------------------------------------------------------
MATTER_NOT_FOUND = CODES.code("merge.ticket_not_found", 404, "no such ticket", "no matter {ticket}")
INTO_UNKNOWN = CODES.code("merge.into_unknown", 409, "no such matter to merge into",
                          "no matter with ticket number {ticket}")
INTO_ITSELF = CODES.code("merge.into_itself", 409, "a matter cannot be merged into itself")
OTHER_TOWN = CODES.code(
    "merge.other_town", 409, "a matter merges only within its town",
    "{ticket} is another town's matter; a matter merges only within its town")
ALREADY_MERGED = CODES.code(
    "merge.already_merged", 409, "this matter is already merged",
    "{ticket} is already merged into {primary}")
HAS_MERGED_MATTERS = CODES.code(
    "merge.has_merged_matters", 409, "other matters are merged into this one",
    "{count} matter(s) are merged into {ticket}; unmerge them first")
NOT_OPEN = CODES.code(
    "merge.not_open", 409, "only an open matter is merged",
    "{ticket} is {status}; only an open matter is merged")
PRIMARY_MERGED = CODES.code(
    "merge.primary_merged", 409, "the primary is itself merged",
    "{ticket} is itself merged into {primary}; merge into that one")
PRIMARY_NOT_OPEN = CODES.code(
    "merge.primary_closed", 409, "a merge needs a primary still open",
    "{ticket} is {status}; a merge needs a primary still open")
NOT_MERGED = CODES.code("unmerge.not_merged", 409, "this matter is not merged")
MERGE_STANDS = CODES.code(
    "unmerge.primary_closed", 409, "the primary is closed; the merge stands",
    "the primary {primary} is closed; the merge stands")

# --- the matter in front of the handler (issue #27) ----------------------------------------------
MATTER_UNKNOWN = CODES.code("matter.not_found", 404, "no such matter",
                            "no matter of this task in your town (a task just dispatched: try again shortly)")
"""One answer for a task intake has not seen dispatched and for another town's matter (SPEC §8)."""
