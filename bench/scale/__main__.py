"""`make bench-scale` (SPEC §7.1, issues #16 and #17): what grows with the data. A county-year of
matters is generated (history.py), put on the real topics and into the databases (loaders.py,
topics.py); every read endpoint of the services and every page of the staff console (pages.py)
is timed on the empty system, with one month held and with every month held (a download by its
first byte, its whole length reported beside it; the last stage with a backlog of open located
matters filed for the map: backlog.py); `/healthz` while each service's heaviest read runs;
appraisal's rebuild against a bare consumer of the same topics. Writes
bench/results/scale-<time>.json and .png.

    python -m bench.scale [--towns 60] [--matters-per-town 13000] [--months 12] [--seed 2026]
                          [--map-backlog 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from devstack.county_gen import make_county
from devstack.s3 import SeaweedFS
from devstack.stack import SERVICES, Stack
from townflow_shared import db, events
from townflow_shared.county import load_county
from townflow_shared.objects import ObjectStore
from townflow_shared.town import Town

from .. import __main__ as bench_main
from . import auditing, backlog, history, pages, reads, replay, report, settle
from .loading import CONNECTIONS, Loader, Photos
from .topics import CONSUMED, move_group_to_end, wait_for_groups

RESULTS = Path(__file__).resolve().parent.parent / "results"
VERDICTS = {True: "pass", False: "FAIL", None: "not measured at this size"}
AUDIT_RETENTION_DAYS = 400
MAP_PAGE = "console GET /map"
ACTING_ON_HISTORY = ["dispatch", "enforcement"]  # stopped while the history is written (loaders.py)


def start_services(stack: Stack, names: list[str], timeout: float = 600.0) -> None:
    """Stack.start_services with a longer wait: a service reading 60 towns' files on a busy
    machine can take more than its default minute to answer /readyz."""
    for name in names:
        stack.add_service(name)
    started = [p.start(wait=False) for name in names for p in stack.replicas[name] if not p.running]
    for process in started:
        process.wait_ready(timeout)


def log(line: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {line}", flush=True)


def in_temp_folder(prefix: str, run: Callable[[Path], Coroutine[Any, Any, dict[str, Any]]]) -> dict[str, Any]:
    """A database-only bench's run in a folder of its own (its PostgreSQL cluster), removed after."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(folder, 0o755)  # noqa: S103 - PostgreSQL (as `postgres` when we are root) must traverse it
    try:
        return asyncio.run(run(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_result(kind: str, result: dict[str, Any]) -> Path:
    """bench/results/<kind>-<time>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    log(f"written {out}")
    return out


def citizens(first: history.TownMonth) -> list[dict[str, str]]:
    """The first town-month's tickets with their access codes: what citizens look up on /status."""
    return [{"ticket_no": m.ticket_no, "code": m.access_code} for m in first.matters]


def read_values(first: history.TownMonth) -> dict[str, str]:
    """Realistic parameters for every read, by parameter name, from the first town's first month
    (known before anything is loaded: the history is the same for the same seed)."""
    with_case = [m for m in first.matters if any(isinstance(e, events.CaseUpdated) for e in m.events)]
    # A matter with a case but no evidence photos (issue #29) where the month has one (a small run
    # may have only the one case, which carries evidence): the pages without photos.
    matter = next((m for m in with_case if not any(isinstance(e, events.EvidenceRecorded) for e in m.events)),
                  with_case[0])
    task = next(e for e in matter.events if e.type == "dispatch.task.dispatched").data
    inspection = next(e for e in matter.events if e.type == "enforcement.inspection.done").data
    case = next(e for e in matter.events if e.type == "enforcement.case.updated").data
    values = {
        "town": first.town_code, "period": f"{first.month:%Y-%m}", "pool": "50000.00", "group_by": "staff",
        "ticket_no": matter.ticket_no, "code": matter.access_code, "task_id": task.task_id,  # type: ignore[attr-defined]
        "inspection_id": inspection.inspection_id, "case_id": case.case_id,  # type: ignore[attr-defined]
        "plan_id": first.plan.subject, "subject_type": "staff", "subject_id": task.assignee,  # type: ignore[attr-defined]
        "matter_off": "off",  # the task page without its matter (issue #27: the same page both ways)
        # The task lists' representative searches (reads.SEARCHES): a ticket's beginning (the
        # town and the day), a place's text, a village, an item, a colour, a status.
        "search_ticket": matter.ticket_no[:17], "search_place": task.location.split("-")[-1],  # type: ignore[attr-defined]
        "search_village": task.village, "search_item": task.item_code,  # type: ignore[attr-defined]
        "search_colour": "red", "search_status": "returned", "search_open": "open", "search_ended": "ended",
        "search_yes": "true",
        # Place (issue #30): the map's page of a town's open located tasks, and a located matter's cell.
        "map_limit": "1000",
        "search_cell": next((m.events[0].data.grid_cell for m in first.matters  # type: ignore[attr-defined]
                             if m.events[0].data.grid_cell), f"{first.town_code}001001"),  # type: ignore[attr-defined]
    }
    # A matter filed with photos and completed with an after photo (issue #29), for the photos' reads:
    # its ticket and task there, not the ones above.
    photographed, completion = next((m, e) for m in first.matters for e in m.events
                                    if m.photos and isinstance(e, events.TaskCompleted) and e.data.attachments)
    intake_photo, task_photo = ("intake /v1/requests/{ticket_no}/photos/{attachment_id}",
                                "dispatch /v1/tasks/{task_id}/photos/{attachment_id}")
    values |= {f"{intake_photo}:ticket_no": photographed.ticket_no, f"{intake_photo}:code": photographed.access_code,
               f"{intake_photo}:attachment_id": str(photographed.photos[0]),
               f"{task_photo}:task_id": completion.data.task_id, "photo_task_id": completion.data.task_id,
               f"{task_photo}:attachment_id": completion.data.attachments[0].attachment_id}
    # An inspection and a case with evidence photos (issue #29): their pages and their evidence's reads.
    on_inspection = next(e.data for m in first.matters for e in m.events
                         if isinstance(e, events.EvidenceRecorded) and e.data.inspection_id)
    on_case = next(e.data for m in first.matters for e in m.events
                   if isinstance(e, events.EvidenceRecorded) and e.data.case_id)
    inspection_evidence, case_evidence = ("enforcement /v1/inspections/{inspection_id}/evidence/{attachment_id}",
                                          "enforcement /v1/cases/{case_id}/evidence/{attachment_id}")
    values |= {"photo_inspection_id": str(on_inspection.inspection_id), "photo_case_id": str(on_case.case_id),
               f"{inspection_evidence}:inspection_id": str(on_inspection.inspection_id),
               f"{inspection_evidence}:attachment_id": on_inspection.evidence[0].attachment_id,
               f"{case_evidence}:case_id": str(on_case.case_id),
               f"{case_evidence}:attachment_id": on_case.evidence[0].attachment_id}
    return values | auditing.search_values(first, values)


async def time_every_read(stack: Stack, values: dict[str, str], repetitions: int) -> dict[str, dict[str, Any]]:
    token = stack.token(None, "c001", ["county_admin"])
    clients = {name: httpx.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {token}"})
               for name in stack.services}
    try:
        every: list[reads.Read] = []
        for name, process in stack.services.items():
            every += await reads.read_routes(clients[name], name, process.url, values)
        return await reads.time_reads(clients, every, repetitions, report=log)
    finally:
        for client in clients.values():
            await client.aclose()


@dataclass
class Stages:
    """Every read of the services and every page of the console, timed at each stage of the
    history (`empty`, `one_month`, `all_months`) with the same parameters."""

    stack: Stack
    values: dict[str, str]
    loads: list[pages.PageLoad]
    logins: dict[str, str | None]
    repetitions: int
    quiet_wait: float
    map_backlog: dict[str, Any] = field(default_factory=dict)  # filed before the last stage (backlog.py)
    reads: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    pages: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    settled: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def measure(self, stage: str) -> None:
        assert self.stack.postgres is not None
        log("settling: every database vacuumed and analysed, a checkpoint, a quiet machine")
        self.settled[stage] = await settle.settle([self.stack.postgres.dsn(name) for name in SERVICES],
                                                   self.quiet_wait, report=log)
        self.reads[stage] = await time_every_read(self.stack, self.values, self.repetitions)
        assert self.stack.console is not None
        log(f"every console page, {self.repetitions} times each, as the person who loads it")
        self.pages[stage] = await pages.time_pages(self.stack.console.url, self.loads, self.logins,
                                                   self.repetitions, report=log)

    def same_as(self, stage: str, measured: str) -> None:
        """With one month the last stage is the first loaded one: its figures, not a second run."""
        self.reads[stage], self.pages[stage] = self.reads[measured], self.pages[measured]
        self.settled[stage] = self.settled[measured]


async def health_while_heaviest(stack: Stack, values: dict[str, str], timed: dict[str, dict[str, Any]],
                                samples: int) -> dict[str, Any]:
    token = stack.token(None, "c001", ["county_admin"])
    result = {}
    async with httpx.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {token}"}) as client:
        for name, process in stack.services.items():
            mine = {r.path: r for r in await reads.read_routes(client, name, process.url, values)}
            heaviest = max((t for t in timed.values()
                            if t["service"] == name and t["path"] in mine and t["path"].startswith("/v1/")),
                           key=lambda t: t["p95"])
            result[name] = await reads.health_under_load(client, process.url, mine[heaviest["path"]], samples)
            log(f"  {name} /healthz while {heaviest['path']} runs: p99 {result[name]['p99']} ms")
    return result


async def caught_up(stack: Stack, timeout: float) -> float:
    """Dispatch and enforcement resume after the history; every consumer group catches up."""
    assert stack.kafka is not None
    for name in ACTING_ON_HISTORY:
        skipped = await move_group_to_end(stack.kafka.bootstrap, name, CONSUMED[name])
        log(f"  {name}'s consumer group moved past the {skipped:,} history messages it would act on again")
    start_services(stack, ACTING_ON_HISTORY)
    return await wait_for_groups(stack.kafka.bootstrap, list(CONSUMED), timeout, report=log)


async def audit_sealed(stack: Stack, timeout: float) -> dict[str, int]:
    """The history's audit records chained by the services' sealing passes and published: each
    service's chain's length."""
    assert stack.postgres is not None
    started = time.monotonic()
    chains = await auditing.wait_sealed({s: stack.postgres.dsn(s) for s in auditing.AUDITED}, timeout, report=log)
    log(f"audit records sealed and published in {time.monotonic() - started:.0f}s; the chains: {chains}")
    return chains


async def file_map_backlog(stack: Stack, town: Town, args: argparse.Namespace) -> dict[str, Any]:
    """The town's backlog of open located matters, filed through intake by its clerk (backlog.py),
    before the last stage's timings: the map is timed with them on it."""
    if not args.map_backlog:
        return {"town": town.code, "filed": 0}
    assert stack.postgres is not None
    clerk = min((len(s.roles), s.id) for s in town.staff.values() if "clerk" in s.roles)[1]
    token = stack.token("intake", clerk, town.staff[clerk].roles, town=town.code)
    log(f"a backlog of {args.map_backlog:,} open located matters for the map, filed in {town.code}")
    return await backlog.file_backlog(stack.services["intake"].url, token, town, args.map_backlog, args.seed,
                                      stack.postgres.dsn("dispatch"), args.timeout_hours * 3600, report=log)


def monthly_counts(total: int, months: int) -> list[int]:
    return [total // months + (1 if i < total % months else 0) for i in range(months)]


def pause_acting_on_history(stack: Stack) -> None:
    for name in ACTING_ON_HISTORY:
        stack.services[name].stop()


async def write_history(stack: Stack, args: argparse.Namespace, towns: list[Town], months: list[date],
                        stages: Stages) -> dict[str, Any]:
    """Every town-month into the databases and onto the topics; every read and page timed once
    the first month is held and once every month is. What the writing took."""
    assert stack.kafka is not None and stack.postgres is not None
    counts = monthly_counts(args.matters_per_town, args.months)
    pools = {name: await db.create_pool(stack.postgres.dsn(name), 1, CONNECTIONS + 1)
             for name in ("intake", "dispatch", "enforcement")}
    assert stack.s3 is not None and stack.s3_bucket is not None
    photos = Photos(ObjectStore(stack.s3.endpoint, stack.s3_bucket, stack.s3.access_key, stack.s3.secret_key),
                    {towns[0].code})
    loader = Loader(stack.kafka.bootstrap, pools, len(towns) * args.matters_per_town, photos, report=log)
    try:
        async with loader:
            for i, month in enumerate(months):
                for town in towns:
                    await loader.write(town, month, counts[i], args.seed, ends_history=i == len(months) - 1)
                if i == 0:
                    log(f"{month:%Y-%m} loaded; waiting for every consumer")
                    log(f"caught up in {await caught_up(stack, args.timeout_hours * 3600):.0f}s")
                    chains = await audit_sealed(stack, args.timeout_hours * 3600)
                    if len(months) == 1:  # the last stage
                        stages.map_backlog = await file_map_backlog(stack, towns[0], args)
                    log("every read and page with one month held")
                    await stages.measure("one_month")
                    if len(months) > 1:
                        pause_acting_on_history(stack)
    finally:
        for pool in pools.values():
            await pool.close()
    if len(months) > 1:
        log("every month loaded; waiting for every consumer")
        log(f"caught up in {await caught_up(stack, args.timeout_hours * 3600):.0f}s")
        chains = await audit_sealed(stack, args.timeout_hours * 3600)
        stages.map_backlog = await file_map_backlog(stack, towns[0], args)
        log("every read and page with every month held")
        await stages.measure("all_months")
    else:
        stages.same_as("all_months", "one_month")
    return loader.summary() | {"seconds_to_caught_up": round(time.monotonic() - loader.started, 1),
                               "audit_chains": chains}


async def replay_both_ways(stack: Stack) -> dict[str, Any]:
    assert stack.kafka is not None and stack.postgres is not None
    log("a bare consumer of appraisal's topics, then appraisal's rebuild of the same topics")
    bare = await replay.bare_consumer(stack.kafka.bootstrap, CONSUMED["appraisal"])
    log(f"  bare consumer: {bare}")
    stack.postgres.create_database("appraisal_rebuild")
    rebuilt = await replay.appraisal_rebuild(stack.service_env("appraisal"), stack.postgres.dsn("appraisal_rebuild"))
    log(f"  rebuild: {rebuilt['messages']:,} messages in {rebuilt['seconds']}s, {rebuilt['rate']}/s")
    return {"bare": bare, "rebuild": rebuilt,
            "share_of_bare": round(rebuilt["rate"] / bare["rate"], 4) if bare["rate"] else None}


async def scale(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack.in_temp_dir(kafka_heap=args.kafka_heap)
    s3 = SeaweedFS(stack.workdir / "s3")  # the photos' (issue #29), stopped with the stack
    stack.use_s3(s3)
    folder = stack.workdir / "county"
    make_county(folder, args.towns)
    stack.extra_env["TOWNFLOW_TOWN_DIR"] = str(folder)
    # A county that keeps its audit trail a year (the least is 180 days): the history's oldest
    # months are not pruned behind a checkpoint while the run goes on.
    stack.extra_env["TOWNFLOW_AUDIT_RETENTION_DAYS"] = str(AUDIT_RETENTION_DAYS)
    county = load_county(folder)
    towns = list(county.towns.values())
    months = history.months(args.last_month, args.months)
    first = history.town_month(towns[0], months[0], monthly_counts(args.matters_per_town, args.months)[0],
                               args.seed, ends_history=args.months == 1)
    values = read_values(first)
    # Before anything starts: a console page without a caller fails the run here, not hours in.
    loads = pages.page_loads(pages.console_get_routes(folder), values, citizens(first))
    logins = pages.personas(county, values["town"], values["subject_id"])
    try:
        s3.start()
        stack.start_infra()
        start_services(stack, list(SERVICES))
        log(f"console started at {stack.start_console().url}")  # start_console returns a running one as is
        stages = Stages(stack, values, loads, logins, args.repetitions, args.quiet_wait)
        log(f"empty system: every read endpoint, {args.repetitions} times each")
        await stages.measure("empty")
        pause_acting_on_history(stack)
        loading = await write_history(stack, args, towns, months, stages)
        log("/healthz while each service's heaviest read runs, once the machine is quiet")
        quiet = await settle.quiet(args.quiet_wait, report=log)
        health = await health_while_heaviest(stack, values, stages.reads["all_months"], args.health_samples)
        return {
            "at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": bench_main.machine(),
            "size": {"towns": args.towns, "matters_per_town": args.matters_per_town, "months": args.months,
                     "first_month": f"{months[0]:%Y-%m}", "seed": args.seed},
            "loading": loading, "read_parameters": values, "reads": stages.reads,
            "pages": stages.pages, "settled_before": stages.settled,
            "page_logins": logins, "console_routes_not_pages": pages.NOT_PAGES,
            "health_under_load": health, "quiet_before_health": quiet,
            # The open points the map drew at each stage (the last with the backlog on it).
            "map_backlog": stages.map_backlog | {"points_drawn": {
                stage: timed[MAP_PAGE]["shown"][pages.MAP_POINT] for stage, timed in stages.pages.items()}},
            "replay": await replay_both_ways(stack),
        }
    finally:
        stack.stop()
        s3.stop()


def previous_month() -> date:
    return datetime.now(UTC).date().replace(day=1) - timedelta(days=1)


def _month(text: str) -> date:
    return datetime.strptime(text, "%Y-%m").date()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--towns", type=int, default=60, help="towns of the county (渠县 has 60)")
    parser.add_argument("--matters-per-town", type=int, default=13_000, help="matters each town files in the run")
    parser.add_argument("--months", type=int, default=12, help="months the matters are spread over")
    parser.add_argument("--last-month", type=_month, default=previous_month(), help="YYYY-MM; default last month")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repetitions", type=int, default=50,
                        help="timed calls of each read endpoint and each console page")
    parser.add_argument("--health-samples", type=int, default=300, help="/healthz calls under load per service")
    parser.add_argument("--quiet-wait", type=float, default=300.0,
                        help="longest wait, before each stage, for the machine to be under 30%% busy (0: none)")
    parser.add_argument("--map-backlog", type=int, default=1000,
                        help="open located matters filed in the first town before the last stage (the map's backlog)")
    parser.add_argument("--kafka-heap", default="1g")
    parser.add_argument("--timeout-hours", type=float, default=8.0, help="longest wait for the consumers")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and the plot go")
    parser.add_argument("--no-plot", action="store_true", help="the JSON only (no matplotlib needed)")
    args = parser.parse_args()
    result = asyncio.run(scale(args))
    result["targets"] = report.targets(result)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"scale-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if not args.no_plot:
        report.plot(result, stem.with_suffix(".png"))
    for name, target in result["targets"].items():
        log(f"target {name}: {VERDICTS[target['pass']]}")
    print(f"wrote {stem}.json" + ("" if args.no_plot else f" and {stem}.png"))


if __name__ == "__main__":
    main()
