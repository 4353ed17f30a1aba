"""月度通报 on the 绩效考核 page: appraisal's monthly bulletin (xlsx or csv) downloaded through the
console with the person's own token, streamed on with the service's content type and file name.
What the bulletin holds, and who may have it, is appraisal's to say."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from ..errors import ServiceError
from ..web import console_of, guard, render

router = APIRouter()
# The service's headers the browser needs to save the file as the service named it.
PASSED_ON = ("content-type", "content-disposition")


@router.get("/appraisal/bulletin", response_class=HTMLResponse)
async def bulletin(request: Request, period: str | None = None,
                   file_format: Annotated[str, Query(alias="format")] = "xlsx", town: str | None = None) -> Response:
    person = guard(request, "appraisal")
    try:
        answer = await console_of(request).services.download(person, "appraisal", "/v1/bulletin", params={
            "period": period or None, "format": file_format, "town": None if person.town else town})
    except ServiceError as exc:
        return render(request, "refused.html", exc.status if exc.status >= 400 else 502, title="月度通报",
                      message=_plain(exc, period))
    headers = {name: value for name in PASSED_ON if (value := answer.headers.get(name))}
    # Decoded bytes (not raw): httpx undoes any gzip, so no content-encoding or length is passed on.
    return StreamingResponse(answer.aiter_bytes(), headers=headers, background=BackgroundTask(answer.aclose))


def _plain(exc: ServiceError, period: str | None) -> str:
    if exc.status == 404:
        return f"没有找到{period or '本月'}的月度通报，请稍后再试或联系绩效督查室。"
    return exc.page_line
