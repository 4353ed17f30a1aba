"""我的任务: a post holder's tasks (accept, complete, return, ask for an extension) and their
off-post registration (离岗登记); a module leader sees the module's tasks too."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..accounts import Person
from ..errors import ServiceError
from ..web import acting_form, checked_form, console_of, guard, render
from .board import status_of, task_with_matter

router = APIRouter()
ACTIONS = ("accept", "complete", "return", "extend")


def _module_of(request: Request, person: Person) -> str | None:
    town = console_of(request).county.town(person.town) if person.town else None
    staff = town.staff.get(person.sub) if town else None
    return staff.module if staff and "module_leader" in person.roles else None


async def _page(request: Request, person: Person, status: int = 200, action_error: dict[str, Any] | None = None,
                off_post_error: ServiceError | None = None, done: str | None = None) -> Response:
    services = console_of(request).services
    module = _module_of(request, person)
    error = None
    mine: list[dict[str, Any]] = []
    module_tasks: list[dict[str, Any]] = []
    try:
        mine = await services.call(person, "dispatch", "GET", "/v1/tasks", params={"assignee": person.sub, "limit": 100})
        if module:
            module_tasks = [t for t in await services.call(person, "dispatch", "GET", "/v1/tasks",
                                                           params={"module": module, "limit": 100})
                            if t["assignee"] != person.sub]
    except ServiceError as exc:
        error = exc
    return render(request, "tasks.html", status, title="我的任务", mine=mine, module=module,
                  module_tasks=module_tasks, error=error, action_error=action_error,
                  off_post_error=off_post_error, done=done, form={})


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(request: Request, done: str | None = None) -> Response:
    return await _page(request, guard(request, "tasks"), done=done)


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str, matter: str | None = None) -> Response:
    """One task with its matter: what the citizen asked, and (for its assignee while it is theirs
    and open, and its module leader) the citizen's name and phone, as intake decides."""
    person = guard(request, "tasks")
    try:
        task, the_matter, matter_error = await task_with_matter(request, person, task_id, matter)
    except ServiceError as exc:
        return render(request, "refused.html", status_of(exc), title="任务", message=exc.page_line)
    return render(request, "task.html", title=f"任务 {task['ticket_no']}", task=task, matter=the_matter,
                  matter_error=matter_error, matter_shown=matter != "off")


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
    try:
        await console_of(request).services.call(person, "dispatch", "POST", f"/v1/tasks/{task_id}/{action}", json=body)
    except ServiceError as exc:
        return await _page(request, person, exc.status if exc.status >= 400 else 502,
                           action_error={"task_id": task_id, "action": action, "error": exc})
    return RedirectResponse(f"/tasks?done={action}", status_code=303)
