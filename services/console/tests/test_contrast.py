"""The stylesheet's colours against WCAG 2.1 AA, without a browser: text 4.5:1 on its background,
the charts' marks 3:1 on white. The browser tests run axe-core on every page too, but axe skips
text of one character (the colour badges' 红/橙/黄), so the badges are checked here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[1] / "console" / "static" / "console.css").read_text(encoding="utf-8")
VARIABLES = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-fA-F]{6})", CSS))
WHITE, PAGE = "#ffffff", "#f5f7fa"  # panels and tables are white; the page behind them #f5f7fa
PANELS = {"ok": "#e7f6ec", "warn": "#fff6e0", "error": "#fdecea"}


def luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def colour_of(value: str) -> str:
    """A colour as the stylesheet gives it: `#rrggbb`, `#rgb` or `var(--name)`."""
    named = re.fullmatch(r"var\(--([a-z]+)\)", value.strip())
    colour = VARIABLES[named.group(1)] if named else value.strip()
    return "#" + "".join(c * 2 for c in colour[1:]) if len(colour) == 4 else colour  # #fff: #ffffff


def rule(selector: str) -> dict[str, str]:
    """The declarations of the one rule for `selector` (a class selector)."""
    match = re.search(rf"(?:^|[\s}}]){re.escape(selector)}\s*\{{([^}}]*)\}}", CSS)
    assert match, selector
    return {k.strip(): v.strip() for k, v in (d.split(":", 1) for d in match.group(1).split(";") if ":" in d)}


def test_the_arithmetic_agrees_with_the_issue() -> None:
    assert round(contrast(WHITE, "#e0861a"), 2) == 2.77  # the orange badge before: issue #27
    assert round(contrast(WHITE, "#000000"), 1) == 21.0


@pytest.mark.parametrize("badge", ["c-red", "c-orange", "c-yellow"])
def test_each_colour_badge_reads_at_4_5_to_1(badge: str) -> None:
    declared = rule(f".{badge}")
    text = colour_of(declared.get("color", rule(".colour")["color"]))
    assert contrast(text, colour_of(declared["background"])) >= 4.5, badge


@pytest.mark.parametrize("background", [WHITE, PAGE, *PANELS.values()])
def test_grey_hints_read_at_4_5_to_1_on_every_panel(background: str) -> None:
    assert contrast(VARIABLES["muted"], background) >= 4.5, background


@pytest.mark.parametrize("mark", ["s-dispatched", "s-accepted", "s-rework", "s-completed", "s-returned",
                                  "s-closed", "r-response", "r-resolution", "r-satisfaction"])
def test_chart_marks_stand_out_at_3_to_1_on_white(mark: str) -> None:
    assert contrast(colour_of(rule(f".{mark}")["fill"]), WHITE) >= 3, mark
