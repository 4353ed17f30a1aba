"""全县排名: the county's towns side by side (county roles): composite and the three rates."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import labels
from ..charts import grouped_bars
from ..errors import ServiceError
from ..web import console_of, guard, render

router = APIRouter()
RATE_CSS = {"response": "r-response", "resolution": "r-resolution", "satisfaction": "r-satisfaction"}


@router.get("/county", response_class=HTMLResponse)
async def county_page(request: Request, period: str | None = None) -> Response:
    person = guard(request, "county")
    try:
        ranking = await console_of(request).services.call(person, "appraisal", "GET", "/v1/county/rankings",
                                                          params={"period": period or None})
    except ServiceError as exc:
        return render(request, "county.html", exc.status if exc.status >= 400 else 502, title="全县排名",
                      error=exc, ranking=None, chart=None, period=period)
    chart = grouped_bars([(t["name"], [(words, RATE_CSS[key], t["rates"][key]) for key, words in labels.RATES.items()])
                          for t in ranking["towns"]], "各镇三率对比", width=max(560, 120 * len(ranking["towns"])))
    return render(request, "county.html", title="全县排名", error=None, ranking=ranking, chart=chart,
                  period=ranking["period"])
