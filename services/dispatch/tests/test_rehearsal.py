"""The rehearsal engine without I/O (issue #32): a hand-made morning of 青禾镇's mediation post
replayed on the town's own layout, on a layout whose two modules are merged and on one with
another load cap; what each person gets is what rules.assign says."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from dispatch import rehearsal, rules
from dispatch.models import Rehearsal, RehearsalRequest
from dispatch.rehearsal import History, OffPost, PastMatter, PastTask
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR, DEMO_TOWN_DIR
from townflow_shared.town import Town, TownConfigError, load_town

TOWN = load_town(DEMO_TOWN_DIR)
TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 11, 23, 9, tzinfo=TZ)  # a working Monday


def mediation(n: int, at: datetime, assignee: str, via: str, completed: datetime | None,
              levels: frozenset[str] = frozenset()) -> PastMatter:
    due = rules.deadlines("yellow", TOWN.catalog["T004"], at, TOWN.calendar, TOWN.rules.dispatch)
    return PastMatter(f"m{n}", "T004", "yellow", "V01", (PastTask(
        task_id=f"t{n}", post="mediation", assignee=assignee, via=via, dispatched_at=at, respond_by=due.respond_by,
        resolve_by=due.resolve_by, accepted_at=at + timedelta(minutes=20) if completed else None,
        completed_at=completed, returned_at=None, merged_at=None,
        on_time=None if completed is None else completed <= due.resolve_by, levels=levels),))


def morning() -> History:
    """Three matters: the first while both holders are on post; the next two while both are away,
    so the module leader takes them (A/B岗互为备岗, then the leader)."""
    matters = (mediation(1, MONDAY, "s017", "A", MONDAY + timedelta(hours=6)),
               mediation(2, MONDAY + timedelta(hours=1), "s004", "leader", MONDAY + timedelta(hours=2)),
               mediation(3, MONDAY + timedelta(hours=2), "s004", "leader", None,  # never done: supervised
                         frozenset({"reminder", "overdue", "escalated"})))
    away = (OffPost("s017", MONDAY + timedelta(minutes=30), MONDAY + timedelta(hours=3)),
            OffPost("s018", MONDAY + timedelta(minutes=30), MONDAY + timedelta(hours=3)))
    return History(TOWN.code, MONDAY.replace(day=1, hour=0), MONDAY.replace(day=30, hour=23),
                   MONDAY + timedelta(days=40), matters, away)


def layout(**files: Any) -> Town:
    return rehearsal.alternative_town(TOWN, {name.replace("_", "."): yaml.safe_dump(content, allow_unicode=True)
                                            for name, content in files.items()})


def merged(gone: str, into: str) -> Town:
    """The town with module `gone` merged into `into` (大部制): its posts, staff and items move."""
    def moved(rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
        return [row | {f: into for f in fields if row.get(f) == gone} for row in rows]

    return layout(
        modules_yaml={"modules": [m.model_dump(mode="json") for m in TOWN.modules.values() if m.code != gone]},
        posts_yaml={"posts": moved([p.model_dump(mode="json") for p in TOWN.posts.values()], "module")},
        staff_yaml={"staff": moved([s.model_dump(mode="json") for s in TOWN.staff.values()], "module")},
        catalog_yaml={"items": [i | {"cooperating_modules": [into if m == gone else m for m in i["cooperating_modules"]],
                                     "joint_units": [into if m == gone else m for m in i["joint_units"]]}
                                for i in moved([i.model_dump(mode="json") for i in TOWN.catalog.values()],
                                               "lead_module")]})


def assignees(runs: list[rehearsal.TaskRun]) -> list[str]:
    return [r.assignee for r in sorted(runs, key=lambda r: r.dispatched_at)]


def test_the_towns_own_layout_replayed_gives_every_matter_its_real_assignee_and_figures() -> None:
    history = morning()
    runs = rehearsal.rehearse(history, TOWN, TOWN, times="replayed")
    assert assignees(runs) == ["s017", "s004", "s004"]
    real = rehearsal.figures(rehearsal.recorded(history, TOWN), TOWN, history.start, history.end)
    assert rehearsal.figures(runs, TOWN, history.start, history.end) == real
    town = real[("town", TOWN.code)]
    assert (town.handled, town.busiest_day_tasks, town.most_open) == (3, 3, 2)  # m2 was done as m3 came
    assert town.response == pytest.approx(2 / 3) and town.resolution == pytest.approx(2 / 3)
    assert (town.overdue, town.escalated) == (1, 1)


def test_merging_stability_into_social_gives_the_leaders_matters_to_socials_leader() -> None:
    alternative = merged("stability", "social")
    assert alternative.posts["mediation"].module == "social" and "stability" not in alternative.modules
    runs = rehearsal.rehearse(morning(), alternative, TOWN, times="replayed")
    # The holders are the same people; with both away the leader of the post's module takes it.
    assert assignees(runs) == ["s017", TOWN.modules["social"].leader, TOWN.modules["social"].leader] == [
        "s017", "s002", "s002"]
    comparison = rehearsal.compare(morning(), TOWN, alternative, times="replayed")
    assert ("module", "stability") in comparison.real and ("module", "stability") not in comparison.alternative
    assert comparison.alternative[("module", "social")].handled == 3
    assert comparison.alternative[("staff", "s002")].most_open == 1  # m2 was done before m3 came
    assert comparison.same_assignee == 1.0


def test_a_load_cap_of_one_sends_the_second_matter_to_the_b_holder() -> None:
    history = History(TOWN.code, MONDAY - timedelta(days=1), MONDAY + timedelta(days=1), MONDAY + timedelta(days=3), (
        mediation(1, MONDAY, "s017", "A", MONDAY + timedelta(hours=5)),
        mediation(2, MONDAY + timedelta(hours=1), "s017", "A", MONDAY + timedelta(hours=2)),
        mediation(3, MONDAY + timedelta(hours=6), "s017", "A", None)))
    capped = layout(rules_yaml={"dispatch": {"default_load_cap": 1}})
    runs = rehearsal.rehearse(history, capped, TOWN, times="replayed")
    assert assignees(runs) == ["s017", "s018", "s017"]  # the third came after the first was done


def test_a_task_left_open_past_its_deadline_is_overdue_then_escalated_as_supervision_would_send() -> None:
    history = morning()
    (third,) = [r for r in rehearsal.rehearse(history, TOWN, TOWN, times="replayed") if r.request_id == "m3"]
    moments = rules.supervision_moments(third.dispatched_at, third.resolve_by, TOWN.rules.dispatch)
    assert moments["escalated"] < history.as_of and third.levels == {"reminder", "overdue", "escalated"}
    cut = History(history.town_code, history.start, history.end, moments["overdue"] + timedelta(minutes=1),
                  history.matters, history.off_post)
    (early,) = [r for r in rehearsal.rehearse(cut, TOWN, TOWN, times="replayed") if r.request_id == "m3"]
    assert early.levels == {"reminder", "overdue"}


def test_drawn_times_are_the_same_for_a_seed() -> None:
    history = morning()
    first = rehearsal.compare(history, TOWN, merged("stability", "social"), seed=7)
    assert first == rehearsal.compare(history, TOWN, merged("stability", "social"), seed=7)


def test_a_wrong_layout_file_is_named_with_its_field() -> None:
    posts = [p.model_dump(mode="json") for p in TOWN.posts.values()]
    posts[0]["a_holder"] = "s999"
    with pytest.raises(TownConfigError, match=r"^posts.yaml: field posts.0.a_holder: unknown staff id 's999'"):
        layout(posts_yaml={"posts": posts})
    with pytest.raises(TownConfigError, match=r"^town.yaml: not a file of a layout"):
        rehearsal.alternative_town(TOWN, {"town.yaml": "info: {}"})


def test_a_countys_layouts_are_each_towns_folder_else_the_common_files_and_a_wrong_one_names_its_town(
        tmp_path: Path) -> None:
    towns = load_county(DEMO_COUNTY_DIR).towns
    with pytest.raises(TownConfigError, match="no layout file found"):
        rehearsal.county_layouts(towns, tmp_path)
    capped = TOWN.rules.model_dump(mode="json")
    capped["dispatch"]["default_load_cap"] = 1
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(capped, allow_unicode=True), encoding="utf-8")
    (tmp_path / TOWN.code).mkdir()
    (tmp_path / TOWN.code / "modules.yaml").write_text("modules: [", encoding="utf-8")
    with pytest.raises(TownConfigError, match=rf"^town {TOWN.code}: modules.yaml"):
        rehearsal.county_layouts(towns, tmp_path)
    posts = {"posts": [p.model_dump(mode="json") | {"load_cap": 2} for p in TOWN.posts.values()]}
    (tmp_path / TOWN.code / "modules.yaml").unlink()
    (tmp_path / TOWN.code / "posts.yaml").write_text(yaml.safe_dump(posts, allow_unicode=True), encoding="utf-8")
    layouts = rehearsal.county_layouts(towns, tmp_path)
    assert set(layouts) == set(towns) and len(towns) == 3
    for code, (real, layout) in layouts.items():
        assert real is towns[code]
        if code == TOWN.code:  # its folder's files, not the common ones
            assert layout.load_cap(layout.posts["mediation"]) == 2 and layout.rules == real.rules
        else:
            assert layout.rules.dispatch.default_load_cap == 1 and layout.posts == real.posts


def test_the_comparison_is_what_the_api_answers_and_a_request_names_its_files() -> None:
    comparison = rehearsal.compare(morning(), TOWN, merged("stability", "social"), times="replayed")
    answer = Rehearsal.model_validate(rehearsal.as_plain(comparison))
    assert (answer.subjects[0].kind, answer.subjects[0].id) == ("town", TOWN.code)
    (stability,) = [s for s in answer.subjects if (s.kind, s.id) == ("module", "stability")]
    assert stability.real is not None and stability.alternative is None
    assert "module stability" in rehearsal.as_table(comparison)
    request = RehearsalRequest.model_validate({"from": "2026-11-01", "to": "2026-11-30",
                                               "files": {"posts.yaml": "posts: []"}})
    assert (request.times, request.seed) == ("drawn", 0)
    with pytest.raises(ValidationError):
        RehearsalRequest.model_validate({"from": "2026-11-01", "to": "2026-11-30", "files": {"town.yaml": ""}})


def test_what_got_worse_names_subject_and_figure_by_code_the_largest_first() -> None:
    def fig(response: float, overdue: int) -> rehearsal.Figures:
        return rehearsal.Figures(4, None, 0, 1, None, response, None, None, overdue, 0, None, 0.0)

    real = {("post", "mediation"): fig(0.9, 1), ("staff", "s017"): fig(0.8, 0)}
    alternative = {("post", "mediation"): fig(0.6, 1), ("staff", "s017"): fig(0.8, 2), ("module", "new"): fig(1, 3)}
    worse = rehearsal.what_got_worse(real, alternative)
    assert [(w.kind, w.id, w.figure, w.real, w.alternative) for w in worse] == [
        ("post", "mediation", "response", 0.9, 0.6), ("module", "new", "overdue", None, 3),
        ("staff", "s017", "overdue", 0, 2)]
    assert worse[0].text == "post mediation: 响应率 90.0% → 60.0%" and worse[1].text == "module new (new): 逾期 3"


def test_a_located_road_matter_goes_to_its_cells_post_and_to_its_items_once_a_layout_gives_the_cell_up() -> None:
    # 农村道路破损报修 in 青禾村's first cell: dispatch sent it to the cell's 网格员 (s033), as rules.post_of_matter says.
    cell = "321003104001001"
    due = rules.deadlines("yellow", TOWN.catalog["T001"], MONDAY, TOWN.calendar, TOWN.rules.dispatch)
    road = PastMatter("m1", "T001", "yellow", "V01", (PastTask(
        task_id="t1", post="grid-qinghe-donghu", assignee="s033", via="A", dispatched_at=MONDAY,
        respond_by=due.respond_by, resolve_by=due.resolve_by, accepted_at=None, completed_at=None,
        returned_at=None, merged_at=None, on_time=None),), grid_cell=cell)
    history = History(TOWN.code, MONDAY - timedelta(days=1), MONDAY + timedelta(days=1), MONDAY + timedelta(days=3),
                      (road,))
    assert assignees(rehearsal.rehearse(history, TOWN, TOWN, times="replayed")) == ["s033"]
    without_cells = layout(posts_yaml={"posts": [p.model_dump(mode="json") | {"cells": []}
                                                 for p in TOWN.posts.values()]})
    [run] = rehearsal.rehearse(history, without_cells, TOWN, times="replayed")
    assert (run.post, run.assignee) == ("infrastructure", TOWN.posts["infrastructure"].a_holder)


def test_a_drawn_handling_of_a_clock_hour_window_keeps_its_clock_time_dealt_to_a_matter_come_after_hours() -> None:
    # Two red matters of one post (red answers within the hour, on the clock): one at 10:00 accepted in
    # 15 minutes, one at 17:50 (after the 17:30 close) accepted in 25. Whichever handling a seed deals to
    # the evening one, it is accepted within its hour: a quarter of an hour on the clock, not the next
    # morning's first fifteen working minutes.
    def flood(n: int, at: datetime, accepted_in: timedelta) -> PastMatter:
        due = rules.deadlines("red", TOWN.catalog["T003"], at, TOWN.calendar, TOWN.rules.dispatch)
        return PastMatter(f"m{n}", "T003", "red", "V01", (PastTask(
            task_id=f"t{n}", post="flood-emergency", assignee=TOWN.posts["flood-emergency"].a_holder, via="A",
            dispatched_at=at, respond_by=due.respond_by, resolve_by=due.resolve_by, accepted_at=at + accepted_in,
            completed_at=at + 4 * accepted_in, returned_at=None, merged_at=None, on_time=True),))

    evening = MONDAY.replace(hour=17, minute=50)
    history = History(TOWN.code, MONDAY.replace(hour=0), MONDAY + timedelta(days=1), MONDAY + timedelta(days=3), (
        flood(1, MONDAY.replace(hour=10), timedelta(minutes=15)), flood(2, evening, timedelta(minutes=25))))
    assert rules.in_clock_hours("red", TOWN.catalog["T003"], TOWN.rules.dispatch) == (True, True)
    assert rules.in_clock_hours("orange", TOWN.catalog["T003"], TOWN.rules.dispatch) == (True, False)  # 24h or 3wd
    assert rules.in_clock_hours("yellow", TOWN.catalog["T003"], TOWN.rules.dispatch) == (False, True)
    waits = set()
    for seed in range(8):
        runs = rehearsal.rehearse(history, TOWN, TOWN, times="drawn", seed=seed)
        assert all(r.accepted_at is not None and r.accepted_at <= r.respond_by for r in runs), seed
        (late,) = [r for r in runs if r.request_id == "m2"]
        assert late.completed_at is not None and late.completed_at <= late.resolve_by
        waits.add(late.accepted_at - evening)  # type: ignore[operator]
    assert waits == {timedelta(minutes=15), timedelta(minutes=25)}  # some seed dealt it the morning's handling
