"""Every refusal enforcement can give, declared once (see townflow_shared.problems).

The console shows each code in Chinese with its `params`; `detail` is English for logs and
integrators. The shared codes (`town.*`, `auth.*`, `value.*`, `request.*`) come on top.
"""

from townflow_shared.problems import Catalogue

CODES = Catalogue.of(__package__)
