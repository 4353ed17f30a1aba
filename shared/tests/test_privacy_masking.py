"""Masking personal numbers in free text."""

from __future__ import annotations

import pytest

from townflow_shared.privacy import mask_personal_numbers


@pytest.mark.parametrize(("typed", "masked"), [
    ("联系电话13912341234", "联系电话139****1234"),
    ("电话 139 1234 5678，请回电", "电话 139****5678，请回电"),
    ("+86 139-1234-5678", "139****5678"),
    ("座机0818-7654321", "座机0818-****4321"),
    ("身份证号32100319880808123X", "身份证号321***********123X"),
    ("身份证 321003198808081234。", "身份证 321***********1234。"),
])
def test_numbers_a_clerk_types_are_masked(typed: str, masked: str) -> None:
    assert mask_personal_numbers(typed) == masked


@pytest.mark.parametrize("kept", [
    "青禾村五组12号", "2026年11月23日下午3点", "占道经营约30平方米", "门牌号 1024",
    "统一社会信用代码91510000MA61234567", "编号 123456",
])
def test_ordinary_numbers_are_kept(kept: str) -> None:
    assert mask_personal_numbers(kept) == kept


def test_nothing_is_left_that_looks_like_a_phone_or_id_number() -> None:
    import re
    text = mask_personal_numbers("13912341234 与 13812345678 和 110101199003074518")
    assert not re.search(r"1[3-9][0-9]{9}", text) and not re.search(r"[0-9]{17}[0-9Xx]", text)
