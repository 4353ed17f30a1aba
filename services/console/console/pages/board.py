"""指挥中心: the command-centre board, live (a fragment the page's script fetches every 2 s; without
scripts, a reload): counts by colour and status, the newest, overdue, escalated and returned
tasks, the closure checks waiting; redispatch, extensions, closure checks, and after closure the
callback (回访). Merging duplicates is pages/merge.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import labels, task_lists
from ..accounts import Person
from ..charts import stacked_bars
from ..errors import ServiceError
from ..names import TownNames
from ..web import acting_form, checked_form, console_of, guard, render
from .intake import chosen_photos

router = APIRouter()
STATUS_ORDER = ("dispatched", "accepted", "rework", "suspended", "completed", "returned", "closed", "redispatched")


async def board_context(request: Request, person: Person, town: str | None) -> dict[str, Any]:
    services = console_of(request).services
    context: dict[str, Any] = {"town": town, "error": None}
    try:
        board = await services.call(person, "dispatch", "GET", "/v1/board", params={"town": town})
        newest = await services.call(person, "dispatch", "GET", "/v1/tasks", params={"town": town, "limit": 15})
        to_check = await services.call(person, "dispatch", "GET", "/v1/tasks",
                                       params={"town": town, "status": "completed", "limit": 50})
        # The returned tasks with their reasons, and the extension requests waiting (issue #27).
        returned = (await services.call(person, "dispatch", "GET", "/v1/task-search",
                                        params={"town": town, "status": "returned", "limit": 50}))["tasks"]
        extensions = await services.call(person, "dispatch", "GET", "/v1/extensions", params={"town": town})
        # Who may take a returned task, with their load: only when one waits, and for one town (a
        # county role picks its town first; the whole county's holders are too many to list).
        holders = await services.call(person, "dispatch", "GET", "/v1/holders", params={"town": town}) \
            if returned and (town or not person.county_wide) else []
    except ServiceError as exc:
        return context | {"error": exc, "board": None}
    rows = [(labels.COLOURS[colour] + "色",
             [(labels.TASK_STATUSES.get(s, s), board["counts"].get(colour, {}).get(s, 0), f"s-{s}")
              for s in STATUS_ORDER])
            for colour in ("red", "orange", "yellow")]
    # One picker for the bulk redispatch: the town's posts and holders (a town's, never the county's).
    bulk_town = town or person.town
    bulk_picker = target_choices(console_of(request).names.of(bulk_town), holders, bulk_town) \
        if holders and bulk_town else None
    return context | {"board": board, "newest": newest, "to_check": to_check, "returned": returned,
                      "extensions": extensions, "pickers": pickers(request, returned, holders),
                      "bulk_picker": bulk_picker,
                      "chart": stacked_bars(rows, "各颜色任务数（按状态）"), "status_order": STATUS_ORDER}


SLOTS = {"A": "A岗", "B": "B岗", "leader": "模块负责人"}


def pickers(request: Request, returned: list[dict[str, Any]], holders: list[dict[str, Any]]) -> dict[str, Any]:
    """Each returned task's redispatch choices, by name: the town's posts (dispatch assigns their
    A/B holder, shown with who would take it now) and every eligible holder with their open
    tasks, the task's own post first."""
    names = console_of(request).names
    return {task["task_id"]: target_choices(names.of(task["town_code"]), holders, task["town_code"], task.get("post"))
            for task in returned}


def target_choices(here: TownNames, holders: list[dict[str, Any]], town_code: str, first_post: str | None = None
                   ) -> dict[str, list[tuple[str, str]]]:
    """The picker's options for a town: its posts (`post:<code>`, with who would take the next
    task and their load) and its eligible holders (`assignee:<staff id>`, by name, post, slot and
    load), `first_post` first, then by the posts' names. `here` names the town's codes."""
    town_holders = [h for h in holders if h["town_code"] == town_code]
    order = sorted({h["post"] for h in town_holders}, key=lambda p: (p != first_post, here.post(p)))

    def load(h: dict[str, Any]) -> str:
        cap = f"/{h['cap']}" if h["cap"] else ""
        return f"在办{h['open_tasks']}{cap}" + ("，离岗" if h["off_post"] else "")

    posts = [(f"post:{p}", f"{here.post(p)}（将派给{here.staff(nxt['staff_id'])}，{load(nxt)}）")
             for p in order for nxt in [h for h in town_holders if h["post"] == p and h["takes_next"]][:1]]
    people = [(f"assignee:{h['staff_id']}", f"{here.staff(h['staff_id'])} · {here.post(h['post'])}{SLOTS[h['slot']]}"
               f" · {load(h)}") for p in order for h in town_holders if h["post"] == p]
    return {"posts": posts, "people": list(dict.fromkeys(people))}


