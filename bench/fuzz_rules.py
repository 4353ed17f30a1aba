"""Rules between fields that no JSON schema can state, taught to the fuzzer (a schemathesis hook
file, loaded by bench/fuzz.py through SCHEMATHESIS_HOOKS).

A positive case (one the document allows) that breaks such a rule is not generated, rather than
the `positive_data_acceptance` check being told to let a 422 pass on the operation: so a 422 for
any other reason on these operations is still a finding. Negative cases are left as drawn. Each
rule is the service's own, named where it lives; a rule the document CAN state is stated there
(dispatch's Redispatch and Callback say theirs with `anyOf`), never here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any

import schemathesis
from pydantic import AwareDatetime, TypeAdapter, ValidationError

_MOMENT = TypeAdapter(AwareDatetime)  # read as the services read an instant


def _instant(value: Any) -> datetime | None:
    try:
        return _MOMENT.validate_python(value) if isinstance(value, str) else None
    except ValidationError:
        return None


def _off_post_ends_after_it_starts(body: dict[str, Any]) -> bool:
    """dispatch's OffPost: `to` after `from` (`off_post.ends_before_start`)."""
    start, end = _instant(body.get("from")), _instant(body.get("to"))
    return start is None or end is None or end > start


def _plan_draws_no_more_than_its_targets(body: dict[str, Any]) -> bool:
    """enforcement's draw_plan: `sample_size` at most the distinct targets, as the model reads
    them (trimmed, NFC) (`plan.sample_too_large`)."""
    targets, sample_size = body.get("targets"), body.get("sample_size")
    if not isinstance(targets, list) or not isinstance(sample_size, (int, float)) or isinstance(sample_size, bool):
        return True
    distinct = {unicodedata.normalize("NFC", t.strip()) for t in targets if isinstance(t, str)}
    return sample_size <= len(distinct)


RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "POST /v1/staff/{staff_id}/off-post": _off_post_ends_after_it_starts,
    "POST /v1/random-plans": _plan_draws_no_more_than_its_targets,
}


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    rule = RULES.get(case.operation.label)
    if rule is None or case.meta is None or not case.meta.generation.mode.is_positive:
        return True
    return not isinstance(case.body, dict) or rule(case.body)
