"""Every refusal dispatch gives, declared once (docs/refusals.md is generated from these; the
console shows each code in Chinese with its params)."""

from townflow_shared.problems import Catalogue

CODES = Catalogue.of(__package__)
