"""The task lists' search and filters (issue #27) without a database: what the address may say
(TaskQuery refuses anything else, with its code and field), what a search means (the rules) and
the SQL it becomes (every value bound; the statuses written out for the indexes)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dispatch import api, rules
from dispatch.models import TaskQuery
from dispatch.store import TaskSearch, task_search_where
from townflow_shared.county import load_county
from townflow_shared.problems import Refusal, field_error
from townflow_shared.settings import DEMO_COUNTY_DIR

NOW = datetime(2026, 11, 23, 1, tzinfo=UTC)


def refusal_of(**query: object) -> list[tuple[str, str]]:
    """The (field, code) pairs of the 422 the query would be answered with."""
    with pytest.raises(ValidationError) as caught:
        TaskQuery.model_validate(query)
    return [(e.field, e.code) for e in map(field_error, caught.value.errors())]


def test_every_filter_of_the_address_is_read() -> None:
    query = TaskQuery.model_validate({
        "town": "321003104", "q": "路灯", "item": "S002", "village": "V01", "assignee": "s049", "module": "service",
        "status": "returned", "colour": "red", "phase": "open", "overdue": "true", "reopened": "false",
        "offset": "50", "limit": "25"})
    assert (query.overdue, query.reopened, query.offset, query.limit) == (True, False, 50, 25)


@pytest.mark.parametrize(("query", "expected"), [
    ({"colour": "purple"}, [("colour", "value.not_allowed")]),
    ({"status": "lost"}, [("status", "value.not_allowed")]),
    ({"phase": "all"}, [("phase", "value.not_allowed")]),
    ({"overdue": "maybe"}, [("overdue", "value.not_boolean")]),
    ({"offset": "-1"}, [("offset", "value.too_small")]),
    ({"limit": "201"}, [("limit", "value.too_large")]),
    ({"limit": "ten"}, [("limit", "value.not_integer")]),
    ({"q": ""}, [("q", "value.too_short")]),
    # 65 characters as sent, most of them what strip() removes (U+0085): the bound counts what was
    # sent, as the schema's maxLength does (a fuzzer's find).
    ({"village": "\x850" + "\x85" * 63}, [("village", "value.too_long")]),
    ({"q": "x" * 101}, [("q", "value.too_long")]),
    ({"colours": "red"}, [("colours", "value.unexpected")]),
])
def test_a_value_the_list_does_not_take_is_refused_with_its_field(query: dict[str, str],
                                                                   expected: list[tuple[str, str]]) -> None:
    assert refusal_of(**query) == expected


def test_a_search_of_digits_looks_a_ticket_up_and_any_other_text_in_the_place() -> None:
    towns = ["321003104", "321003112"]
    assert rules.ticket_search("321003104-20261123-00002", towns) == ("321003104-20261123-00002", True)
    assert rules.ticket_search("32100310420261123", towns) == ("321003104-20261123", True)  # dashes where intake puts them
    assert rules.ticket_search("3210031042026112300002", towns) == ("321003104-20261123-00002", True)
    assert rules.ticket_search("3210", towns) == ("3210", True)  # the beginning of a town's code
    assert rules.ticket_search("321003199-20261123", towns) == ("32100319920261123", False)  # not a town of the caller's
    assert rules.ticket_search("20261123-00002", towns) == ("2026112300002", False)  # a part: a day and a sequence
    assert rules.ticket_search("00002", towns) == ("00002", False)
    assert rules.ticket_search("123", towns) is None  # too short to mean a ticket: a house number, say
    assert rules.ticket_search("1-2-3", towns) is None and rules.ticket_search("-1234", towns) is None
    assert rules.ticket_search("青禾路12号", towns) is None
    assert rules.like_pattern("100%_a\\b") == "100\\%\\_a\\\\b"


def test_open_and_ended_split_every_status() -> None:
    assert set(rules.PHASES["open"]) | set(rules.PHASES["ended"]) == set(rules.TASK_STATUSES)
    assert not set(rules.PHASES["open"]) & set(rules.PHASES["ended"])
    assert {"returned", "completed", "suspended", *rules.OPEN_STATUSES} == set(rules.PHASES["open"])


def test_one_town_is_an_equality_and_every_value_is_bound() -> None:
    where, args = task_search_where(["321003104"], TaskSearch(
        q="路灯%", village="V01", colour="red", phase="ended", overdue=True, reopened=True), NOW)
    assert where == ("town_code = $1 AND (location ILIKE $2 OR target ILIKE $2) AND village = $3 AND colour = $4"
                     " AND status IN ('closed', 'merged', 'redispatched')"
                     " AND (status IN ('dispatched', 'accepted', 'rework') AND resolve_by < $5) AND reopen_count > 0")
    assert args == ["321003104", "%路灯\\%%", "V01", "red", NOW]


def test_several_towns_a_ticket_prefix_and_the_negative_filters() -> None:
    towns = ["321003104", "321003112"]
    where, args = task_search_where(towns, TaskSearch(q="32100310420261123", overdue=False, reopened=False), NOW)
    assert where == ("town_code = ANY($1) AND ticket_no LIKE $2"
                     " AND NOT (status IN ('dispatched', 'accepted', 'rework') AND resolve_by < $3) AND reopen_count = 0")
    assert args == [towns, "321003104-20261123%", NOW]
    assert task_search_where(towns[:1], TaskSearch(q="1123-00002"), NOW) == (
        "town_code = $1 AND replace(ticket_no, '-', '') LIKE $2", ["321003104", "%112300002%"])


def test_place_filters_read_the_matters_place_and_leave_the_clause_one_of_tasks() -> None:
    where, args = task_search_where(["321003104"], TaskSearch(
        cell="321003104001001", box=(119.3, 32.41, 119.31, 32.43), located=True), NOW)
    assert where == (
        "town_code = $1 AND request_id IN (SELECT request_id FROM matter_places WHERE grid_cell = $2)"
        " AND request_id IN (SELECT request_id FROM matter_places WHERE point && ST_MakeEnvelope(($3::float8[])[1],"
        " ($3::float8[])[2], ($3::float8[])[3], ($3::float8[])[4], 4326)::geography)"
        " AND EXISTS (SELECT FROM matter_places p WHERE p.request_id = tasks.request_id)")
    assert args == ["321003104", "321003104001001", [119.3, 32.41, 119.31, 32.43]]
    assert task_search_where(["321003104"], TaskSearch(located=False), NOW)[0].endswith(
        "AND NOT EXISTS (SELECT FROM matter_places p WHERE p.request_id = tasks.request_id)")


def test_a_box_is_taken_as_meant_and_kept_in_the_world() -> None:
    assert api._box(None) is None
    assert api._box("119.31,32.43,119.3,32.41") == (119.3, 32.41, 119.31, 32.43)
    assert api._box("170,80,200,95") == (170.0, 80.0, 180.0, 90.0)  # past the world's edge: at it


def test_a_box_of_half_the_world_or_more_is_refused_naming_it() -> None:
    """Its sides would join antipodal points, which PostGIS cannot make a geography envelope of (the
    fuzzer's box answered 500)."""
    for box in ("-200,-95,200,95", "-170,0,10,5", "61703676.5,-3764318158013206346,6702193756055920891935.7,576438"):
        with pytest.raises(Refusal) as refused:
            api._box(box)
        assert (refused.value.code.name, refused.value.field, refused.value.code.status) == ("value.out_of_range", "bbox", 422)


def test_each_posts_holders_in_the_order_dispatch_tries_them_and_who_takes_the_next() -> None:
    town = load_county(DEMO_COUNTY_DIR).towns["321003104"]
    holders = rules.eligible_holders(town)
    post = town.posts["mediation"]
    mine = [h for h in holders if h.post == "mediation"]
    assert [(h.slot, h.staff_id) for h in mine] == [
        ("A", post.a_holder), ("B", post.b_holder), ("leader", town.modules[post.module].leader)]
    cap = town.load_cap(post)
    assert mine[0].cap == mine[1].cap == cap and mine[2].cap is None
    assert rules.takes_next(holders, "mediation", {}, set()) == mine[0]
    assert rules.takes_next(holders, "mediation", {post.a_holder: cap}, set()) == mine[1]  # A at the cap
    assert rules.takes_next(holders, "mediation", {post.a_holder: cap - 1}, {post.a_holder}) == mine[1]  # A away
    assert rules.takes_next(holders, "mediation", {post.b_holder: cap}, {post.a_holder}) == mine[2]
    assert rules.takes_next(holders, "no such post", {}, set()) is None
