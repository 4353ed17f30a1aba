"""The refusal codes: one catalogue per service, every code documented in docs/refusals.md."""

from __future__ import annotations

from pathlib import Path

from townflow_shared.problems import catalogues, markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "refusals.md"


def test_every_service_declares_its_codes() -> None:
    services = {c.service for c in catalogues()}
    assert services == {"shared", "intake", "dispatch", "enforcement", "appraisal"}
    assert all(c.codes for c in catalogues())


def test_docs_list_every_code_as_generated() -> None:
    # Regenerate with `python -m townflow_shared.problems` when a code is added or reworded.
    assert DOC.read_text(encoding="utf-8") == markdown(catalogues())


def test_every_code_is_a_refusal_status() -> None:
    for catalogue in catalogues():
        for code in catalogue.codes.values():
            assert 400 <= code.status < 600, code.name
            assert code.title and code.detail, code.name
