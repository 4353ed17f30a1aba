"""Every refusal intake gives, declared once (RFC 9457 problem documents, `docs/refusals.md`).

`field` names the input at fault where there is one (`item_code`, `citizen.phone`, `into`,
`ticket_no`, `code`); `params` carry what the console's Chinese needs. The towns' own refusals
(`town.not_served`, `town.not_yours`, `town.required`, `town.not_found`) are the shared ones.

The statuses say whose the fault is. 422: the input is not what the OpenAPI document allows
(its schemas carry every pattern, bound and "required when" these checks enforce, so a client
can tell before it calls). 404: the matter the path names is not there. 409: a request as the
document allows that the town's records refuse: a body naming what the town does not have (an
item, a village, a proxy agent, a matter to merge into), an item that needs a target, a key used
with another body, matters that cannot merge. A point the town's map refuses (outside the town, in
another village than the one given, on an item that takes none) is a 422 too: the point or the
village is the input at fault, as the filing form marks it.
"""

from townflow_shared.problems import Catalogue

CODES = Catalogue.of(__package__)
