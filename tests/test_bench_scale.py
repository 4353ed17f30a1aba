"""`make bench-scale` at a tiny size, on a stack of its own (it stops and restarts services and
moves consumer groups): the harness runs end to end and reports every figure. No timing is
asserted: the figures of a tiny county on a shared machine say nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.scale.reads import NOT_WALKED, SEARCHES
from devstack.stack import REPO

# Every read endpoint the services had when the harness was written; the harness finds them in
# the OpenAPI documents, so one it forgot (or one that vanished from a document) fails here.
READS = {
    "intake": ["/metrics", "/readyz", "/v1/catalog", "/v1/personal-data-reads", "/v1/requests/{ticket_no}",
               "/v1/requests/{ticket_no}/sms",
               "/v1/requests/{ticket_no}/photos/{attachment_id}", "/v1/tasks/{task_id}/matter"],
    "dispatch": ["/metrics", "/readyz", "/v1/board", "/v1/extensions", "/v1/holders", "/v1/suspensions",
                 "/v1/task-search", "/v1/tasks", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/photos/{attachment_id}"],
    "enforcement": ["/metrics", "/readyz", "/v1/cases", "/v1/cases/{case_id}", "/v1/cases/{case_id}/evidence/{attachment_id}",
                    "/v1/inspections", "/v1/inspections/{inspection_id}",
                    "/v1/inspections/{inspection_id}/evidence/{attachment_id}", "/v1/plans", "/v1/plans/{plan_id}"],
    "appraisal": ["/metrics", "/readyz", "/v1/alerts", "/v1/bonus", "/v1/county/rankings", "/v1/hotspots", "/v1/rankings",
                  "/v1/rates", "/v1/scores", "/v1/scores/{subject_type}/{subject_id}/{period}/ledger"],
}
# Every page of the console a person loads (issue #17), as the harness names them: the harness
# finds the pages in the console's routes, so one without a caller fails the run, and one that
# vanished fails here.
PAGES = [
    "GET /signin", "GET /board", "GET /board/live", "GET /board/tasks/{task_id}",
    "GET /board/tasks/{task_id} (without the matter)", "GET /board/tasks/{task_id} (with photos)",
    "GET /board/export.csv", "GET /tasks", "GET /tasks/{task_id}",
    "GET /tasks/export.csv", "GET /intake",
    "GET /status", "POST /status", "GET /enforcement", "GET /enforcement/inspections/{inspection_id}",
    "GET /enforcement/inspections/{inspection_id} (with photos)", "GET /enforcement/cases/{case_id}",
    "GET /enforcement/cases/{case_id} (with photos)", "GET /enforcement/alerts", "GET /appraisal", "GET /appraisal/bonus.csv",
    "GET /appraisal/bulletin", "GET /county", "GET /suspensions", "GET /tasks/{task_id}/suspension",
    "GET /audit", "GET /audit (person)", "GET /audit (matter)", "GET /audit (action)", "GET /audit (week)",
    "GET /audit.csv", "GET /map", "GET /hotspots", "GET /rehearsal", "GET /deliveries",
]
STAGES = ["empty", "one_month", "all_months"]
DOWNLOADS = ["GET /board/export.csv", "GET /tasks/export.csv", "GET /appraisal/bonus.csv", "GET /audit.csv"]
MAP_BACKLOG = 20  # open located matters filed for the map before the last stage: small, the run stays short


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("scale")
    run = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--towns", "2", "--matters-per-town", "60", "--months", "2",
         "--repetitions", "3", "--health-samples", "10", "--timeout-hours", "0.1", "--quiet-wait", "0",
         "--map-backlog", str(MAP_BACKLOG),
         "--results", str(out),
         "--no-plot"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    [written] = out.glob("scale-*.json")
    return json.loads(written.read_text())  # type: ignore[no-any-return]


@pytest.mark.timeout(660)
def test_every_read_endpoint_is_timed_in_every_stage(result: dict[str, Any]) -> None:
    expected = {f"{service} GET {path}" for service, paths in READS.items() for path in paths}
    expected |= {f"{service} GET {path} [{search}]" for (service, path), searches in SEARCHES.items()
                 for search in searches}  # the task lists' representative searches (issue #27)
    for stage in STAGES:
        timed = result["reads"][stage]
        assert expected <= set(timed), f"{stage}: missing {sorted(expected - set(timed))}"
        # A read listed as not walked, with its reason (reads.NOT_WALKED), is not timed.
        assert not {f"{service} GET {path}" for service, path in NOT_WALKED} & set(timed)
        for name, figures in timed.items():
            assert all(positive(figures[p]) for p in ("p50", "p95", "p99", "n")), (stage, name, figures)


@pytest.mark.timeout(660)
def test_loaded_reads_find_what_the_history_holds(result: dict[str, Any]) -> None:
    """The parameters come from the generated history: with it loaded, every read answers 200
    (a 404 would mean the databases and the events disagree)."""
    for stage in ("one_month", "all_months"):
        failing = {n: t["statuses"] for n, t in result["reads"][stage].items() if t["statuses"] != [200]}
        assert not failing, f"{stage}: {failing}"


@pytest.mark.timeout(660)
def test_every_console_page_is_timed_in_every_stage_as_its_person(result: dict[str, Any]) -> None:
    expected = {f"console {page}" for page in PAGES}
    for stage in STAGES:
        timed = result["pages"][stage]
        assert expected <= set(timed), f"{stage}: missing {sorted(expected - set(timed))}"
        for name, figures in timed.items():
            assert all(positive(figures[p]) for p in ("p50", "p95", "p99", "n")), (stage, name, figures)
    logins = {t["who"]: t["login"] for t in result["pages"]["all_months"].values()}
    assert logins["citizen"] is None
    # The generated towns' staff sign in as t<nnn>-<staff id>, the county's by their id.
    assert all(login.startswith("t000-s") for who, login in logins.items()
               if who not in ("citizen", "county", "auditor"))
    assert logins["county"].startswith("c") and logins["auditor"].startswith("c")  # the county's auditor


@pytest.mark.timeout(660)
def test_loaded_console_pages_answer_200(result: dict[str, Any]) -> None:
    """Signed in as the right person, with the history's task, inspection, case, ticket and
    access code, every page answers 200 (a 303 would be a lost sign-in, a 403 the wrong person)."""
    for stage in ("one_month", "all_months"):
        failing = {n: t["statuses"] for n, t in result["pages"][stage].items() if t["statuses"] != [200]}
        assert not failing, f"{stage}: {failing}"
    # Each lookup another matter: a ticket looked up 10 times on the empty system (every code wrong
    # there) would be refused (429) for an hour, in the loaded stages too.
    for stage in STAGES:
        lookup = result["pages"][stage]["console POST /status"]
        assert lookup["distinct_forms"] > lookup["n"], lookup
    target = result["targets"]["console_page_p95_le_300ms"]
    assert target["broken"] == {"one_month": {}, "all_months": {}}
    assert set(target["worst_p95_ms"]) == {"one_month", "all_months"}
    # Issue #27: the task page with its matter against the same page without (intake not asked).
    matter = result["targets"]["matter_adds_le_20ms_to_task_page_p95"]
    assert set(matter["added"]) == {"one_month", "all_months"} and matter["target_ms"] == 20.0


@pytest.mark.timeout(660)
def test_downloads_are_judged_by_their_first_byte_with_their_whole_length_beside(result: dict[str, Any]) -> None:
    for stage in STAGES:
        for page in DOWNLOADS:
            figures = result["pages"][stage][f"console {page}"]
            assert figures["download"] and figures["judged"] == "time to first byte", (stage, page)
            whole = figures["to_last_byte"]
            assert whole["n"] == figures["n"] and whole["p50"] >= figures["p50"], (stage, page, figures)
            assert figures["bytes"] > 0 and figures["rows"] >= 1 and positive(figures["rows_per_s"]), (stage, page)
        assert not result["pages"][stage]["console GET /board"].get("download")
    downloads = result["targets"]["console_page_p95_le_300ms"]["downloads"]
    for stage in ("one_month", "all_months"):
        assert set(downloads[stage]) == {f"console {page}" for page in DOWNLOADS}
        audit = downloads[stage]["console GET /audit.csv"]
        assert audit["rows"] > 1 and audit["last_byte_p95_ms"] >= 0  # the trail's records, the header first


@pytest.mark.timeout(660)
def test_the_map_is_timed_with_the_backlog_filed_before_the_last_stage(result: dict[str, Any]) -> None:
    backlog = result["map_backlog"]
    assert backlog["filed"] == MAP_BACKLOG and backlog["town"] == result["read_parameters"]["town"]
    assert backlog["open_located_tasks_in_town"] >= MAP_BACKLOG
    drawn = backlog["points_drawn"]
    assert set(drawn) == set(STAGES)
    # Drawn on the map: every open located task of the town, the backlog's among them (the map
    # draws up to 1,000); filed after the first month's timings, so only the last stage has them.
    assert drawn["all_months"] == min(backlog["open_located_tasks_in_town"], 1000)
    assert drawn["all_months"] >= drawn["one_month"] + MAP_BACKLOG
    assert drawn["empty"] == 0


@pytest.mark.timeout(660)
def test_inspections_and_cases_with_evidence_show_their_photos(result: dict[str, Any]) -> None:
    for stage in ("one_month", "all_months"):
        for page in ("inspections/{inspection_id}", "cases/{case_id}"):
            figures = result["pages"][stage][f"console GET /enforcement/{page} (with photos)"]
            assert figures["shown"]["thumbnail"] >= 1, (stage, page, figures)
    assert result["loading"]["photo_objects_put"] > 0


def test_a_console_page_without_a_caller_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.scale import pages
    from bench.scale.reads import MissingParameter
    from devstack.county_gen import make_county

    make_county(tmp_path, 1)
    routes = pages.console_get_routes(tmp_path)
    values = {"task_id": "t", "inspection_id": "i", "case_id": "c", "period": "2026-10", "matter_off": "off",
              "audit_actor": "s", "ticket_no": "n", "audit_action_dispatch": "task.accept", "audit_from": "2026-10-08",
              "audit_to": "2026-10-14", "photo_task_id": "p", "photo_inspection_id": "pi", "photo_case_id": "pc"}
    matters = [{"ticket_no": f"n{i}", "code": f"k{i}"} for i in range(3)]
    loads = {load.name.removeprefix("console "): load for load in pages.page_loads(routes, values, matters)}
    assert set(loads) == set(PAGES)
    assert loads["GET /board/tasks/{task_id} (without the matter)"].params == {"matter": "off"}
    assert loads["GET /board/tasks/{task_id} (with photos)"].url == "/board/tasks/p"  # the photographed task
    assert loads["GET /enforcement/inspections/{inspection_id} (with photos)"].url == "/enforcement/inspections/pi"
    assert loads["GET /enforcement/cases/{case_id} (with photos)"].url == "/enforcement/cases/pc"
    # One place says what a download is (timed to its first byte): the console's CSV routes.
    assert sorted(name for name, load in loads.items() if load.download) == sorted(DOWNLOADS)
    # Each citizen's lookup is another matter (intake's wrong-code guard is per ticket).
    assert loads["POST /status"].forms == [{"ticket": f"n{i}", "code": f"k{i}"} for i in range(3)]
    with pytest.raises(MissingParameter, match="period"):
        pages.page_loads(routes, {k: v for k, v in values.items() if k != "period"}, matters)
    with pytest.raises(pages.UnknownPage, match=r"no longer has: \['/tasks'\]"):
        pages.page_loads([r for r in routes if r != "/tasks"], values, matters)
    monkeypatch.delitem(pages.VISITS, "/county")
    with pytest.raises(pages.UnknownPage, match=r"no caller .*\['/county'\]"):
        pages.page_loads(routes, values, matters)


@pytest.mark.timeout(660)
def test_health_replay_and_loading_figures_are_reported(result: dict[str, Any]) -> None:
    assert set(result["health_under_load"]) == set(READS)
    for health in result["health_under_load"].values():
        assert all(positive(health[p]) for p in ("p50", "p95", "p99", "n", "heavy_calls")), health
        assert health["while"].split(" GET ")[1].startswith("/v1/")
    replay = result["replay"]
    assert positive(replay["bare"]["rate"]) and positive(replay["rebuild"]["rate"])
    # The whole history on appraisal's topics at least (dispatch's supervision may add a level
    # between the two reads; evidence's topic is for a county department's subscriber, not appraisal's).
    from bench.scale.topics import CONSUMED

    by_topic = result["loading"]["events_by_topic"]
    assert sum(by_topic.values()) == result["loading"]["events"]
    assert "enforcement.evidence.recorded.v1" in by_topic  # the history's evidence photos (issue #29)
    on_appraisals = sum(n for topic, n in by_topic.items() if topic in CONSUMED["appraisal"])
    assert replay["bare"]["messages"] >= on_appraisals
    assert replay["rebuild"]["replayed"] >= on_appraisals
    assert result["loading"]["matters"] == 2 * 60
    # The history's requests' audit records, each chained by its service's sealing pass (the
    # harness's own requests may have added a few).
    assert positive(result["loading"]["audit_records"])
    assert sum(result["loading"]["audit_chains"].values()) >= result["loading"]["audit_records"]
    assert set(result["targets"]["audit_search_p95_le_100ms"]) >= {"pass", "worst_p95_ms", "records"}
    assert positive(result["loading"]["events"])
    assert all(isinstance(t["pass"], bool) for t in result["targets"].values())  # two months: all measured


@pytest.mark.timeout(660)
def test_every_stage_is_measured_on_vacuumed_databases(result: dict[str, Any]) -> None:
    assert set(result["settled_before"]) == set(STAGES)
    for stage, settled in result["settled_before"].items():
        assert settled["vacuum_seconds"] >= 0, (stage, settled)
        assert settled["busy_share_when_measured"] is None  # --quiet-wait 0: no wait for a quiet machine
    assert result["quiet_before_health"]["quiet_wait_seconds"] == 0


def test_the_busy_share_is_the_cores_time_outside_idle_and_iowait(tmp_path: Path) -> None:
    from bench.scale.settle import busy_share, cpu_times

    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n")
    before = cpu_times(stat)
    assert before == (150, 1000)
    stat.write_text("cpu  190 0 80 870 60 0 0 0 0 0\ncpu0 95 0 40 435 30 0 0 0 0 0\n")
    assert busy_share(before, cpu_times(stat)) == 120 / 200
    assert busy_share(before, before) == 0.0


@pytest.mark.timeout(660)
def test_the_plot_is_drawn_from_the_result(result: dict[str, Any], tmp_path: Path) -> None:
    from bench.scale.report import plot

    plot(result, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_generated_access_codes_are_ones_intake_accepts(tmp_path: Path) -> None:
    """A citizen's lookup on /status posts the history's code: intake must take it as well-formed."""
    from datetime import date

    from bench.scale import history
    from devstack.county_gen import make_county
    from intake import rules
    from townflow_shared.county import load_county

    make_county(tmp_path, 1)
    [town] = load_county(tmp_path).towns.values()
    month = history.town_month(town, date(2026, 10, 1), 300, 2026, ends_history=False)
    assert all(rules.normalise_access_code(m.access_code) == m.access_code for m in month.matters)
