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


def test_a_catalogue_table_without_its_status_or_with_a_stray_key_stops_the_service(tmp_path: Path) -> None:
    import pytest

    from townflow_shared.problems import Catalogue

    for body in ('["probe.no_status"]\ntitle = "t"\n', '["probe.stray"]\nstatus = 409\ntitle = "t"\nwhy = "x"\n',
                 '["probe.no_title"]\nstatus = 409\n'):
        table = tmp_path / "refusals.toml"
        table.write_text(body, encoding="utf-8")
        with pytest.raises(ValueError, match="needs status and title"):
            Catalogue.read("probe", table)


def test_a_name_bound_to_a_code_the_table_lacks_fails_at_import() -> None:
    import pytest

    from townflow_shared.problems import SHARED

    with pytest.raises(KeyError, match=r"declares no code 'request\.no_such_code'"):
        SHARED["request.no_such_code"]
