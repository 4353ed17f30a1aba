"""我的任务: a post holder's tasks (accept, complete, return, ask for an extension) and their
off-post registration (离岗登记); a module leader sees the module's tasks too."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import task_lists
from ..accounts import Person
from ..errors import ServiceError
from ..web import acting_form, checked_form, console_of, guard, render
from .board import status_of, task_with_matter
from .intake import chosen_photos

router = APIRouter()
ACTIONS = ("accept", "complete", "return", "extend")


def _module_of(request: Request, person: Person) -> str | None:
    town = console_of(request).county.town(person.town) if person.town else None
    staff = town.staff.get(person.sub) if town else None
    return staff.module if staff and "module_leader" in person.roles else None


SCOPES = {"mine": "我承办的", "module": "本模块全部"}


def _wanted(request: Request, person: Person, module: str | None) -> tuple[task_lists.TaskList, str]:
    """The list the address asks for: the person's own tasks, or (a module leader's) the module's."""
    scope = request.query_params.get("scope", "mine")
    scope = scope if scope == "module" and module else "mine"
    fixed = {"module": module} if scope == "module" and module else {"assignee": person.sub}
    return task_lists.TaskList.of(request.query_params, fixed), scope


async def _page(request: Request, person: Person, status: int = 200, action_error: dict[str, Any] | None = None,
                off_post_error: ServiceError | None = None, done: str | None = None) -> Response:
    module = _module_of(request, person)
    wanted, scope = _wanted(request, person, module)
    error = None
    found: dict[str, Any] = {"tasks": [], "total": 0, "page": 1, "pages": 1}
    try:
        found = await task_lists.search(request, person, wanted, None)
    except ServiceError as exc:
        error = exc
    return render(request, "tasks.html", status, title="我的任务", found=found, wanted=wanted, scope=scope,
                  scopes=SCOPES if module else {}, module=module, choices=task_lists.choices(request, person.town),
                  phases=task_lists.PHASES, error=error, action_error=action_error,
                  off_post_error=off_post_error, done=done, form={})


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(request: Request, done: str | None = None) -> Response:
    """The search, filters, scope and page are in the address (task_lists.py)."""
    return await _page(request, guard(request, "tasks"), done=done)


@router.get("/tasks/export.csv")
async def tasks_export(request: Request) -> Response:
    """我的任务's filtered list as a spreadsheet (the same address as the list's)."""
    person = guard(request, "tasks")
    wanted, scope = _wanted(request, person, _module_of(request, person))
    try:
        return await task_lists.export(request, person, wanted, None, f"my-tasks-{person.sub}-{scope}.csv")
    except ServiceError as exc:
        return render(request, "refused.html", exc.status if exc.status >= 400 else 502, title="任务导出",
                      message=exc.page_line)


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str, matter: str | None = None, done: str | None = None) -> Response:
    """One task with its matter: what the citizen asked, and (for its assignee while it is theirs
    and open, and its module leader) the citizen's name and phone, as intake decides; its photos,
    and the completion form with the after photos (处置后照片) when dispatch takes them."""
    return await _task_view(request, guard(request, "tasks"), task_id, matter, done=done)


async def _task_view(request: Request, person: Person, task_id: str, matter: str | None = None,
                     error: ServiceError | None = None, form: dict[str, str] | None = None,
                     done: str | None = None, photos_sent: int = 0) -> Response:
    try:
        task, the_matter, matter_error, sms = await task_with_matter(request, person, task_id, matter)
    except ServiceError as exc:
        return render(request, "refused.html", status_of(exc), title="任务", message=exc.page_line)
    return render(request, "task.html", 200 if error is None else status_of(error), title=f"任务 {task['ticket_no']}",
                  task=task, matter=the_matter, matter_error=matter_error, matter_shown=matter != "off", sms=sms,
                  action_error=error, form=form or {}, done=done, photos_sent=photos_sent)


def _local_time(value: str, zone: tzinfo) -> str:
    """A browser's datetime-local (no offset) on the town's clock; left as typed if it is not one,
    so the service names the field."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=zone).isoformat()
    except ValueError:
        return value


@router.post("/tasks/off-post", response_class=HTMLResponse)
async def off_post(request: Request) -> Response:
    person = guard(request, "tasks", acting=True)
    form = await checked_form(request)
    zone = console_of(request).names.of(person.town).zone
    body = {"from": _local_time(str(form.get("from", "")), zone),
            "to": _local_time(str(form.get("to", "")), zone), "reason": str(form.get("reason", ""))}
    try:
        await console_of(request).services.call(person, "dispatch", "POST", f"/v1/staff/{person.sub}/off-post",
                                                json=body)
    except ServiceError as exc:
        return await _page(request, person, exc.status if exc.status >= 400 else 502, off_post_error=exc)
    return RedirectResponse("/tasks?done=off-post", status_code=303)


@router.post("/tasks/{task_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, task_id: str, action: str) -> Response:
    person, form = await acting_form(request, "tasks", action, ACTIONS)
    body: dict[str, Any] | None = {
        "accept": None,
        "complete": {"resolution": str(form.get("resolution", "")), "reply": str(form.get("reply", ""))},
        "return": {"reason": str(form.get("reason", ""))},
        "extend": {"days": str(form.get("days", "")), "reason": str(form.get("reason", ""))},
    }[action]
    photos = await chosen_photos(form) if action == "complete" else []
    services = console_of(request).services
    try:
        if photos:  # 办结 with the after photos (处置后照片): dispatch's multipart completion
            await services.call(person, "dispatch", "POST", f"/v1/tasks/{task_id}/completions", files=photos,
                                data={"completion": json.dumps(body, ensure_ascii=False)}, under="completion")
        else:
            await services.call(person, "dispatch", "POST", f"/v1/tasks/{task_id}/{action}", json=body)
    except ServiceError as exc:
        if form.get("from") == "task":  # the task's own page: the refusal beside its form
            return await _task_view(request, person, task_id, error=exc, photos_sent=len(photos),
                                    form={k: str(form.get(k, "")) for k in ("resolution", "reply")})
        return await _page(request, person, exc.status if exc.status >= 400 else 502,
                           action_error={"task_id": task_id, "action": action, "error": exc})
    if form.get("from") == "task":
        return RedirectResponse(f"/tasks/{task_id}?done={action}", status_code=303)
    return RedirectResponse(f"/tasks?done={action}", status_code=303)
