"""Intake's rules without I/O."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from intake import rules
from townflow_shared.auth import Principal
from townflow_shared.county import load_county
from townflow_shared.problems import Refusal
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import IntakeRules, Town, load_town

TOWN = load_town(DEMO_TOWN_DIR)
COUNTY = load_county(DEMO_COUNTY_DIR)
QINGHE, BAILU = COUNTY.towns["321003104"], COUNTY.towns["321003107"]


def test_ticket_number_has_town_day_and_five_digit_sequence() -> None:
    assert rules.ticket_number("321003104", date(2026, 11, 23), 7) == "321003104-20261123-00007"
    with pytest.raises(ValueError):
        rules.ticket_number("321003104", date(2026, 11, 23), 100_000)


def test_a_ticket_number_names_its_town() -> None:
    assert rules.town_of_ticket(rules.ticket_number("321003107", date(2026, 11, 23), 1)) == "321003107"
    assert rules.town_of_ticket("nonsense") == "nonsense"  # no town is called that: it exists nowhere


def test_citizen_ref_is_keyed_and_normalised() -> None:
    key = b"secret"
    a = rules.citizen_ref(key, "32100319900101123x", None)
    assert a == rules.citizen_ref(key, " 32100319900101123X ", "13900000000")
    assert a != rules.citizen_ref(b"other", "32100319900101123X", None)
    assert rules.citizen_ref(key, None, "+86 139-0000-0000") == rules.citizen_ref(key, None, "13900000000")
    assert "32100319900101123" not in a


def test_colour_is_the_filers_choice_else_the_items_default() -> None:
    item = TOWN.catalog["S005"]  # default orange
    assert rules.colour_for(None, item, 0, IntakeRules()) == "orange"
    assert rules.colour_for("yellow", item, 0, IntakeRules()) == "yellow"


@pytest.mark.parametrize(("earlier", "colour", "expected"), [
    (0, "yellow", "yellow"), (1, "yellow", "yellow"), (2, "yellow", "orange"),
    (2, "orange", "red"), (2, "red", "red"), (5, "yellow", "orange"),
])
def test_third_filing_in_the_window_raises_one_level(earlier: int, colour: str, expected: str) -> None:
    item = TOWN.catalog["S001"]
    assert rules.colour_for(colour, item, earlier, IntakeRules()) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("query", "expected"), [
    ("S00l", "S001"), ("新生儿", "S001"), ("农村建房", "J001"), ("占道", "E001"), ("e003", "E003"),
])
def test_closest_items_by_code_and_chinese_name(query: str, expected: str) -> None:
    assert expected in [i.code for i in rules.closest_items(query, TOWN)]


def test_the_towns_refusals_of_a_filing() -> None:
    """A filing as documented that the town refuses is a 409 naming every field at fault."""
    item = TOWN.catalog["E003"]
    refused = rules.filing_refusal(town=TOWN, item=item, village="V99", target=None, proxy_agent_id="s999")
    assert refused is not None and refused.status == 409
    assert (refused.code.name, refused.field) == ("filing.village_unknown", "village")
    assert {(e.field, e.code) for e in refused.errors} == {
        ("village", "filing.village_unknown"), ("proxy_agent_id", "filing.proxy_agent_unknown"),
        ("target", "filing.target_missing")}
    assert "V99" not in str(refused.params.get("villages"))  # the town's own
    no_target = rules.filing_refusal(town=TOWN, item=item, village="V01", target=None, proxy_agent_id=None)
    assert no_target is not None and no_target.status == 409
    assert (no_target.code.name, no_target.field) == ("filing.target_missing", "target")
    assert rules.filing_refusal(town=TOWN, item=TOWN.catalog["S001"], village="V01", target=None,
                                proxy_agent_id=None) is None


def test_village_and_proxy_agent_are_the_towns_own() -> None:
    """In a county each filing is checked against the town it is filed in (SPEC §8)."""
    def problems(town: Town, village: str = "V01", proxy_agent_id: str = "s035") -> set[str]:
        refused = rules.filing_refusal(town=town, item=town.catalog["S001"], village=village, target=None,
                                       proxy_agent_id=proxy_agent_id)
        return {e.field for e in refused.errors} if refused is not None else set()

    assert problems(QINGHE) == set()
    assert problems(BAILU) == {"proxy_agent_id"}                  # 青禾镇's 代办员, not 白鹭镇's
    assert problems(BAILU, proxy_agent_id="s029") == set()
    assert problems(QINGHE, village="V06") == set()
    assert problems(BAILU, village="V06", proxy_agent_id="s029") == {"village"}  # 白鹭镇 has five
    assert problems(QINGHE, proxy_agent_id="s010") == {"proxy_agent_id"}  # a clerk is no proxy agent
    assert rules.proxy_agents(BAILU) == ["s029"]


@pytest.mark.parametrize(("code", "taken"), [
    ("ABCDEF", "ABCDEF"), (" abc2ef\n", "ABC2EF"), ("ABCDE", None), ("ABCDEO", None), ("ABCDE1", None),
    ("abcdeſ", None),  # 'ſ'.upper() is 'S': only the alphabet's own letters are read
    ("ＡBCDEF", None),  # a full-width letter
])
def test_an_access_code_is_taken_exactly_when_its_pattern_allows_it(code: str, taken: str | None) -> None:
    assert rules.normalise_access_code(code) == taken
    assert (re.search(rules.ACCESS_CODE_PATTERN, code) is not None) == (taken is not None)


def test_rating_only_once_and_only_after_completion() -> None:
    assert rules.may_rate("completed", False) is None
    assert rules.may_rate("closed", False) is None
    early = rules.may_rate("dispatched", False)
    assert early is not None and early.code.name == "rating.not_completed" and early.params == {"status": "dispatched"}
    again = rules.may_rate("completed", True)
    assert again is not None and again.code.name == "rating.already_given"


def test_a_later_event_sets_the_status_and_ties_go_forward() -> None:
    from datetime import UTC, datetime
    t = datetime(2026, 11, 23, 1, tzinfo=UTC)
    assert rules.newer_status("completed", t, "dispatched", t) is False
    assert rules.newer_status("dispatched", t, "completed", t) is True
    assert rules.newer_status("completed", t, "rework", t.replace(hour=2)) is True
    assert rules.newer_status("rework", t.replace(hour=2), "completed", t) is False


# --- access codes (SPEC §6.1) -------------------------------------------------------------
def test_an_access_code_is_read_as_issued_or_refused_as_malformed() -> None:
    code = rules.new_access_code()
    assert len(code) == 9 and set(code) <= set(rules.ACCESS_CODE_ALPHABET)
    assert rules.normalise_access_code(f"  {code.lower()} ") == code
    assert rules.normalise_access_code(f"{code[:3]} {code[3:6]} {code[6:]}") == code  # typed in groups
    assert rules.normalise_access_code(f"{code[:3]}-{code[3:6]}-{code[6:]}") == code
    assert rules.normalise_access_code(" abc234 ") == "ABC234"  # a code issued before: 6 characters
    for malformed in ("", "ABC", "ABCDEFG", "É23456", "ABCDE0", "ABC DE", "ABCDEFGH", "ABCDEFGHJK", " -ABC234"):
        assert rules.normalise_access_code(malformed) is None, malformed


def test_codes_are_compared_whole() -> None:
    assert rules.codes_match("ABC234", "ABC234")
    assert not rules.codes_match("ABC234", "ABC235")


A, B = "address-a", "address-b"


def _wrong_codes(now: datetime, address: str, minutes: range) -> list[rules.WrongCode]:
    return [rules.WrongCode(now - timedelta(minutes=m), address) for m in minutes]


def test_the_eleventh_wrong_code_from_one_address_waits_until_its_oldest_is_an_hour_old() -> None:
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    wrong = _wrong_codes(now, A, range(50, 40, -1))  # 09:10, 09:11, … 09:19
    assert rules.guessing_wait(wrong[:9], A, now, 10) is None
    assert rules.guessing_wait(wrong, A, now, 10) == 10 * 60  # 09:10 + 1 h = 10:10
    assert rules.guessing_wait(wrong, B, now, 10) is None  # another address: never the stranger's wait
    later = now + timedelta(minutes=10, seconds=1)
    assert rules.guessing_wait(rules.recent_wrong_codes(wrong, later), A, later, 10) is None


def test_wrong_codes_older_than_an_hour_no_longer_count() -> None:
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    old, new = rules.WrongCode(now - timedelta(hours=2), A), rules.WrongCode(now - timedelta(minutes=5), A)
    assert rules.recent_wrong_codes([old, new], now) == [new]


def test_a_ticket_is_under_attack_once_all_addresses_together_gave_the_hours_number() -> None:
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    spread = [rules.WrongCode(now - timedelta(minutes=m), f"address-{m % 2}") for m in range(10)]
    assert not rules.under_attack(spread[:9], 10) and rules.under_attack(spread, 10)
    alone = [rules.WrongCode(now - timedelta(minutes=m), A) for m in range(30)]
    assert not rules.under_attack(alone, 10)  # one address waits on its own (guessing_wait)


def test_the_contact_tail_is_the_phones_else_the_id_numbers() -> None:
    assert rules.contact_tail("+86 138-0000-4321", "11010519491231002X") == "4321"
    assert rules.contact_tail(None, "11010519491231002x") == "002X"
    assert rules.normalise_contact_tail(" 002x ") == "002X"
    assert rules.normalise_contact_tail("43 21") is None and rules.normalise_contact_tail("432") is None


def test_an_address_is_kept_as_a_keyed_hash() -> None:
    ref = rules.address_ref(b"k" * 32, "203.0.113.7")
    assert "203.0.113.7" not in ref and ref == rules.address_ref(b"k" * 32, "203.0.113.7")
    assert ref != rules.address_ref(b"o" * 32, "203.0.113.7") != rules.address_ref(b"k" * 32, "203.0.113.8")


def test_guessing_a_code_stays_impractical_the_odds_of_a_years_attack_from_100_addresses() -> None:
    """Issue #28: an attacker with 100 addresses trying one ticket for a year succeeds with
    probability below 10⁻⁶. What the rules let through, hour by hour (the demo towns'
    wrong_codes_per_hour, 10, as both limits):

    - guesses of the code alone: at most 10 an hour from all addresses together, for once a
      ticket saw 10 wrong codes within the hour from more than one address it is under attack and
      the code alone is answered `ticket.more_proof_needed` before it is looked at (one address
      alone waits after its 10);
    - guesses of code and contact tail: at most 10 an hour from each address (`guessing_wait`),
      990 more from 100 (10 of their 1,000 were the code-only ones), each right with 1 in 31⁹·10⁴
      (10⁴ at least: an id number's last four are three digits and 0-9 or X).

    The union bound over a year: P ≤ 8,760 · (10 + 990 / 10⁴) / 31⁹ ≈ 3.3·10⁻⁹. Even an attacker
    who knows the citizen's phone: P ≤ 8,760 · 1,000 / 31⁹ ≈ 3.3·10⁻⁷."""
    now = datetime(2027, 3, 15, 9, 0, tzinfo=UTC)
    allowed = IntakeRules().wrong_codes_per_hour
    addresses, hours = 100, 365 * 24
    # The figures, from the rules themselves: an hour of 100 addresses guessing as fast as allowed.
    wrong: list[rules.WrongCode] = []
    code_only = code_and_tail = 0
    for minute in range(60):
        at = now + timedelta(minutes=minute)
        for n in range(addresses):
            address = f"attacker-{n}"
            recent = rules.recent_wrong_codes(wrong, at)
            if rules.guessing_wait(recent, address, at, allowed) is not None:
                continue
            if rules.under_attack(recent, allowed):
                code_and_tail += 1
            else:
                code_only += 1
            wrong.append(rules.WrongCode(at, address))
    assert (code_only, code_and_tail) == (allowed, addresses * allowed - allowed)
    tails = 10 ** rules.CONTACT_TAIL_LENGTH
    codes = len(rules.ACCESS_CODE_ALPHABET) ** rules.ACCESS_CODE_LENGTH
    odds = hours * (code_only + code_and_tail / tails) / codes
    assert odds < 1e-6
    assert f"{odds:.1e}" == "3.3e-09"
    knowing_the_phone = hours * (code_only + code_and_tail) / codes
    assert knowing_the_phone < 1e-6 and f"{knowing_the_phone:.1e}" == "3.3e-07"
    # Codes issued before (6 characters) keep the odds they had (a 10-an-hour cap per ticket then,
    # as now for the code alone), and no longer lock the citizen out.
    old = hours * (code_only + code_and_tail / tails) / len(rules.ACCESS_CODE_ALPHABET) ** rules.OLD_ACCESS_CODE_LENGTH
    assert f"{old:.1e}" == "1.0e-04"


# --- 重复件 -----------------------------------------------------------------------------------
DUP_RULES = IntakeRules()


def test_locations_are_compared_without_spacing_punctuation_or_width() -> None:
    assert rules.normalise_location("南塘村，３组 (村口)") == "南塘村3组村口"
    assert rules.location_similarity("南塘村村道", "南塘村村道 K2+300") == 1.0  # one contains the other
    assert round(rules.location_similarity("南塘村三组东头", "南塘村三组西头"), 2) == 0.67
    assert rules.location_similarity("南塘村三组", "青禾村五组") == 0.0
    assert rules.location_similarity("", "南塘村") == 0.0


def _candidate(item: str = "T001", village: str = "V04", location: str = "南塘村村道K2+300",
               target: str | None = None) -> rules.Candidate:
    return rules.Candidate("321003104-20261123-00001", item, village, location, target)


def test_a_duplicate_is_the_same_target_or_the_same_item_and_village_at_a_similar_place() -> None:
    same_place = dict(item_code="T001", village="V04", location="南塘村村道", target=None, rules=DUP_RULES)
    assert rules.duplicate_reason(_candidate(), **same_place) == ("similar_location", 1.0)  # type: ignore[arg-type]
    assert rules.duplicate_reason(_candidate(village="V03"), **same_place) is None  # type: ignore[arg-type]
    assert rules.duplicate_reason(_candidate(item="T002"), **same_place) is None  # type: ignore[arg-type]
    assert rules.duplicate_reason(_candidate(location="青禾村五组"), **same_place) is None  # type: ignore[arg-type]
    by_target = rules.duplicate_reason(_candidate(item="E001", location="厂区", target="91321000MA1X"),
                                       item_code="E002", village="V01", location="东门", target="91321000MA1X",
                                       rules=DUP_RULES)
    assert by_target == ("same_target", 0.0)


def test_the_town_rule_sets_how_alike_locations_must_be() -> None:
    strict = IntakeRules(duplicate_location_similarity=0.9)
    args = dict(item_code="T001", village="V04", location="南塘村三组西头", target=None)
    assert rules.duplicate_reason(_candidate(location="南塘村三组东头"), **args, rules=DUP_RULES) == (  # type: ignore[arg-type]
        "similar_location", 0.67)
    assert rules.duplicate_reason(_candidate(location="南塘村三组东头"), **args, rules=strict) is None  # type: ignore[arg-type]


def _side(ticket: str, status: str = "dispatched", merged_into: str | None = None, followers: int = 0,
          town: str = "321003104") -> rules.MergeSide:
    return rules.MergeSide(ticket, town, status, merged_into, followers)


def _refused(refusal: Refusal | None) -> tuple[str, str | None, dict[str, Any]] | None:
    return None if refusal is None else (refusal.code.name, refusal.field, refusal.params)


def test_a_merge_is_refused_with_the_code_and_field() -> None:
    a, b = "321003104-20261123-00001", "321003104-20261123-00002"
    assert rules.merge_refusal(_side(a), _side(b, "completed")) is None
    assert _refused(rules.merge_refusal(_side(a), _side(a))) == ("merge.into_itself", "into", {})
    assert _refused(rules.merge_refusal(_side(a), _side(b, town="321003107"))) == (
        "merge.other_town", "into", {"ticket": b})
    assert _refused(rules.merge_refusal(_side(a, merged_into=b), _side(b))) == (
        "merge.already_merged", "ticket_no", {"ticket": a, "primary": b})
    assert _refused(rules.merge_refusal(_side(a, followers=2), _side(b))) == (
        "merge.has_merged_matters", "ticket_no", {"ticket": a, "count": 2})
    assert _refused(rules.merge_refusal(_side(a, "completed"), _side(b))) == (
        "merge.not_open", "ticket_no", {"ticket": a, "status": "completed"})
    assert _refused(rules.merge_refusal(_side(a), _side(b, merged_into=a))) == (
        "merge.primary_merged", "into", {"ticket": b, "primary": a})
    assert _refused(rules.merge_refusal(_side(a), _side(b, "closed"))) == (
        "merge.primary_closed", "into", {"ticket": b, "status": "closed"})


def test_a_merge_is_undone_only_until_the_primary_closes() -> None:
    assert rules.unmerge_refusal("321003104-20261123-00002", "completed") is None
    assert _refused(rules.unmerge_refusal(None, None)) == ("unmerge.not_merged", "ticket_no", {})
    assert _refused(rules.unmerge_refusal("321003104-20261123-00002", "closed")) == (
        "unmerge.primary_closed", "ticket_no", {"primary": "321003104-20261123-00002"})


def test_an_unknown_item_names_the_closest_items_as_suggestions() -> None:
    refusal = rules.unknown_item("农村建房", TOWN)
    assert refusal.code.name == "item.unknown" and refusal.field == "item_code"
    assert "J001" in refusal.params["suggestions"]
    names = dict(zip(refusal.params["suggestions"], refusal.params["suggestion_names"], strict=True))
    assert names["J001"] == TOWN.catalog["J001"].name


# --- the matter in front of the handler (issue #27) ----------------------------------------------
def _who(sub: str, *roles: str, town: str | None = "321003104") -> Principal:
    return Principal(sub=sub, roles=frozenset(roles), town=town)


# S001 新生儿落户: post household (module police, leader s048), lead module police; s049 holds post A.
HELD = rules.Holder(assignee="s049", post="household", lead_module="police", status="accepted")


@pytest.mark.parametrize(("who", "holders", "basis"), [
    (_who("s049", "staff"), [HELD], "assignee"),
    (_who("s049", "staff"), [replace(HELD, status="rework")], "assignee"),  # 返工 / 重办: theirs again
    (_who("s049", "staff"), [replace(HELD, status="completed")], None),  # no longer open
    (_who("s049", "staff"), [replace(HELD, status="returned")], None),   # handed back
    (_who("s049", "staff"), [replace(HELD, status="returned"),           # redispatched to another
                             replace(HELD, assignee="s050", status="dispatched")], None),
    (_who("s050", "staff"), [replace(HELD, status="returned"),
                             replace(HELD, assignee="s050", status="dispatched")], "assignee"),
    (_who("s048", "staff", "module_leader"), [HELD], "module_leader"),   # the post's module's leader
    (_who("s048", "staff", "module_leader"), [replace(HELD, status="closed")], None),
    (_who("s002", "staff", "module_leader"), [HELD], None),              # another module's leader
    (_who("s002", "staff", "module_leader"), [replace(HELD, post=None, lead_module="social")], "module_leader"),
    (_who("s030", "staff", "command_centre"), [HELD], "command_centre"),
    (_who("s030", "staff", "command_centre"), [replace(HELD, status="closed")], "command_centre"),  # 回访
    (_who("s030", "staff", "command_centre"), [], "command_centre"),     # not dispatched yet
    (_who("s014", "staff"), [HELD], None),                               # other staff of the town
    (_who("s010", "staff", "clerk"), [HELD], None),
    (_who("s032", "staff", "appraisal_admin"), [HELD], None),
    (_who("s000", "admin"), [HELD], None),                               # admin is not the command centre
    (_who("s049", "staff", town="321003107"), [HELD], None),             # the same id in another town
    (_who("s030", "staff", "command_centre", town="321003107"), [HELD], None),
    (_who("c002", "county_reader", town=None), [HELD], None),            # a county department, never
    (_who("c001", "county_admin", town=None), [HELD], None),
    (_who("s049", "staff"), [replace(HELD, assignee=None, post=None, lead_module=None)], None),  # not told yet
])
def test_who_sees_the_citizen_of_a_matter(who: Principal, holders: list[rules.Holder], basis: str | None) -> None:
    assert rules.citizen_basis(who, QINGHE, holders) == basis


def test_a_tasks_newer_status_wins_and_a_tie_goes_further_along() -> None:
    t = datetime(2027, 3, 15, 1, 0, tzinfo=UTC)
    assert rules.newer_task_status(None, None, "accepted", t)
    assert rules.newer_task_status("dispatched", t, "accepted", t + timedelta(seconds=1))
    assert not rules.newer_task_status("completed", t, "accepted", t - timedelta(seconds=1))
    assert rules.newer_task_status("accepted", t, "completed", t)
    assert not rules.newer_task_status("completed", t, "dispatched", t)
    assert [h.open for h in (HELD, replace(HELD, status="merged"))] == [True, False]


# --- place (issue #30) ----------------------------------------------------------------------------
# 青禾镇 spans 119.30–119.36 E, 32.38–32.425 N (devstack/place_gen.py): 青禾村 (V01) its north-west.
IN_V01_CELL_1 = (119.305, 32.42)


def test_a_point_places_a_located_matter_in_its_village_and_cell() -> None:
    road = TOWN.catalog["T001"]
    assert road.located
    assert rules.placed(town=TOWN, item=road, village=None, point=IN_V01_CELL_1) == rules.Placed(
        "V01", "321003104001001", IN_V01_CELL_1)
    assert rules.placed(town=TOWN, item=road, village="V01", point=IN_V01_CELL_1) == rules.Placed(
        "V01", "321003104001001", IN_V01_CELL_1)
    assert rules.placed(town=TOWN, item=road, village="V03", point=None) == rules.Placed("V03")


def _point_refused(**given: Any) -> tuple[str, str | None, int]:
    found = rules.placed(**{"town": TOWN, "item": TOWN.catalog["T001"], "village": None, **given})
    assert isinstance(found, Refusal)
    return found.code.name, found.field, found.status


def test_the_refusals_of_a_point() -> None:
    # A person's own matter takes no point: its place would be a home.
    assert not TOWN.catalog["S001"].located
    assert _point_refused(item=TOWN.catalog["S001"], point=IN_V01_CELL_1) == ("filing.point_not_located", "point", 422)
    assert _point_refused(point=(119.37, 32.40)) == ("filing.point_outside_town", "point", 422)  # 白鹭镇's
    assert _point_refused(point=(32.42, 119.305)) == ("filing.point_outside_town", "point", 422)  # latitude first
    assert _point_refused(village="V02", point=IN_V01_CELL_1) == ("filing.village_contradicts_point", "village", 422)
    unmapped = TOWN.model_copy(update={"places": None})
    assert _point_refused(town=unmapped, point=IN_V01_CELL_1) == ("filing.point_no_map", "point", 409)
    assert _point_refused(point=None) == ("filing.village_missing", "village", 422)


def test_an_open_matter_of_the_same_item_within_the_towns_distance_is_nearby() -> None:
    def reason(item: str, distance: float | None, location: str = "南塘村口") -> str | None:
        why = rules.duplicate_reason(rules.Candidate("t", item, "V02", location, None, distance), item_code="T001",
                                     village="V01", location="青禾村五组", target=None, rules=IntakeRules())
        return why[0] if why else None

    assert IntakeRules().duplicate_distance_m == 50
    assert reason("T001", 30.0) == "nearby"
    assert reason("T001", 50.0) == "nearby"
    assert reason("T001", 50.1) is None
    assert reason("T002", 10.0) is None  # another item at the same spot is another matter
    assert reason("T001", None) is None  # one of the two has no point
