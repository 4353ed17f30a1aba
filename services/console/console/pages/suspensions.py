"""挂起: a post holder asks to suspend a task while waiting on the citizen (补正材料) or another unit;
the command centre approves or refuses it and may resume the task, as may its holder once what was
awaited arrived. The command centre's pending requests are a page of their own (/suspensions); the
holder asks on a page of the task's own (/tasks/{id}/suspension, linked from 我的任务); the task
page (board_task.html) shows the same block (_suspension.html). Dispatch decides who may do what."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..accounts import Person
from ..errors import ServiceError
from ..web import Forbidden, NoSuchAction, checked_form, console_of, guard, render
from .board import status_of, task_view

router = APIRouter()
# Each action: dispatch's route, and the console pages whose people may take it.
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ask": ("/suspend", ("tasks",)),
    "approve": ("/suspension/approve", ("suspensions",)),
    "refuse": ("/suspension/refuse", ("suspensions",)),
    "resume": ("/resume", ("suspensions", "tasks")),
}
# Where a form came from, and so where its answer goes back to.
BACK = {"task": "/board/tasks/{task_id}", "holder": "/tasks/{task_id}/suspension", "list": "/suspensions"}


async def _list(request: Request, person: Person, town: str | None, *, status: int = 200, done: str | None = None,
                action_error: dict[str, Any] | None = None) -> Response:
    services = console_of(request).services
    pending: list[dict[str, Any]] = []
    error = None
    try:
        pending = await services.call(person, "dispatch", "GET", "/v1/suspensions",
                                      params={"town": town if person.county_wide else None})
    except ServiceError as exc:
        error = exc
    return render(request, "suspensions.html", status, title="挂起审批", pending=pending, error=error, done=done,
                  action_error=action_error)


@router.get("/suspensions", response_class=HTMLResponse)
async def pending_page(request: Request, town: str | None = None, done: str | None = None) -> Response:
    """The command centre's pending suspension requests, oldest first."""
    return await _list(request, guard(request, "suspensions"), town, done=done)


async def _holder_page(request: Request, person: Person, task_id: str, *, status: int = 200, done: str | None = None,
                       error: ServiceError | None = None, form: dict[str, str] | None = None) -> Response:
    try:
        task = await console_of(request).services.call(person, "dispatch", "GET", f"/v1/tasks/{task_id}")
    except ServiceError as exc:
        return render(request, "refused.html", status_of(exc), title="挂起申请", message=exc.page_line)
    return render(request, "suspension_task.html", status if error is None else status_of(error),
                  title=f"挂起申请 · 任务 {task['ticket_no']}", task=task, done=done, action_error=error,
                  form=form or {})


@router.get("/tasks/{task_id}/suspension", response_class=HTMLResponse)
async def holder_page(request: Request, task_id: str, done: str | None = None) -> Response:
    """A task's suspensions, and the holder's request (申请挂起) or resumption (恢复办理)."""
    return await _holder_page(request, guard(request, "tasks"), task_id, done=done)


def _acting(request: Request, pages: tuple[str, ...]) -> Person:
    """The person, if one of `pages` is theirs to act on (else sign-in or 403, as `guard`)."""
    for page in pages[:-1]:
        try:
            return guard(request, page, acting=True)
        except Forbidden:
            continue
    return guard(request, pages[-1], acting=True)


@router.post("/suspensions/{task_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, task_id: str, action: str) -> Response:
    if action not in ACTIONS:
        guard(request, "tasks")  # sign-in first, as every other form
        raise NoSuchAction()
    path, pages = ACTIONS[action]
    person = _acting(request, pages)
    form = await checked_form(request)
    came_from = str(form.get("from", "list"))
    came_from = came_from if came_from in BACK else "list"
    body: dict[str, Any] | None
    if action == "ask":
        body = {"category": str(form.get("category", "")), "reason": str(form.get("reason", ""))}
    else:
        body = {"note": str(form.get("note", ""))} if form.get("note") else None
    try:
        await console_of(request).services.call(person, "dispatch", "POST", f"/v1/tasks/{task_id}{path}", json=body)
    except ServiceError as exc:
        fields = {k: str(v) for k, v in form.items()}
        if came_from == "task":
            return await task_view(request, person, task_id, exc, fields)
        if came_from == "holder":
            return await _holder_page(request, person, task_id, error=exc, form=fields)
        return await _list(request, person, None, status=status_of(exc),
                           action_error={"task_id": task_id, "action": action, "error": exc})
    return RedirectResponse(f"{BACK[came_from].format(task_id=task_id)}?done=suspension-{action}", status_code=303)
