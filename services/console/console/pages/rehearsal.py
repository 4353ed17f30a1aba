"""改革预演 (issue #32): the appraisal office and the town's party secretary try another layout of the
town's modules, posts, staff, rules and catalog on a past period. The page sends the files that
differ from the town's (edited in place or uploaded) to dispatch's `POST /v1/rehearsals`, and shows
the comparison it answers: what got worse first, then each module, post and person side by side,
by name. Which layouts are valid, who may rehearse and what the figures are is dispatch's to say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from townflow_shared.town import LAYOUT_FILES, Town, town_files

from .. import labels
from ..accounts import Person
from ..charts import Chart, grouped_bars
from ..errors import ServiceError
from ..names import TownNames
from ..web import checked_form, console_of, guard, render

router = APIRouter()
# What each file of a layout holds, as the page's fields are labelled.
FILE_WORDS = {"modules.yaml": "模块", "posts.yaml": "岗位", "staff.yaml": "人员", "rules.yaml": "考核与派单规则",
              "catalog.yaml": "事项目录"}
KIND_WORDS = {"town": "全镇", "module": "模块", "post": "岗位", "staff": "个人"}
FIGURE_WORDS = {**labels.RATES, "overdue": "逾期", "escalated": "升级督办", "most_open": "同时在办"}
TIMES_WORDS = {"drawn": "按历史抽取办理时长", "replayed": "按实际办理时长重放"}
# A period's own fields: the console labels `from`/`to` as an off-post registration's elsewhere.
PERIOD_FIELDS = {"from": "开始日期", "to": "结束日期"}
MAX_UPLOAD = 1_000_000  # dispatch's limit on one file's text


@dataclass(frozen=True)
class Form:
    """What the person asked: the period (the town's local days), the draw, the layout's files."""

    first: str
    last: str
    times: str
    seed: str
    files: dict[str, str]  # every layout file's text as shown in its field


def _town(request: Request, person: Person, town: str | None) -> Town:
    county = console_of(request).county
    return county.towns.get(person.town or "") or county.towns.get(town or "") or next(iter(county.towns.values()))


def last_month(today: date) -> tuple[date, date]:
    """The month before `today`'s, its first and last days: the period a reform is usually tried on."""
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def _blank(request: Request, town: Town) -> Form:
    today = datetime.now(console_of(request).names.of(town.code).zone).date()
    first, last = last_month(today)
    texts = town_files(town)
    return Form(first.isoformat(), last.isoformat(), "drawn", "0", {name: texts[name] for name in LAYOUT_FILES})


async def _posted(form: FormData, town: Town) -> tuple[Form, dict[str, str]]:
    """The form as posted, and the files that differ from the town's (an upload wins over its field):
    a file sent replaces the town's whole, so only what changed is sent."""
    texts = town_files(town)
    shown: dict[str, str] = {}
    for name in LAYOUT_FILES:
        upload = form.get(f"upload.{name}")
        text = str(form.get(name) or "")
        if isinstance(upload, UploadFile) and upload.filename:
            text = (await upload.read(MAX_UPLOAD + 1)).decode("utf-8", errors="replace")
        shown[name] = text.replace("\r\n", "\n")
    changed = {name: text for name, text in shown.items() if text.strip() != texts[name].strip()}
    return Form(str(form.get("from") or ""), str(form.get("to") or ""), str(form.get("times") or "drawn"),
                str(form.get("seed") or "0").strip(), shown), changed


def _period_words(error: ServiceError) -> ServiceError:
    """A refusal of the period beside the page's own date fields, labelled as they are here."""
    for field, words in PERIOD_FIELDS.items():
        said = error.fields.get(field)
        if said is not None:
            error.fields[field] = f"{words}：{said.split('：', 1)[-1]}"
    return error


def subject_name(here: TownNames, kind: str, code: str) -> str:
    """A subject of the comparison by name: the town, a module, a post, a person."""
    if kind == "town":
        return here.town(code)
    return {"module": here.unit, "post": here.post, "staff": here.staff}[kind](code)


def figure_value(figure: str, value: float | None) -> str:
    """A figure as read: a rate as a percentage, a count as a whole number."""
    if value is None:
        return "—"
    return f"{value:.1%}" if figure in labels.RATES else f"{value:g}"


def worse_lines(here: TownNames, worse: list[dict[str, Any]]) -> list[str]:
    """Dispatch's list of what got worse in words: 岗位 户籍办理岗：办结率 80.0% → 72.5%."""
    lines = []
    for w in worse:
        who = f"{KIND_WORDS[w['kind']]} {subject_name(here, w['kind'], w['id'])}"
        what = FIGURE_WORDS.get(w["figure"], w["figure"])
        if w["real"] is None:
            lines.append(f"{who}（新设）：{what} {figure_value(w['figure'], w['alternative'])}")
        else:
            lines.append(f"{who}：{what} {figure_value(w['figure'], w['real'])} → "
                         f"{figure_value(w['figure'], w['alternative'])}")
    return lines


def module_charts(here: TownNames, subjects: list[dict[str, Any]]) -> list[Chart]:
    """Each module's response and resolution rates, the town's layout beside the alternative's."""
    modules = [s for s in subjects if s["kind"] == "module"]
    charts = []
    for key in ("response", "resolution"):
        groups = [(here.unit(s["id"]), [("现行布局", "b-real", (s["real"] or {}).get(key)),
                                        ("新布局", "b-alt", (s["alternative"] or {}).get(key))]) for s in modules]
        if groups:
            charts.append(grouped_bars(groups, f"各模块{labels.RATES[key]}（现行布局与新布局）",
                                       width=max(560, 110 * len(groups))))
    return charts


def _page(request: Request, person: Person, town: Town, form: Form, status: int = 200,
          error: ServiceError | None = None, result: dict[str, Any] | None = None) -> Response:
    here = console_of(request).names.of(town.code)
    county = console_of(request).county
    context: dict[str, Any] = {
        "form": form, "town": town.code, "error": error, "result": result, "files": FILE_WORDS,
        "times_words": TIMES_WORDS, "kinds": KIND_WORDS,
        "towns": [] if person.town else [(t.code, t.info.name) for t in county.towns.values()]}
    if result is not None:
        context |= {"worse": worse_lines(here, result["worse"]), "charts": module_charts(here, result["subjects"]),
                    "name_of": lambda s: subject_name(here, s["kind"], s["id"])}
    return render(request, "rehearsal.html", status, title="改革预演", **context)


@router.get("/rehearsal", response_class=HTMLResponse)
async def rehearsal_page(request: Request, town: str | None = None) -> Response:
    person = guard(request, "rehearsal")
    chosen = _town(request, person, town)
    return _page(request, person, chosen, _blank(request, chosen))


@router.post("/rehearsal", response_class=HTMLResponse)
async def rehearse(request: Request) -> Response:
    person = guard(request, "rehearsal")
    posted = await checked_form(request)
    chosen = _town(request, person, str(posted.get("town") or ""))
    form, changed = await _posted(posted, chosen)
    # Nothing changed: the town's own layout rehearsed beside itself (the twin check), one file sent as is.
    files = changed or {"modules.yaml": form.files["modules.yaml"]}
    body: dict[str, Any] = {"from": form.first or None, "to": form.last or None, "times": form.times,
                            "files": files}
    body["seed"] = int(form.seed) if form.seed.isdigit() else form.seed  # not a number: dispatch names the field
    try:
        result = await console_of(request).services.call(
            person, "dispatch", "POST", "/v1/rehearsals", json=body,
            params={"town": None if person.town else chosen.code})
    except ServiceError as exc:
        return _page(request, person, chosen, form, exc.status if exc.status >= 400 else 502, _period_words(exc))
    return _page(request, person, chosen, form, result=result)
