"""窗口受理: filing by a clerk, proxy agent or village station (or the command centre), with the
town's catalog to search, and a printable receipt with the ticket number and access code."""

from __future__ import annotations

import json
import uuid
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from starlette.datastructures import FormData, UploadFile

from .. import town_map
from ..accounts import Person
from ..errors import ServiceError
from ..web import checked_form, console_of, guard, render

router = APIRouter()
FIELDS = ("channel", "item_code", "description", "village", "location", "target", "colour",
          "citizen.name", "citizen.phone", "citizen.id_number", "proxy_agent_id", "village_record_id", "town_code",
          "point.longitude", "point.latitude", "sms_opt_out")


def _default_channel(person: Person) -> str:
    """The channel a person usually files by (the service checks what is allowed)."""
    if "proxy_agent" in person.roles:
        return "proxy"
    if "village_station" in person.roles:
        return "village_station"
    return "window"


async def _form_page(request: Request, person: Person, form: dict[str, str], error: ServiceError | None = None,
                     q: str = "", photos_sent: int = 0) -> Response:
    console = console_of(request)
    # County roles pick the town (the first by default): the catalog and villages are the town's.
    town_code = person.town or form.get("town_code") or next(iter(console.county.towns))
    form = {**form, "town_code": town_code}
    catalog: list[dict[str, Any]] = []
    catalog_error = None
    try:
        catalog = await console.services.call(person, "intake", "GET", "/v1/catalog",
                                              params={"town": None if person.town else town_code})
    except ServiceError as exc:
        catalog_error = exc
    if q:
        catalog_shown = [i for i in catalog if q.lower() in i["code"].lower() or q in i["name"]]
    else:
        catalog_shown = catalog
    town = console.county.town(town_code) if town_code else None
    # An unknown item's refusal proposes the closest items by code: the town's catalog names them.
    suggestions = [{"code": c, "name": town.catalog[c].name} for c in (error.suggestions if error else [])
                   if town is not None and c in town.catalog]
    status = 200 if error is None else (error.status if error.status >= 400 else 502)
    # How many photos each item takes (the town's catalog.yaml; intake checks it): the form says the
    # chosen item's, and its script (static/photos.js) follows the item typed.
    photos_max = {code: item.photos_max for code, item in town.catalog.items()} if town is not None else {}
    return render(request, "intake.html", status, title="窗口受理", form=form, error=error, q=q,
                  photos_max=photos_max, photos_max_json=json.dumps(photos_max, separators=(",", ":")),
                  photos_sent=photos_sent,
                  catalog=catalog, catalog_shown=catalog_shown, catalog_error=catalog_error, suggestions=suggestions,
                  villages=town.info.villages if town else [],
                  # The point picker (issue #30): the town's map, where it has one (static/picker.js).
                  picker=town_map.town_map(town.places, {v.code: v.name for v in town.info.villages})
                  if town is not None and town.places is not None else None,
                  picker_name=f"{town.info.name}地图" if town is not None else "",
                  towns=[(t.code, t.info.name) for t in console.county.towns.values()] if not person.town else [],
                  idempotency_key=form.get("idempotency_key") or uuid.uuid4().hex,
                  slip=request.query_params.get("slip") == "1")


@router.get("/intake", response_class=HTMLResponse)
async def intake_page(request: Request, q: str = "", item: str = "", town: str = "") -> Response:
    person = guard(request, "intake")
    return await _form_page(request, person, {"channel": _default_channel(person), "item_code": item,
                                              "town_code": town}, q=q)


def _filing(form: dict[str, str], person: Person) -> dict[str, Any]:
    citizen = {k: form.get(f"citizen.{k}") or None for k in ("name", "phone", "id_number")}
    body: dict[str, Any] = {k: form.get(k) or None for k in ("channel", "item_code", "description", "village",
                                                             "location", "target", "colour", "proxy_agent_id",
                                                             "village_record_id")}
    body["citizen"] = {k: v for k, v in citizen.items() if v is not None}
    if point := point_of(form):
        body["point"] = point
    if form.get("sms_opt_out"):  # 不接收短信 (issue #31): left out otherwise, as the previous release takes it
        body["sms_opt_out"] = True
    if not person.town:
        body["town_code"] = form.get("town_code") or None
    return {k: v for k, v in body.items() if v is not None}


