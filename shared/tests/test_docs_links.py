"""Every relative link in README.md and docs/ leads somewhere: the file or folder exists, and an
anchor (`#…`) names a heading or an `<a id>` of the page it points into. Reads files, nothing more.

Text moves between the README and docs/ (issue #25 split the README by reader), and a link that
was right in one file is wrong in another: this catches it before a reader does."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PAGES = [p for p in PAGES if "node_modules" not in p.parts]


FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
EXPLICIT_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def _prose(markdown: str) -> str:
    """The text with fenced blocks and code spans blanked: a link shown as code is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def links(markdown: str) -> list[str]:
    """The relative targets of the page's inline links and images (web and mail links left out)."""
    return [t for t in LINK.findall(_prose(markdown)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a page offers: its headings' (a repeated one gets -1, -2 …) and its `<a id>`s."""
    found: set[str] = set(EXPLICIT_ID.findall(markdown))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def broken(page: Path, markdown: str) -> list[str]:
    """The page's links that lead nowhere, each with why."""
    wrong = []
    for target in links(markdown):
        path, _, fragment = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            wrong.append(f"{target}: no such file or folder")
        elif fragment and where.suffix == ".md" and fragment not in anchors(where.read_text(encoding="utf-8")):
            wrong.append(f"{target}: no heading or <a id> #{fragment} in {where.name}")
    return wrong


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    assert broken(page, page.read_text(encoding="utf-8")) == []


def test_the_readme_and_docs_are_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in PAGES}
    assert {"README.md", "docs/events.md", "docs/operations.md", "docs/api.md"} <= names


def test_a_missing_file_and_a_missing_anchor_are_caught() -> None:
    page = ROOT / "docs" / "events.md"
    text = ("[gone](no-such-page.md) [bad anchor](operations.md#no-such-heading) "
            "[fine](operations.md#runbook) ![shot](console/board.png) [web](https://example.org/x) "
            "`[as code](nowhere.md)`\n\n```\n[in a block](nowhere.md)\n```\n")
    assert broken(page, text) == ["no-such-page.md: no such file or folder",
                                  "operations.md#no-such-heading: no heading or <a id> #no-such-heading in operations.md"]


def test_anchors_follow_githubs_rules() -> None:
    text = "# `make bench`: throughput\n## Town configuration\n## Town configuration\n<a id=\"x-1\"></a>\n### 重复件 (duplicates)\n"
    assert anchors(text) == {"make-bench-throughput", "town-configuration", "town-configuration-1", "x-1",
                             "重复件-duplicates"}
