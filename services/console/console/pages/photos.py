"""Photos (issue #29) as the console shows them: read from the service that keeps them with the
signed-in person's token and streamed on under the console's own address, so the service decides
who sees which photo and records each read, and no address of the object store ever reaches a
browser. `Cache-Control: private, no-store`: a photo of a matter stays in no cache, shared or not.

The citizen's status page reads its matter's photos with the access code, which never goes in an
address: the thumbnails come inline in the page (`data:` images), and the full photo is a form
posted with the code (`POST /status/photo`, pages/status.py)."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from ..accounts import Person
from ..errors import ServiceError
from ..services import Services
from ..web import console_of, render, signed_in

router = APIRouter()
Variant = Literal["photo", "thumbnail"]
# The headers every photo is answered with, the service's content type beside them.
PRIVATE = {"Cache-Control": "private, no-store", "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff"}
AN_ID = r"^[A-Za-z0-9_-]{1,64}$"
# Where each kind of photo is read: the console's address (`/photos/<kind>/<owner id>/<attachment>`)
# and the service's.
SOURCES = {
    "requests": ("intake", "/v1/requests/{owner}/photos/{attachment}"),  # a filing's (intake)
    "tasks": ("dispatch", "/v1/tasks/{owner}/photos/{attachment}"),  # a completion's, a closure check's
    "inspections": ("enforcement", "/v1/inspections/{owner}/evidence/{attachment}"),  # evidence
    "cases": ("enforcement", "/v1/cases/{owner}/evidence/{attachment}"),
}


async def streamed(services: Services, person: Person | None, service: str, path: str,
                   params: dict[str, str | None], headers: dict[str, str] | None = None) -> Response:
    answer = await services.download(person, service, path, params=params, headers=headers)
    return StreamingResponse(answer.aiter_bytes(), media_type=answer.headers.get("content-type", "image/jpeg"),
                             headers=PRIVATE, background=BackgroundTask(answer.aclose))


def refused(request: Request, exc: ServiceError) -> Response:
    answer = render(request, "refused.html", exc.status if exc.status >= 400 else 502, title="照片",
                    message=exc.page_line)
    answer.headers.update(PRIVATE)
    return answer


@router.get("/photos/{kind}/{owner}/{attachment_id}")
async def photo(request: Request, kind: Literal["requests", "tasks", "inspections", "cases"],
                owner: Annotated[str, Path(pattern=AN_ID)], attachment_id: uuid.UUID,
                variant: Annotated[Variant, Query()] = "photo") -> Response:
    """A photo (or its thumbnail) of a matter, a task, an inspection or a case, for whoever the
    service lets read it; its refusal (404 to anyone else) as a page."""
    person = signed_in(request)
    service, path = SOURCES[kind]
    try:
        return await streamed(console_of(request).services, person, service,
                              path.format(owner=owner, attachment=attachment_id), {"variant": variant})
    except ServiceError as exc:
        return refused(request, exc)


async def inline_thumbnail(services: Services, ticket_no: str, attachment_id: str, code: str, tail: str,
                           headers: dict[str, str]) -> str | None:
    """A thumbnail of the citizen's matter as a `data:` address, read with the access code; None when
    intake does not give it (the page then shows the others)."""
    try:
        answer = await services.download(None, "intake", f"/v1/requests/{ticket_no}/photos/{attachment_id}",
                                         params={"variant": "thumbnail", "code": code, "contact_tail": tail},
                                         headers=headers)
    except ServiceError:
        return None
    try:
        data = await answer.aread()
    finally:
        await answer.aclose()
    kind = answer.headers.get("content-type", "image/jpeg").split(";")[0]
    return f"data:{kind};base64,{base64.b64encode(data).decode()}" if kind.startswith("image/") else None
