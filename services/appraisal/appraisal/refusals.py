"""Appraisal's refusal codes (docs/refusals.md): each refusal the service can give, declared once.
The shared ones (town.*, auth.*, value.*, request.*) are in townflow_shared.problems.

The statuses say whose the fault is. 422: the input is not what the OpenAPI document allows (its
schemas carry the patterns and bounds these checks enforce). 404: a month with nothing to show.
409: a request as the document allows that the town's records refuse (no one to share a pool by,
a unit that is not one of the town's seconded units)."""

from townflow_shared.problems import Catalogue

CODES = Catalogue.of(__package__)
