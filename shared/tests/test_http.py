"""Where a NUL character hides in a JSON body, as FastAPI's `loc`."""

from __future__ import annotations

import json

from townflow_shared.http import _nul_in_json


def test_a_nul_in_a_nested_string_is_found_by_its_path() -> None:
    body = json.dumps({"citizen": {"name": "张\x00三"}, "channel": "window"}).encode()
    assert _nul_in_json(body) == ["citizen", "name"]


def test_a_nul_in_a_list_item_is_found_by_its_index() -> None:
    body = json.dumps({"findings": [{"outcome": "compliant"}, {"outcome": "x\x00"}]}).encode()
    assert _nul_in_json(body) == ["findings", 1, "outcome"]


def test_an_escaped_backslash_u0000_typed_as_text_is_not_a_nul() -> None:
    assert _nul_in_json(json.dumps({"description": "\\u0000"}).encode()) is None


def test_broken_json_is_left_to_fastapi() -> None:
    assert _nul_in_json(b'{"a": "\\u0000"') is None
