"""The edge's input types say in their JSON schema exactly what they refuse: a string the schema's
pattern allows is accepted, one it does not is refused (the fuzzer holds the services to this)."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from pydantic import BaseModel, ValidationError

from townflow_shared.types import IDENTIFIER_PATTERN, TEXT_PATTERN, Identifier, Text


class Typed(BaseModel):
    identifier: Identifier = "x"
    text: Text = "x"


def accepted(field: str, value: str) -> bool:
    try:
        Typed.model_validate({field: value})
    except ValidationError:
        return False
    return True


def test_the_schemas_carry_the_patterns() -> None:
    properties = Typed.model_json_schema()["properties"]
    assert properties["identifier"]["pattern"] == IDENTIFIER_PATTERN
    assert properties["text"]["pattern"] == TEXT_PATTERN


@pytest.mark.parametrize(("field", "pattern"), [("identifier", IDENTIFIER_PATTERN), ("text", TEXT_PATTERN)])
def test_every_character_in_the_middle_of_a_value_is_accepted_exactly_when_the_pattern_allows_it(
        field: str, pattern: str) -> None:
    """Recomputes the patterns' character classes from this Python's Unicode database."""
    compiled = re.compile(pattern)
    disagree = [f"U+{code:04X}" for code in range(sys.maxunicode + 1)
                if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp", "Zs")
                and (compiled.match(f"a{chr(code)}b") is not None) != accepted(field, f"a{chr(code)}b")]
    assert disagree == []


@pytest.mark.parametrize("value", ["s001", " s001\t", "\n\u2028s 001\u3000", "张三", "\u200bs001", "s\x00", "a\u202eb",
                                   "\x85", ""])
def test_an_identifier_is_refused_exactly_when_its_pattern_says(value: str) -> None:
    assert (re.match(IDENTIFIER_PATTERN, value) is not None) == accepted("identifier", value)


@pytest.mark.parametrize("value", ["line one\nline two\r\n\ttab", "\x00", "a\x0bb", "\ufeffbom", "", "正文"])
def test_text_is_refused_exactly_when_its_pattern_says(value: str) -> None:
    assert (re.match(TEXT_PATTERN, value) is not None) == accepted("text", value)
