"""Every refusal notify can give, declared once (see townflow_shared.problems): none of its own
yet; its one route gives the shared codes (`town.*`, `auth.*`, `value.*`, `request.*`)."""

from townflow_shared.problems import Catalogue

CODES = Catalogue.of(__package__)
