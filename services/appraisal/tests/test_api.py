"""The routes as adapters, in-process (no server, no database): the fake unit of work behind
them, a token signed here. What the edge refuses before any handler runs, and the shape of a
refusal."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from appraisal.app import create_app
from appraisal.settings import AppraisalSettings
from townflow_shared.auth import issue_token
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_TOWN_DIR

from .fakes import FakeUnits, deps, totals_row

SECRET = "unit-tests-only-secret-of-32-bytes!!"
QINGHE = "321003104"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(AppraisalSettings(jwt_secret=SecretStr(SECRET)))
    units = FakeUnits()
    units.kept.totals.append(totals_row(QINGHE, "2028-08", "staff", "s001", 12.0, dispatched=1, responded=1))
    app.state.deps = deps(load_county(DEMO_TOWN_DIR), units)
    return TestClient(app)  # no lifespan: nothing is started


def office() -> dict[str, str]:
    return {"authorization": f"Bearer {issue_token(SECRET, 'a001', ['appraisal_admin'], town=QINGHE)}"}


@pytest.mark.parametrize(("params", "field", "code"), [
    ({"pool": "1E+999999"}, "pool", "value.too_many_digits"),
    ({"pool": "12.345"}, "pool", "value.too_many_digits"),
    ({"pool": "NaN"}, "pool", "value.not_finite"),
    ({"pool": "-1"}, "pool", "value.too_small"),
    ({"pool": "1e3"}, "pool", "value.malformed"),  # a number, but not as the document writes a pool
    ({"pool": "+5"}, "pool", "value.malformed"),
    ({"pool": ""}, "pool", "value.not_number"),
    ({"pool": "1", "period": "9999-01"}, "period", "period.out_of_range"),
    ({"pool": "1", "period": "1999-12"}, "period", "period.out_of_range"),
    ({"pool": "1", "period": "2028-13"}, "period", "period.malformed"),
])
def test_the_bonus_refuses_what_it_cannot_split(client: TestClient, params: dict[str, str], field: str,
                                                code: str) -> None:
    r = client.get("/v1/bonus", params=params, headers=office())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert (r.json()["code"], r.json()["field"]) == (code, field)


def test_a_bonus_is_split_to_the_cent(client: TestClient) -> None:
    r = client.get("/v1/bonus", params={"pool": "100.01", "period": "2028-08"}, headers=office())
    assert r.status_code == 200, r.text
    assert r.json()["total"] == "100.01" and r.json()["shares"][0] == {
        "staff_id": "s001", "module": r.json()["shares"][0]["module"], "post_coefficient": 1.4, "points": 12.0,
        "weight": 16.8, "share": "100.01"}


def test_a_ledgers_period_is_checked_in_its_path(client: TestClient) -> None:
    r = client.get("/v1/scores/staff/s001/2101-01/ledger", headers=office())
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (422, "period.out_of_range", "period")


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"unit": "land", "period": "2028-08", "score": "90"}, "score", "value.not_number"),
    ({"unit": "land", "period": "2028-08", "score": True}, "score", "value.not_number"),
    ({"unit": "land", "period": "2028-08", "score": 101}, "score", "value.too_large"),
    ({"unit": "la\u200bnd", "period": "2028-08", "score": 90}, "unit", "value.invisible_character"),
    ({"unit": "land", "period": "2028-08", "score": 90, "extra": 1}, "extra", "value.unexpected"),
])
def test_a_department_score_takes_strict_input(client: TestClient, body: dict[str, object], field: str,
                                               code: str) -> None:
    r = client.post("/v1/seconded-scores", json=body, headers=office())
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == (code, field)


def test_a_unit_not_seconded_is_a_problem_document_naming_it(client: TestClient) -> None:
    r = client.post("/v1/seconded-scores", json={"unit": "social", "period": "2028-08", "score": 90},
                    headers=office())
    assert r.status_code == 409  # as the document allows: the town's modules refuse it
    assert r.json() | {"detail": ""} == {
        "type": "urn:townflow:problem:score.unit_not_seconded", "title": "not a seconded unit of this town",
        "status": 409, "detail": "", "code": "score.unit_not_seconded", "field": "unit",
        "params": {"unit": "social"}}


def test_an_unknown_town_is_not_served(client: TestClient) -> None:
    r = client.get("/v1/rankings", params={"town": "321003999"}, headers=office())
    assert (r.status_code, r.json()["code"]) == (404, "town.not_served")


@pytest.mark.parametrize(("rules", "field", "code"), [
    ({"weights": {"speed": 1}}, "rules.weights.speed", "value.unexpected"),
    ({"weights": {"response": "0.6"}}, "rules.weights.response", "value.not_number"),
    ({"weights": {"response": 1.5}}, "rules.weights.response", "value.too_large"),
    ({"points": {"completed": 1e300}}, "rules.points.completed", "value.too_large"),
    ({"alerts": {"talk_overdue": True}}, "rules.alerts.talk_overdue", "value.not_integer"),
    ({"appraisal": {"weights": {}}}, "rules.appraisal", "value.unexpected"),
    ({"rankings_size": 0}, "rules.rankings_size", "value.too_small"),
    ({"rankings_size": 2.5}, "rules.rankings_size", "value.not_integer"),
])
def test_a_what_if_takes_only_the_rules_it_can_lay_over(client: TestClient, rules: dict[str, object], field: str,
                                                        code: str) -> None:
    r = client.post("/v1/what-if", json={"period": "2028-08", "rules": rules}, headers=office())
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == (code, field)


def test_a_what_if_lays_only_the_rules_named_over_the_towns() -> None:
    from appraisal.models import RulesChange

    named = RulesChange.model_validate({"weights": {"response": 0.6}, "points": {"colour_factor": {"red": 2}},
                                        "alerts": {"talk_satisfaction_below": None}})
    assert named.changes() == {"weights": {"response": 0.6}, "points": {"colour_factor": {"red": 2.0}},
                               "alerts": {}}
    assert RulesChange.model_validate({"rankings_size": 3.0}).changes() == {"rankings_size": 3}  # JSON's 3.0 is 3


def test_the_document_states_the_bounds_the_server_enforces(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    (size, _) = schemas["RulesChange"]["properties"]["rankings_size"]["anyOf"]
    assert (size["minimum"], size["maximum"]) == (1, 100) and "ge" not in size
    (pool,) = [p["schema"] for p in client.get("/openapi.json").json()["paths"]["/v1/bonus"]["get"]["parameters"]
                 if p["name"] == "pool"]
    assert pool["pattern"] == "^[0-9]{1,10}(\\.[0-9]{1,2})?$"