def redispatch_body(form: Any) -> dict[str, Any]:
    """What dispatch is sent to redispatch: the picker's choice (`post:household`,
    `assignee:s049`), or a post or staff id typed (`by`, `to`), and whether the return was valid."""
    by, _, to = str(form.get("target", "")).partition(":")
    if not to:
        by, to = str(form.get("by", "")), str(form.get("to", "")).strip()
    body: dict[str, Any] = {"post": to} if by == "post" else {"assignee": to}
    body["return_valid"] = form.get("return_valid", "yes") == "yes"
    return body


def _towns(request: Request, person: Person) -> list[tuple[str, str]]:
    """The towns a county role may pick from (a town's staff see their own only)."""
    if not person.county_wide:
        return []
    return [(t.code, t.info.name) for t in console_of(request).county.towns.values()]


async def board_response(request: Request, person: Person, *, town: str | None = None, status: int = 200,
                         done: str | None = None, action_error: dict[str, Any] | None = None,
                         merge_form: dict[str, str] | None = None, merge_error: ServiceError | None = None,
                         bulk: list[dict[str, Any]] | None = None, bulk_form: dict[str, Any] | None = None
                         ) -> Response:
    """The board page, with what was just done or refused (a task's action, a merge, a bulk
    redispatch's outcome per task), and the task search its address asks for."""
    town = town if person.county_wide else None
    merge_form = merge_form or {}
    context, candidates = await asyncio.gather(
        board_context(request, person, town),
        merge_candidates(request, person, "" if merge_form.get("action") == "unmerge" else merge_form.get("ticket_no", "")))
    wanted = task_lists.TaskList.of(request.query_params)
    found: dict[str, Any] | None = None
    search_error = None
    try:
        found = await task_lists.search(request, person, wanted, town)
    except ServiceError as exc:
        search_error = exc
    return render(request, "board.html", status, title="指挥中心", towns=_towns(request, person), done=done,
                  action_error=action_error, merge_form=merge_form, merge_error=merge_error,
                  merge_candidates=candidates, bulk_rows=bulk_rows(context.get("returned") or [], bulk or []),
                  bulk_form=bulk_form or {},
                  wanted=wanted, found=found, search_error=search_error, choices=task_lists.choices(request, town),
                  phases=task_lists.PHASES, **context)


async def merge_candidates(request: Request, person: Person, ticket_no: str) -> list[tuple[str, str]]:
    """The primaries a matter may be merged into, for the merge form's picker: the open matters
    of its item and village (dispatch's open tasks of both, the matter itself left out), each as
    ticket number · item · village · status. Dispatch alone is asked, its task of the matter
    giving the item and village: intake's read of a matter would carry (and record a read of) the
    citizen's personal data, which a picker does not need. Empty when no ticket is given, the
    matter has no task yet or dispatch cannot say (the primary is typed then, as always)."""
    if not ticket_no:
        return []
    services = console_of(request).services
    try:
        own = await services.call(person, "dispatch", "GET", "/v1/task-search", params={"q": ticket_no, "limit": 5})
        matter = next((t for t in own["tasks"] if t["ticket_no"] == ticket_no), None)
        if matter is None:
            return []
        found = await services.call(person, "dispatch", "GET", "/v1/task-search", params={
            "town": matter["town_code"] if person.county_wide else None, "item": matter["item_code"],
            "village": matter["village"], "phase": "open", "limit": MERGE_CANDIDATES})
    except (ServiceError, KeyError, TypeError):
        return []
    return candidate_options(console_of(request).names.of(matter["town_code"]), ticket_no, found["tasks"])


MERGE_CANDIDATES = 50


