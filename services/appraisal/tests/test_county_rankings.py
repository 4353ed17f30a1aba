"""The county's ranking of its towns (SPEC §8), checked against figures computed by hand."""

from __future__ import annotations

import pytest

from appraisal import rules
from townflow_shared.town import AppraisalRules

R = AppraisalRules()  # response 0.30, resolution 0.35, satisfaction 0.35


def town(code: str, **counts: int) -> rules.TownFigures:
    return rules.town_figures(code, f"town {code}", rules.Counts(**counts), R)


def test_towns_rank_by_the_composite_of_their_matters_and_by_each_rate() -> None:
    towns = [
        # 4 matters, all answered in time, 2 resolved in time, 2 of 3 ratings satisfied:
        # 100 × (0.30 × 1 + 0.35 × 0.5 + 0.35 × 2/3) = 70.8333
        town("A", dispatched=4, responded=4, resolved=2, rated=3, satisfied=2),
        # 2 matters, all answered and resolved in time, 1 of 2 satisfied: 100 × (0.30 + 0.35 + 0.175) = 82.5
        town("B", dispatched=2, responded=2, resolved=2, rated=2, satisfied=1),
        # 1 matter, late, unrated: satisfaction drops out, 100 × 0 / 0.65 = 0
        town("C", dispatched=1),
        town("D"),  # nothing this month: no figure, unranked
    ]
    result = rules.county_rankings(towns)
    rows = {r["town_code"]: r for r in result["towns"]}  # type: ignore[attr-defined]
    assert rows["A"]["composite"] == pytest.approx(70.8333)
    assert rows["B"]["composite"] == 82.5
    assert rows["C"]["composite"] == 0.0
    assert rows["D"]["composite"] is None
    assert rows["A"]["rates"] == {"response": 1.0, "resolution": 0.5, "satisfaction": pytest.approx(2 / 3)}
    assert rows["C"]["rates"] == {"response": 0.0, "resolution": 0.0, "satisfaction": None}
    assert rows["A"]["ranks"] == {"composite": 2, "response": 1, "resolution": 2, "satisfaction": 1}
    assert rows["B"]["ranks"] == {"composite": 1, "response": 1, "resolution": 1, "satisfaction": 2}
    assert rows["C"]["ranks"] == {"composite": 3, "response": 3, "resolution": 3, "satisfaction": None}
    assert rows["D"]["ranks"] == dict.fromkeys(("composite", "response", "resolution", "satisfaction"))
    assert result["rankings"] == {"composite": ["B", "A", "C"], "response": ["A", "B", "C"],
                                  "resolution": ["B", "A", "C"], "satisfaction": ["A", "B"]}
    assert [r["town_code"] for r in result["towns"]] == ["A", "B", "C", "D"]  # type: ignore[attr-defined]


def test_a_town_ranks_by_its_own_weights() -> None:
    satisfaction_only = R.model_copy(update={"weights": R.weights.model_copy(
        update={"response": 0.0, "resolution": 0.0, "satisfaction": 1.0})})
    t = rules.town_figures("A", "A", rules.Counts(dispatched=2, responded=2, resolved=2, rated=4, satisfied=3),
                           satisfaction_only)
    assert t.composite == 75.0
