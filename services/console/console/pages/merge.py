"""重复件 on the command-centre board and a task's page: merge a matter into another (its primary)
and undo it, by intake's merge and unmerge. Which matters may merge is intake's to say; its
refusals come back beside the field their code names (errors.py, refusals.py). On the board the
primary is picked among the matter's possible duplicates (board.merge_candidates) or typed; what is
typed wins."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import ServiceError, beside
from ..refusals import status_line, words
from ..web import checked_form, console_of, guard
from .board import board_response, status_of, task_view

router = APIRouter()


@router.post("/board/merge", response_class=HTMLResponse)
async def merge(request: Request) -> Response:
    return await _merge_or_undo(request, "merge")


@router.post("/board/unmerge", response_class=HTMLResponse)
async def unmerge(request: Request) -> Response:
    return await _merge_or_undo(request, "unmerge")


async def _merge_or_undo(request: Request, action: str) -> Response:
    person = guard(request, "board", acting=True)
    posted = await checked_form(request)
    form = {k: str(posted.get(k, "")).strip() for k in ("ticket_no", "into", "into_pick", "task_id")}
    # The primary typed, else the one picked among the matter's possible duplicates (the board's picker).
    into = form["into"] or form["into_pick"]
    task_id = form["task_id"]  # set when posted from a task's page: the answer goes back there
    try:
        if not form["ticket_no"]:  # the path needs a ticket; the service never sees an empty one
            raise ServiceError(422, status_line(422), {"ticket_no": beside("ticket_no", words("value.missing"))})
        await console_of(request).services.call(
            person, "intake", "POST", f"/v1/requests/{quote(form['ticket_no'], safe='')}/{action}",
            json={"into": into} if action == "merge" else None)
    except ServiceError as exc:
        if task_id:
            return await task_view(request, person, task_id, exc, form)
        return await board_response(request, person, status=status_of(exc), merge_form={**form, "action": action},
                                    merge_error=exc)
    back = f"/board/tasks/{task_id}" if task_id else "/board"
    return RedirectResponse(f"{back}?done={action}", status_code=303)