def point_of(form: dict[str, str]) -> dict[str, Any] | None:
    """The point picked (issue #30) as intake takes it; a number typed wrong goes as typed, so
    intake's refusal names its field (point.longitude, point.latitude) beside the input."""
    given = {k: form.get(f"point.{k}", "").strip() for k in ("longitude", "latitude")}
    if not any(given.values()):
        return None

    def number(text: str) -> float | str:
        try:
            return float(text)
        except ValueError:
            return text

    return {k: number(v) for k, v in given.items()}


async def chosen_photos(posted: FormData, field: str = "photos") -> list[tuple[str, tuple[str, bytes, str]]]:
    """The photos a form's file input sent, as a multipart call passes them on: in the order chosen
    (a refusal's `photos[1]` is the second), under the service's field name. An input left empty
    sends one nameless, empty part: no photo. The type the browser claims is passed on as it came;
    the service sniffs the bytes and believes nothing else."""
    photos = []
    for part in posted.getlist(field):
        if isinstance(part, UploadFile) and part.filename:
            photos.append(("photos", (part.filename, await part.read(), part.content_type or "application/octet-stream")))
    return photos


@router.post("/intake", response_class=HTMLResponse)
async def file(request: Request) -> Response:
    person = guard(request, "intake", acting=True)
    posted = await checked_form(request)
    form = {k: str(posted.get(k, "")).strip() for k in (*FIELDS, "idempotency_key")}
    photos = await chosen_photos(posted)
    services = console_of(request).services
    # The form's own key: a double click or a reload files the matter once (the same receipt).
    key = {"Idempotency-Key": form["idempotency_key"] or uuid.uuid4().hex}
    try:
        if photos:  # intake's multipart filing: the filing's JSON and each photo, checked and stored together
            filed = await services.call(person, "intake", "POST", "/v1/filings", headers=key, files=photos,
                                        data={"filing": json.dumps(_filing(form, person), ensure_ascii=False)},
                                        under="filing")
        else:
            filed = await services.call(person, "intake", "POST", "/v1/requests", json=_filing(form, person),
                                        headers=key)
    except ServiceError as exc:  # a browser keeps no file chosen in a page sent back: the form says so
        return await _form_page(request, person, form, exc, photos_sent=len(photos))
    town_code = filed["ticket_no"].split("-")[0]  # a ticket number starts with its town's code
    here = console_of(request).names.of(town_code)
    address = status_address(request, filed["ticket_no"])
    # The department that will handle it: intake's answer names it; an answer of the previous
    # release does not, and the town's catalog knows it too (the item's lead module).
    town = console_of(request).county.town(town_code)
    item = town.catalog.get(form["item_code"]) if town is not None else None
    department = filed.get("department") or (here.unit(item.lead_module) if item is not None else None)
    return render(request, "receipt.html", 201, title="受理回执", filed=filed, form=form, town_code=town_code,
                  item_name=here.item(form["item_code"]), town_name=here.town(town_code), department=department,
                  status_address=address, qr=qr_svg(address), slip=request.query_params.get("slip") == "1",
                  photo_count=len(photos))


def status_address(request: Request, ticket_no: str) -> str:
    """Where the citizen checks the matter: the console's public address (a setting; else the one
    this request came to) and its status page with the ticket filled in. Never the access code,
    which stays on paper beside it."""
    base = console_of(request).settings.console_public_url or str(request.base_url)
    return f"{base.rstrip('/')}/status?ticket={ticket_no}"


def qr_svg(text: str) -> Markup:
    """`text` as a QR code (error correction M: a creased receipt still reads), inline SVG that
    scales with its box (no width or height of its own) and prints black on white."""
    svg = segno.make(text, error="m").svg_inline(scale=1, omitsize=True, svgclass="qr", dark="#000",
                                                 light="#fff", title="办事进度查询二维码")
    svg = svg.replace("<svg ", '<svg role="img" aria-label="办事进度查询二维码" ', 1)
    return Markup(svg)  # noqa: S704 - segno's own SVG of our own address: no markup of anyone's
