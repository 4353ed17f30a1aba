"""Appraisal's command handlers with the fake unit of work and a fixed clock: no I/O. Each test
makes the rows it reads."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from appraisal import flows, refusals
from townflow_shared import problems
from townflow_shared.auth import Principal
from townflow_shared.county import load_county
from townflow_shared.problems import Refusal
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR

from .fakes import FakeUnits, deps, totals_row

TOWN = load_county(DEMO_TOWN_DIR)  # one town: 321003104
COUNTY = load_county(DEMO_COUNTY_DIR)  # 321003107, 321003104, 321003112
QINGHE, BAILU = "321003104", "321003107"
PERIOD = "2028-08"  # the fixed clock's month in the towns' time zone
OFFICE = Principal(sub="a001", roles=frozenset({"appraisal_admin"}), town=QINGHE)
LEADER = Principal(sub="m001", roles=frozenset({"module_leader"}), town=QINGHE)
READER = Principal(sub="c001", roles=frozenset({"county_reader"}))
COUNTY_ADMIN = Principal(sub="c000", roles=frozenset({"county_admin"}))


def refused(info: pytest.ExceptionInfo[Refusal]) -> tuple[str, str | None]:
    return info.value.code.name, info.value.field


def staff_month(units: FakeUnits, town: str = QINGHE, period: str = PERIOD) -> None:
    """Two staff with points (s001 ahead), a module and a seconded unit with figures."""
    units.kept.totals += [
        totals_row(town, period, "staff", "s001", 12.0, dispatched=4, responded=4, resolved=3, completed=3),
        totals_row(town, period, "staff", "s002", 3.0, dispatched=2, responded=1, resolved=1, completed=1),
        totals_row(town, period, "module", "social", 15.0, dispatched=6, responded=5, resolved=4, completed=4),
        totals_row(town, period, "seconded_unit", "land", 0.0, dispatched=1, responded=1, resolved=1, completed=1),
    ]


async def test_scores_default_to_the_clocks_month_and_give_a_seconded_unit_its_final() -> None:
    units = FakeUnits()
    staff_month(units)
    units.kept.scores[(QINGHE, "land", PERIOD)] = {"score": 90.0}
    rows = await flows.scores(deps(TOWN, units), LEADER, flows.ScoresOf())
    by = {(r["subject_type"], r["subject_id"]): r for r in rows}
    assert set(by) == {("staff", "s001"), ("staff", "s002"), ("module", "social"), ("seconded_unit", "land")}
    assert all(r["period"] == PERIOD and r["town_code"] == QINGHE for r in rows)
    land = by[("seconded_unit", "land")]
    assert land["composite"] == 100 and land["department_score"] == 90.0
    assert land["final"] == pytest.approx(0.6 * 100 + 0.4 * 90)
    assert "final" not in by[("staff", "s001")]
    assert units.opened == [True]  # one read-only snapshot


async def test_scores_filter_by_subject() -> None:
    units = FakeUnits()
    staff_month(units)
    rows = await flows.scores(deps(TOWN, units), LEADER, flows.ScoresOf(subject_type="staff", subject_id="s002"))
    assert [(r["subject_type"], r["subject_id"]) for r in rows] == [("staff", "s002")]


async def test_the_month_follows_the_towns_time_zone_not_utc() -> None:
    units = FakeUnits()
    staff_month(units, period="2028-09")
    from .fakes import fixed_clock
    clock = fixed_clock(datetime(2028, 8, 31, 16, 30, tzinfo=UTC))  # 00:30 on 1 September in the town
    rates = await flows.rates(deps(TOWN, units, clock), LEADER, flows.RatesOf(group_by="staff"))
    assert {r["period"] for r in rates} == {"2028-09"} and len(rates) == 2


async def test_a_towns_staff_read_only_their_town() -> None:
    units = FakeUnits()
    staff_month(units, BAILU)
    with pytest.raises(Refusal) as info:
        await flows.rankings(deps(COUNTY, units), LEADER, flows.MonthOf(town=BAILU))
    assert refused(info) == ("town.not_found", "town")
    assert units.opened == []  # refused before anything was read


async def test_county_roles_name_the_town_in_a_county_and_an_unknown_one_is_not_served() -> None:
    units = FakeUnits()
    staff_month(units, BAILU)
    with pytest.raises(Refusal) as info:
        await flows.scores(deps(COUNTY, units), READER, flows.ScoresOf())
    assert refused(info) == ("town.required", "town")
    with pytest.raises(Refusal) as info:
        await flows.scores(deps(COUNTY, units), READER, flows.ScoresOf(town="321003999"))
    assert refused(info) == ("town.not_served", "town")
    rows = await flows.scores(deps(COUNTY, units), READER, flows.ScoresOf(town=BAILU))
    assert {r["town_code"] for r in rows} == {BAILU}


async def test_a_one_town_deployment_gives_county_roles_its_town() -> None:
    units = FakeUnits()
    staff_month(units)
    ranking = await flows.rankings(deps(TOWN, units), READER, flows.MonthOf())
    assert ranking["town_code"] == QINGHE and ranking["staff"]["red"][0]["subject_id"] == "s001"


async def test_the_bonus_is_split_exactly_by_coefficient_and_points() -> None:
    units = FakeUnits()
    staff_month(units)
    split = await flows.bonus(deps(TOWN, units), OFFICE, flows.BonusOf(period=PERIOD, pool=Decimal("9999999999.99")))
    shares = {s["staff_id"]: Decimal(s["share"]) for s in split["shares"]}
    assert sum(shares.values()) == Decimal("9999999999.99") == Decimal(split["total"])
    s001, s002 = (TOWN.towns[QINGHE].staff[s].post_coefficient for s in ("s001", "s002"))
    assert abs(shares["s001"] / shares["s002"] - Decimal(s001 * 12) / Decimal(s002 * 3)) < Decimal("1e-9")
    assert {v for k, v in shares.items() if k not in ("s001", "s002")} == {Decimal(0)}


async def test_a_bonus_of_a_month_without_points_is_refused_naming_the_pool() -> None:
    units = FakeUnits()
    with pytest.raises(Refusal) as info:
        await flows.bonus(deps(TOWN, units), OFFICE, flows.BonusOf(period="2028-07", pool=Decimal("100.00")))
    assert refused(info) == ("bonus.no_weights", "pool")
    assert info.value.params == {"period": "2028-07"}


async def test_the_county_rankings_are_for_the_county_roles() -> None:
    units = FakeUnits()
    staff_month(units, BAILU)
    with pytest.raises(Refusal) as info:
        await flows.county_rankings(deps(COUNTY, units), OFFICE, flows.MonthOf())
    assert refused(info) == ("ranking.county_only", None)
    result = await flows.county_rankings(deps(COUNTY, units), READER, flows.MonthOf())
    assert result["period"] == PERIOD and result["rankings"]["response"][0] == BAILU


async def test_posting_a_department_score_writes_it_with_the_clock_and_the_poster() -> None:
    units = FakeUnits()
    staff_month(units)
    posted = await flows.post_seconded_score(deps(TOWN, units), OFFICE,
                                             flows.PostSecondedScore("land", PERIOD, 90.0))
    assert posted == {"town_code": QINGHE, "unit": "land", "period": PERIOD, "town_score": 100.0,
                      "department_score": 90.0, "final": pytest.approx(96.0)}
    assert units.kept.scores[(QINGHE, "land", PERIOD)] == {
        "score": 90.0, "posted_by": "a001", "posted_at": datetime(2028, 8, 15, 2, 0, tzinfo=UTC)}
    assert units.committed == 1 and units.published == []


async def test_a_unit_not_seconded_is_refused_and_nothing_is_written() -> None:
    units = FakeUnits()
    with pytest.raises(Refusal) as info:
        await flows.post_seconded_score(deps(TOWN, units), OFFICE, flows.PostSecondedScore("social", PERIOD, 90.0))
    assert refused(info) == ("score.unit_not_seconded", "unit")
    assert info.value.params == {"unit": "social"}
    assert units.kept.scores == {} and units.committed == 0


async def test_another_towns_unit_is_not_yours_and_a_county_admin_names_the_town() -> None:
    units = FakeUnits()
    with pytest.raises(Refusal) as info:
        await flows.post_seconded_score(deps(COUNTY, units), OFFICE,
                                        flows.PostSecondedScore("land", PERIOD, 90.0, town=BAILU))
    assert refused(info) == ("town.not_yours", "town")
    with pytest.raises(Refusal) as info:
        await flows.post_seconded_score(deps(COUNTY, units), COUNTY_ADMIN,
                                        flows.PostSecondedScore("land", PERIOD, 90.0))
    assert refused(info) == ("town.required", "town")
    assert units.kept.scores == {}


async def test_what_if_names_each_wrong_rule_by_its_field() -> None:
    units = FakeUnits()
    with pytest.raises(Refusal) as info:
        await flows.what_if(deps(TOWN, units), OFFICE, flows.WhatIfOf(PERIOD, {"weights": {"speed": 1}}))
    assert refused(info) == ("whatif.rule_invalid", "rules.weights.speed")
    assert info.value.status == 422 and units.opened == []
    many = {"weights": {"speed": 1, "pace": 2}}
    with pytest.raises(Refusal) as info:
        await flows.what_if(deps(TOWN, units), OFFICE, flows.WhatIfOf(PERIOD, many))
    assert info.value.code is problems.INVALID
    assert {(e.field, e.code) for e in info.value.errors} == {("rules.weights.speed", "whatif.rule_invalid"),
                                                              ("rules.weights.pace", "whatif.rule_invalid")}


async def test_what_if_reads_the_month_and_compares_it() -> None:
    units = FakeUnits()
    staff_month(units)
    result = await flows.what_if(deps(TOWN, units), OFFICE, flows.WhatIfOf(PERIOD, {}))
    assert result["town_code"] == QINGHE and result["period"] == PERIOD
    staff = [s for s in result["subjects"] if s["subject_type"] == "staff"]
    assert {s["subject_id"] for s in staff} == {"s001", "s002"}
    assert units.opened == [True]


async def test_a_bulletin_of_a_month_without_figures_is_not_found() -> None:
    units = FakeUnits()
    with pytest.raises(Refusal) as info:
        await flows.bulletin(deps(TOWN, units), OFFICE, flows.BulletinOf(period="2099-01", file_format="csv"))
    assert refused(info) == ("period.no_figures", "period")
    assert info.value.status == 404 and info.value.params == {"period": "2099-01"}


async def test_a_bulletin_as_csv_keeps_the_bonus_for_the_office() -> None:
    units = FakeUnits()
    staff_month(units)
    office = await flows.bulletin(deps(TOWN, units), OFFICE, flows.BulletinOf(file_format="csv", pool=Decimal(100)))
    leader = await flows.bulletin(deps(TOWN, units), LEADER, flows.BulletinOf(file_format="csv"))
    assert office.filename == f"bulletin-{QINGHE}-{PERIOD}.csv" and office.media_type.startswith("text/csv")
    assert "奖金分配" in office.content.decode("utf-8-sig") and "奖金分配" not in leader.content.decode("utf-8-sig")


async def test_alerts_and_the_ledger_read_the_callers_town() -> None:
    units = FakeUnits()
    units.kept.raised.append({"town_code": QINGHE, "staff_id": "s001", "period": PERIOD, "level": "talk",
                              "reasons": ["x"], "raised_at": datetime(2028, 8, 3, tzinfo=UTC),
                              "cause_event_id": "e1"})
    found = await flows.alerts(deps(TOWN, units), LEADER, flows.AlertsOf(staff_id="s001"))
    assert found == [{"staff_id": "s001", "period": PERIOD, "level": "talk", "reasons": ["x"],
                      "raised_at": "2028-08-03T00:00:00+00:00", "cause_event_id": "e1"}]
    ledger = await flows.ledger(deps(TOWN, units), LEADER, flows.LedgerOf("staff", "s001", PERIOD))
    assert (ledger.town_code, ledger.entries) == (QINGHE, [])


def test_every_refusal_of_the_catalogue_is_appraisals_own() -> None:
    assert {c.catalogue for c in refusals.CODES} == {"appraisal"}
    assert all(c.name.split(".")[0] in ("period", "bonus", "bulletin", "score", "ranking", "whatif")
               for c in refusals.CODES)
