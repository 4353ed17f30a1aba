"""Every page of the staff console (issue #17), timed as the person who loads it: signed in through
the console's own form (GET /signin for the session's CSRF token, POST /signin), then each page
called like a browser would, without following redirects (a page that sends its person to sign
in shows up as a 303, not as a fast 200). The pages come from the console's FastAPI routes, so a
new page fails loudly here until it is given a caller in VISITS."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from console.app import create_app
from console.settings import ConsoleSettings
from devstack.demo_accounts import DEMO_PASSWORD
from townflow_shared.county import County

from .reads import MissingParameter, summary_ms

# GET routes of the console that are not pages a person loads.
NOT_PAGES = {
    "/": "redirects to the person's first page, which is timed as itself",
    "/healthz": "probe", "/readyz": "probe", "/metrics": "Prometheus",
    "/signin/oidc": "redirects to the county's OIDC provider (this harness signs in with local accounts)",
    "/signin/oidc/callback": "the provider's answer to a sign-in begun there",
    # Issue #29: a photo a page shows, streamed on from the service that keeps it; what it costs is
    # the service's read, which the reads time (intake GET /v1/requests/{ticket_no}/photos/...).
    "/photos/{kind}/{owner}/{attachment_id}": "a photo shown in a page, not a page: the service's read is timed",
}
CITIZEN = "citizen"  # no sign-in: /signin and /status are for anyone
WITHOUT_MATTER = "without the matter"
WITH_PHOTOS = "with photos"
MAP_POINT = "map-point"  # a matter drawn on the map (the console's _map.html)
THUMBNAIL = "thumbnail"  # a photo shown on a page (the console's photo_strip)


def is_download(path: str) -> bool:
    """A streamed CSV download (the console's `*.csv` routes, StreamingResponses of up to tens of
    thousands of rows): a person sees it begin at its first byte, so that is what is judged
    against the page budget; its whole length is reported beside it (`time_download`). The one
    place that decides what is a download: the figures carry it (`download`), the verdict reads it."""
    return path.endswith(".csv")


@dataclass(frozen=True)
class Visit:
    """How one page is loaded: by whom (a persona of `personas`), with which query parameters
    (page parameter -> name in the harness's values; path parameters are filled by their own
    name), and, for a lookup posted from a form, the form's fields (besides the CSRF token) ->
    names in a citizen's record: each call is another citizen's matter (`page_loads`)."""

    who: str
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)
    label: str = ""  # tells two visits of one page by the same method apart in the figures
    path: Mapping[str, str] = field(default_factory=dict)  # a path parameter -> another name in values
    # What the page must show, counted in its last answer: elements by their data-testid
    # (the map's points, a page's thumbnails); the figures report each count under `shown`.
    shows: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return "POST" if self.form else "GET"


# Who loads each page. Period pages are given the first month, as the period reads are (the
# month the history holds; with no period the console shows the current month, which holds none).
VISITS: dict[str, list[Visit]] = {
    "/signin": [Visit(CITIZEN)],
    "/board": [Visit("command_centre")],
    "/board/live": [Visit("command_centre")],
    # The task page with the matter and its citizen from intake (each read recorded there), and the
    # same page without asking intake (`?matter=off`): issue #27's "adds <= 20 ms to the p95".
    # And a task whose matter was filed with photos and completed with an after photo (issue #29):
    # the closure check's before and after side by side, their thumbnails listed.
    "/board/tasks/{task_id}": [Visit("command_centre"),
                               Visit("command_centre", query={"matter": "matter_off"}, label=WITHOUT_MATTER),
                               Visit("command_centre", path={"task_id": "photo_task_id"}, label=WITH_PHOTOS)],
    "/tasks": [Visit("assignee")],
    "/tasks/{task_id}": [Visit("assignee")],
    "/board/export.csv": [Visit("command_centre")],
    "/tasks/export.csv": [Visit("assignee")],
    "/intake": [Visit("clerk")],
    # The empty form, and the lookup a citizen posts (ticket and access code never in the address).
    # Intake refuses a ticket for an hour after 10 wrong codes, and on the empty system every code
    # is wrong (no ticket exists yet): the same ticket looked up 31 times there would answer 429
    # in the loaded stages too. So each call looks up another matter, with its own access code.
    "/status": [Visit(CITIZEN), Visit(CITIZEN, form={"ticket": "ticket_no", "code": "code"})],
    "/enforcement": [Visit("officer")],
    # An inspection and a case without evidence, and ones with evidence photos (issue #29: photos
    # taken during the visit, photos documenting the case's filing), their thumbnails listed.
    "/enforcement/inspections/{inspection_id}": [
        Visit("officer"), Visit("officer", path={"inspection_id": "photo_inspection_id"}, label=WITH_PHOTOS,
                                shows=(THUMBNAIL,))],
    "/enforcement/cases/{case_id}": [
        Visit("officer"), Visit("officer", path={"case_id": "photo_case_id"}, label=WITH_PHOTOS, shows=(THUMBNAIL,))],
    "/enforcement/alerts": [Visit("officer")],
    "/appraisal": [Visit("appraisal_office", query={"period": "period"})],
    "/appraisal/bonus.csv": [Visit("appraisal_office", query={"period": "period"})],
    "/appraisal/bulletin": [Visit("appraisal_office", query={"period": "period"})],
    "/county": [Visit("county", query={"period": "period"})],
    "/suspensions": [Visit("command_centre")],
    "/deliveries": [Visit("command_centre")],  # notify's delivery log (issue #31)
    # Place (issue #30): the town's map with its open located matters (before the last stage the
    # harness files a backlog of them: backlog.py), the points it drew counted; the month's hotspots.
    "/map": [Visit("command_centre", shows=(MAP_POINT,))],
    "/hotspots": [Visit("command_centre", query={"period": "period"})],
    # 改革预演 (issue #32): the form, prefilled with the town's own layout files.
    "/rehearsal": [Visit("appraisal_office")],
    "/tasks/{task_id}/suspension": [Visit("assignee")],
    # The auditor's search of the four services' audit trails (issue #28): the newest records, by
    # person, matter, action, a week (the history's oldest), and the export.
    "/audit": [Visit("auditor"), Visit("auditor", query={"actor": "audit_actor"}, label="person"),
               Visit("auditor", query={"target": "ticket_no"}, label="matter"),
               Visit("auditor", query={"action": "audit_action_dispatch"}, label="action"),
               Visit("auditor", query={"from": "audit_from", "to": "audit_to"}, label="week")],
    "/audit.csv": [Visit("auditor")],
}


class UnknownPage(LookupError):
    """A console page with no caller in VISITS (or a caller for a page that is gone)."""


@dataclass(frozen=True)
class PageLoad:
    path: str           # the route as the console declares it
    url: str            # with its path parameters filled in
    visit: Visit
    params: dict[str, str]
    forms: list[dict[str, str]]  # one per call, in turn (none for a GET)

    @property
    def name(self) -> str:
        return f"console {self.visit.method} {self.path}" + (f" ({self.visit.label})" if self.visit.label else "")

    @property
    def download(self) -> bool:
        return is_download(self.path)


def console_get_routes(town_dir: Path) -> list[str]:
    """The GET routes of the console's app as create_app builds them, from the OpenAPI document
    FastAPI makes of its routes (the console serves none: `openapi_url=None`; the probes are left
    out of it). Only the route table is read: the lifespan never runs, the secret signs nothing."""
    app = create_app(ConsoleSettings(town_dir=town_dir, jwt_secret=SecretStr(secrets.token_urlsafe(32))))
    return sorted(path for path, operations in app.openapi()["paths"].items() if "get" in operations)


def page_loads(routes: list[str], values: Mapping[str, str], citizens: list[dict[str, str]]) -> list[PageLoad]:
    """Every page of `routes` with its visits, parameters from `values`, posted forms from
    `citizens` (one record a call, in turn); fails on a page without a caller, a caller without
    its page, or a parameter without a value."""
    pages = [p for p in routes if p not in NOT_PAGES]
    if missing := [p for p in pages if p not in VISITS]:
        raise UnknownPage(f"console pages with no caller in bench/scale/pages.py VISITS: {missing}")
    if gone := sorted(set(VISITS) - set(pages)):
        raise UnknownPage(f"VISITS names pages the console no longer has: {gone}")

    def value(path: str, name: str, given: Mapping[str, str] = values) -> str:
        if name not in given:
            raise MissingParameter(f"console {path}: no value for {name!r}")
        return given[name]

    loads = []
    for path in pages:
        for visit in VISITS[path]:
            url = path
            for name in re.findall(r"\{(\w+)\}", path):
                url = url.replace("{" + name + "}", value(path, visit.path.get(name, name)))
            if visit.form and not citizens:
                raise MissingParameter(f"console POST {path}: no citizen's matter to look up")
            forms = [{k: value(path, v, citizen) for k, v in visit.form.items()}
                     for citizen in (citizens if visit.form else [])]
            loads.append(PageLoad(path, url, visit, {k: value(path, v) for k, v in visit.query.items()}, forms))
    return loads


def _narrowest(holders: list[tuple[str, list[str]]], role: str) -> str:
    """The holder of `role` with the fewest other roles (first by id): the person whose page it is,
    not an administrator who happens to hold every role."""
    found = sorted((len(roles), sid) for sid, roles in holders if role in roles)
    if not found:
        raise LookupError(f"nobody holds {role!r}")
    return found[0][1]


def personas(county: County, town_code: str, assignee: str) -> dict[str, str | None]:
    """The console login of each persona of VISITS, from one town's and the county's accounts."""
    town = county.towns[town_code]
    login_of = {a.staff: a.login for a in town.accounts.values()}
    staff = [(s.id, list(s.roles)) for s in town.staff.values()]
    chosen = {"command_centre": _narrowest(staff, "command_centre"), "clerk": _narrowest(staff, "clerk"),
              "officer": _narrowest(staff, "officer"), "appraisal_office": _narrowest(staff, "appraisal_admin"),
              "assignee": assignee}
    logins: dict[str, str | None] = {who: login_of[sid] for who, sid in chosen.items()}
    assert county.info is not None, "a generated county has its county.yaml"
    county_login = {a.staff: a.login for a in county.info.accounts}
    logins["county"] = county_login[_narrowest([(s.id, list(s.roles)) for s in county.info.staff],
                                               "county_reader")]
    logins["auditor"] = county_login[_narrowest([(s.id, list(s.roles)) for s in county.info.staff], "auditor")]
    logins[CITIZEN] = None
    return logins


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    if match is None:
        raise ValueError("no CSRF token on the page")
    return match.group(1)


async def signed_in(base: str, login: str | None) -> httpx.AsyncClient:
    """A browser-like client with the person's session cookie (a citizen's anonymous one for None)."""
    client = httpx.AsyncClient(base_url=base, timeout=120, follow_redirects=False)
    try:
        page = (await client.get("/signin")).raise_for_status()
        if login is not None:
            answer = await client.post("/signin", data={"csrf": csrf_of(page.text), "login": login,
                                                        "password": DEMO_PASSWORD, "next": "/"})
            if answer.status_code != 303:
                raise RuntimeError(f"console sign-in as {login}: {answer.status_code}")
    except BaseException:
        await client.aclose()
        raise
    return client


def shown(load: PageLoad, html: str) -> dict[str, int]:
    """How many of each element the visit expects the page to show (`Visit.shows`)."""
    return {testid: html.count(f'data-testid="{testid}"') for testid in load.visit.shows}


async def time_page(client: httpx.AsyncClient, load: PageLoad, repetitions: int) -> dict[str, Any]:
    """`repetitions` sequential loads (after one to warm the connection), each read to its end; a
    posted form carries the session's CSRF token, read from the page the form is on. A download
    is timed as one (`time_download`)."""
    if load.download:
        return await time_download(client, load, repetitions)
    if load.forms:
        csrf = csrf_of((await client.get(load.url)).text)
        forms = itertools.cycle(load.forms)

        async def call() -> httpx.Response:
            return await client.post(load.url, data={"csrf": csrf, **next(forms)})
    else:
        async def call() -> httpx.Response:
            return await client.get(load.url, params=load.params)
    response = await call()
    samples, statuses = [], set()
    for _ in range(repetitions):
        started = time.perf_counter()
        response = await call()
        samples.append(1000 * (time.perf_counter() - started))
        statuses.add(response.status_code)
    return _figures(load, samples, statuses) | ({"shown": shown(load, response.text)} if load.visit.shows else {})


async def time_download(client: httpx.AsyncClient, load: PageLoad, repetitions: int) -> dict[str, Any]:
    """A streamed download, as a person sees it: it has begun once the status line, the headers
    and the first chunk of the body are in (time to first byte: the figures' p50/p95/p99, judged
    against the page budget); reported beside it, not judged: the time to its last byte, its
    bytes, its rows (lines, the header's included) and rows/s (over the median time to the last byte)."""
    async def call() -> tuple[float, float, int, int, int]:
        started = time.perf_counter()
        first, size, lines = None, 0, 0
        async with client.stream("GET", load.url, params=load.params) as response:
            async for chunk in response.aiter_bytes():
                first = first or time.perf_counter()
                size, lines = size + len(chunk), lines + chunk.count(b"\n")
        ended = time.perf_counter()
        return 1000 * ((first or ended) - started), 1000 * (ended - started), size, lines, response.status_code

    await call()
    first_byte, last_byte, statuses = [], [], set()
    size = lines = 0
    for _ in range(repetitions):
        to_first, to_last, size, lines, status = await call()
        first_byte.append(to_first)
        last_byte.append(to_last)
        statuses.add(status)
    whole = summary_ms(last_byte)
    return _figures(load, first_byte, statuses) | {
        "download": True, "judged": "time to first byte", "to_last_byte": whole, "bytes": size, "rows": lines,
        "rows_per_s": round(lines / (whole["p50"] / 1000), 1) if whole["p50"] else None}


def _figures(load: PageLoad, samples: list[float], statuses: set[int]) -> dict[str, Any]:
    return {"path": load.path, "method": load.visit.method, "who": load.visit.who, "params": load.params,
            "form": sorted(load.visit.form), "distinct_forms": len(load.forms), "statuses": sorted(statuses),
            **summary_ms(samples)}


def timed_line(name: str, figures: dict[str, Any]) -> str:
    """A page's figures in a line of the run's log."""
    line = f"{name}: p50 {figures['p50']} ms, p95 {figures['p95']} ms {figures['statuses']}"
    if figures.get("download"):
        line = (f"{name}: first byte p50 {figures['p50']} ms, p95 {figures['p95']} ms {figures['statuses']}; "
                f"last byte p95 {figures['to_last_byte']['p95']} ms, {figures['bytes']:,} bytes, "
                f"{figures['rows']:,} rows, {figures['rows_per_s']} rows/s")
    return line + "".join(f", {n} {testid}" for testid, n in figures.get("shown", {}).items())


async def time_pages(base: str, loads: list[PageLoad], logins: Mapping[str, str | None], repetitions: int,
                     report: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Every page load timed, each persona signed in once for the stage."""
    clients: dict[str, httpx.AsyncClient] = {}
    timed = {}
    try:
        for who in sorted({load.visit.who for load in loads}):
            clients[who] = await signed_in(base, logins[who])
        for load in loads:
            figures = await time_page(clients[load.visit.who], load, repetitions)
            timed[load.name] = figures | {"login": logins[load.visit.who]}
            report(f"  {timed_line(load.name, figures)} as {logins[load.visit.who] or 'a citizen'}")
    finally:
        for client in clients.values():
            await client.aclose()
    return timed