def candidate_options(here: TownNames, ticket_no: str, tasks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The picker's options (ticket number, the words shown): one per matter, itself left out."""
    options: dict[str, str] = {}
    for t in tasks:
        if t["ticket_no"] != ticket_no and t["ticket_no"] not in options:
            options[t["ticket_no"]] = (f"{t['ticket_no']} · {here.item(t['item_code'])} · {here.village(t['village'])}"
                                       f" · {labels.TASK_STATUSES.get(t['status'], t['status'])}")
    return list(options.items())


BULK_MAX = 50  # tasks of one bulk redispatch: the board lists 50 returned tasks
BULK_INCOMPLETE = "请勾选要改派的任务，并选择改派给谁。"


def bulk_rows(returned: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bulk redispatch's rows: the tasks just posted first, each with its outcome (redispatched
    or refused, a refused one still ticked), then the returned tasks not posted."""
    posted = {o["task_id"] for o in outcomes}
    return [*outcomes, *({"task_id": t["task_id"], "task": t, "ok": None, "said": "", "ticked": False}
                         for t in returned if t["task_id"] not in posted)]


@router.post("/board/redispatch", response_class=HTMLResponse)
async def bulk_redispatch(request: Request) -> Response:
    """批量改派: the ticked tasks to one target, one redispatch per task (dispatch's rules check
    each); the board then shows each task's outcome beside it. One refusal stops no other."""
    person = guard(request, "board", acting=True)
    form = await checked_form(request)
    town = str(form.get("town", "")) or None
    ids = list(dict.fromkeys(str(v) for v in form.getlist("task") if str(v)))[:BULK_MAX]
    body = redispatch_body(form)
    error = None if ids and body.get("post", body.get("assignee")) else ServiceError(422, BULK_INCOMPLETE)
    if error is not None:
        ids = []  # nothing is sent: the form comes back with what was ticked
    services = console_of(request).services
    outcomes: list[dict[str, Any]] = []
    for task_id in ids:  # one after another: each choice of a post's holder sees the load the last one left
        path = f"/v1/tasks/{quote(task_id, safe='')}"
        try:
            new = await services.call(person, "dispatch", "POST", f"{path}/redispatch", json=body)
            outcomes.append({"task_id": task_id, "task": new, "ok": True, "ticked": False,
                             "said": f"已改派给{console_of(request).names.of(new['town_code']).staff(new['assignee'])}"})
        except ServiceError as exc:
            outcomes.append({"task_id": task_id, "task": None, "ok": False, "ticked": True,
                             "said": f"未改派：{exc.beside_line}"})
    # A refused task is shown as it is now (it may no longer be returned); one that cannot be read, by its id.
    refused = [o for o in outcomes if not o["ok"]]
    now = await asyncio.gather(*(services.call(person, "dispatch", "GET", f"/v1/tasks/{quote(o['task_id'], safe='')}")
                                 for o in refused), return_exceptions=True)
    for outcome, task in zip(refused, now, strict=True):
        outcome["task"] = None if isinstance(task, BaseException) else task
    return await board_response(request, person, town=town, status=422 if error else 200, bulk=outcomes,
                                bulk_form={"target": str(form.get("target", "")), "error": error,
                                           "ticked": [str(v) for v in form.getlist("task")],
                                           "return_valid": body["return_valid"],
                                           "done": sum(1 for o in outcomes if o["ok"]), "refused": len(refused)})


@router.get("/board", response_class=HTMLResponse)
async def board_page(request: Request, town: str | None = None, done: str | None = None, merge: str = "",
                     into: str = "") -> Response:
    """`merge` and `into` fill the merge form: a receipt's duplicate hint links here with both.
    The task search reads the rest of the address (task_lists.py)."""
    person = guard(request, "board")
    return await board_response(request, person, town=town, done=done,
                                merge_form={"ticket_no": merge, "into": into})


@router.get("/board/export.csv")
async def board_export(request: Request, town: str | None = None) -> Response:
    """The board's filtered task list as a spreadsheet (the same address as the list's)."""
    person = guard(request, "board")
    town = town if person.county_wide else None
    try:
        return await task_lists.export(request, person, task_lists.TaskList.of(request.query_params), town,
                                       f"tasks-{town or person.town or 'county'}.csv")
    except ServiceError as exc:
        return render(request, "refused.html", status_of(exc), title="任务导出", message=exc.page_line)


@router.get("/board/live", response_class=HTMLResponse)
async def board_fragment(request: Request, town: str | None = None) -> Response:
    """The live part of the board, for the page's script to swap in."""
    person = guard(request, "board")
    context = await board_context(request, person, town if person.county_wide else None)
    return render(request, "_board_live.html", action_error=None, **context)


def status_of(exc: ServiceError) -> int:
    return exc.status if 400 <= exc.status < 600 else 502


async def task_matter(request: Request, person: Person, task_id: str,
                      panel: str | None) -> tuple[dict[str, Any] | None, ServiceError | None]:
    """The task's matter, as intake answers it to this person (the citizen's name and phone only
    to those intake decides may see them, each such read recorded there); `?matter=off` leaves it
    out and intake is not asked (the bench times the page both ways). Nothing of it is logged here."""
    if panel == "off":
        return None, None
    try:
        found = await console_of(request).services.call(person, "intake", "GET", f"/v1/tasks/{task_id}/matter")
    except ServiceError as exc:
        return None, exc
    return found, None


# Who intake shows a matter's SMS log to (`GET /v1/requests/{ticket_no}/sms`: the town's clerks and
# command centre); anyone else's page does not ask.
SMS_LOG_READERS = frozenset({"clerk", "command_centre"})


async def sms_log(request: Request, person: Person, matter: dict[str, Any] | None) -> dict[str, Any] | None:
    """短信记录: the SMS to the matter's citizen as intake logs them (kind, status, times; never the
    phone or the text), for those intake shows them to; `error` when intake refuses."""
    if matter is None or not person.roles & SMS_LOG_READERS:
        return None
    try:
        messages = await console_of(request).services.call(person, "intake", "GET",
                                                           f"/v1/requests/{matter['ticket_no']}/sms")
    except ServiceError as exc:
        return {"messages": [], "error": exc}
    return {"messages": messages, "error": None}


async def task_with_matter(request: Request, person: Person, task_id: str, panel: str | None
                           ) -> tuple[dict[str, Any], dict[str, Any] | None, ServiceError | None, dict[str, Any] | None]:
    """The task from dispatch, and from intake its matter then the matter's SMS log, asked at once
    (intake's two reads add no wait to dispatch's); `ServiceError` when dispatch refuses the task."""

    async def from_intake() -> tuple[dict[str, Any] | None, ServiceError | None, dict[str, Any] | None]:
        matter, matter_error = await task_matter(request, person, task_id, panel)
        return matter, matter_error, await sms_log(request, person, matter)

    task, (matter, matter_error, sms) = await asyncio.gather(
        console_of(request).services.call(person, "dispatch", "GET", f"/v1/tasks/{task_id}"),
        from_intake(), return_exceptions=True)
    if isinstance(task, BaseException):
        raise task
    return task, matter, matter_error, sms


@router.get("/board/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str, done: str | None = None, matter: str | None = None) -> Response:
    return await task_view(request, guard(request, "board"), task_id, None, done=done, matter_panel=matter)


async def task_view(request: Request, person: Person, task_id: str, error: ServiceError | None,
                    form: dict[str, str] | None = None, done: str | None = None,
                    matter_panel: str | None = None) -> Response:
    services = console_of(request).services
    try:
        task, the_matter, matter_error, sms = await task_with_matter(request, person, task_id, matter_panel)
    except ServiceError as exc:
        return render(request, "refused.html", status_of(exc), title="任务", message=exc.page_line)
    primary, primary_error = None, None
    if task["status"] == "merged":
        # The task knows its primary by request id only; intake names the primary's ticket.
        try:
            matter = await services.call(person, "intake", "GET", f"/v1/requests/{task['ticket_no']}")
            primary = matter.get("merged_into")
        except ServiceError as exc:
            primary_error = exc
    return render(request, "board_task.html", 200 if error is None else status_of(error),
                  title=f"任务 {task['ticket_no']}", task=task, action_error=error, primary=primary,
                  primary_error=primary_error, form=form or {}, done=done, matter=the_matter,
                  matter_error=matter_error, matter_shown=matter_panel != "off", sms=sms)


ACTIONS = {"redispatch": "/redispatch", "verify": "/verify", "approve": "/extension/approve",
           "refuse": "/extension/refuse", "callback": "/callback"}


@router.post("/board/tasks/{task_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, task_id: str, action: str) -> Response:
    person, form = await acting_form(request, "board", action, ACTIONS)
    body: dict[str, Any] | None
    if action == "redispatch":
        body = redispatch_body(form)
    elif action == "verify":
        body = {"passed": form.get("passed") == "yes", "note": str(form.get("note", ""))}
    elif action == "callback":
        # No rating chosen is sent as none: the service says when one is needed (only if reached).
        body = {"reached": form.get("reached") == "yes", "rating": str(form.get("rating", "")) or None,
                "note": str(form.get("note", ""))}
    else:
        body = {"note": str(form.get("note", ""))} if form.get("note") else None
    photos = await chosen_photos(form) if action == "verify" else []
    try:
        if photos:  # 核查结案 with the command centre's own photos: dispatch's multipart check
            await console_of(request).services.call(
                person, "dispatch", "POST", f"/v1/tasks/{task_id}/verifications", files=photos,
                data={"verification": json.dumps(body, ensure_ascii=False)}, under="verification")
        else:
            await console_of(request).services.call(person, "dispatch", "POST",
                                                    f"/v1/tasks/{task_id}{ACTIONS[action]}", json=body)
    except ServiceError as exc:
        if form.get("from") == "task":
            return await task_view(request, person, task_id, exc, {k: str(v) for k, v in form.items()})
        return await board_response(request, person, status=status_of(exc),
                                    action_error={"task_id": task_id, "action": action, "error": exc})
    back = f"/board/tasks/{task_id}" if form.get("from") == "task" else "/board"
    return RedirectResponse(f"{back}?done={action}", status_code=303)
