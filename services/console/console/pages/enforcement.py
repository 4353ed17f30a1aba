"""执法检查: an officer's inspections (start, result with officers, units present and findings)
and cases with their deadlines (steps, the one extension)."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..accounts import Person
from ..errors import ServiceError
from ..web import acting_form, checked_form, console_of, guard, render
from .intake import chosen_photos

router = APIRouter()


def _status(exc: ServiceError) -> int:
    return exc.status if exc.status >= 400 else 502


def _officers(request: Request, person: Person) -> list[tuple[str, str, bool]]:
    """The town's officers to tick (id, name, holds a certificate): the names are the town file's."""
    town = console_of(request).county.town(person.town) if person.town else None
    return [(s.id, s.name, s.enforcement_certificate) for s in town.staff.values() if "officer" in s.roles] if town else []


def _team(request: Request, person: Person, town_code: str) -> dict[str, Any]:
    """What the start form offers (enforcement's rules.start_team decides): the inspection's town's
    certified officers by name, how many the town's rules want, and whether the signed-in person
    goes on the visit (an officer of that town: enforcement adds them, so they are ticked first)."""
    town = console_of(request).county.towns.get(town_code)
    if town is None:
        return {"choices": [], "required": 2, "goes": False, "me": person.sub}
    me = town.staff.get(person.sub) if person.town == town_code else None
    goes = me is not None and ("officer" in me.roles or me.enforcement_certificate)
    choices = [(s.id, s.name) for s in town.staff.values() if s.enforcement_certificate]
    if goes and me is not None and not me.enforcement_certificate:
        choices.insert(0, (me.id, me.name))  # goes along uncertified: on the team, not counted
    choices.sort(key=lambda c: c[0] != person.sub)  # the starter first
    return {"choices": choices, "required": town.rules.enforcement.min_officers, "goes": goes, "me": person.sub}


@router.get("/enforcement", response_class=HTMLResponse)
async def enforcement_page(request: Request, done: str | None = None) -> Response:
    person = guard(request, "enforcement")
    services = console_of(request).services
    error = None
    inspections: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    try:
        inspections = await services.call(person, "enforcement", "GET", "/v1/inspections", params={"limit": 100})
        cases = await services.call(person, "enforcement", "GET", "/v1/cases", params={"limit": 100})
    except ServiceError as exc:
        error = exc
    return render(request, "enforcement.html", title="执法检查", inspections=inspections, cases=cases,
                  error=error, done=done)


async def _inspection_view(request: Request, person: Person, inspection_id: str,
                           error: ServiceError | None = None, form: dict[str, Any] | None = None) -> Response:
    try:
        inspection = await console_of(request).services.call(person, "enforcement", "GET",
                                                             f"/v1/inspections/{inspection_id}")
    except ServiceError as exc:
        return render(request, "refused.html", _status(exc), title="检查", message=exc.page_line)
    return render(request, "inspection.html", 200 if error is None else _status(error), title="综合检查",
                  inspection=inspection, error=error, form=form or {}, officers=_officers(request, person),
                  team=_team(request, person, inspection["town_code"]))


@router.get("/enforcement/inspections/{inspection_id}", response_class=HTMLResponse)
async def inspection_page(request: Request, inspection_id: str) -> Response:
    return await _inspection_view(request, guard(request, "enforcement"), inspection_id)


@router.post("/enforcement/inspections/{inspection_id}/start", response_class=HTMLResponse)
async def start(request: Request, inspection_id: str) -> Response:
    person = guard(request, "enforcement", acting=True)
    form = await checked_form(request)
    try:
        await console_of(request).services.call(person, "enforcement", "POST",
                                                f"/v1/inspections/{inspection_id}/start",
                                                json={"officers": form.getlist("officers")})
    except ServiceError as exc:
        return await _inspection_view(request, person, inspection_id, exc, {"officers": form.getlist("officers")})
    return RedirectResponse(f"/enforcement/inspections/{inspection_id}", status_code=303)


@router.post("/enforcement/inspections/{inspection_id}/result", response_class=HTMLResponse)
async def result(request: Request, inspection_id: str) -> Response:
    person = guard(request, "enforcement", acting=True)
    form = await checked_form(request)
    findings = []
    for task_id in form.getlist("task_ids"):
        finding: dict[str, Any] = {"task_id": task_id, "outcome": str(form.get(f"outcome.{task_id}", "")),
                                   "note": str(form.get(f"note.{task_id}", ""))}
        if rectify_by := str(form.get(f"rectify_by.{task_id}", "")):
            finding["rectify_by"] = rectify_by
        findings.append(finding)
    body = {"officers": form.getlist("officers"), "present_units": form.getlist("present_units"),
            "findings": findings}
    try:
        await console_of(request).services.call(person, "enforcement", "POST",
                                                f"/v1/inspections/{inspection_id}/result", json=body)
    except ServiceError as exc:
        kept = {"officers": body["officers"], "present_units": body["present_units"],
                "findings": {f["task_id"]: f for f in findings}}
        return await _inspection_view(request, person, inspection_id, exc, kept)
    return RedirectResponse(f"/enforcement/inspections/{inspection_id}", status_code=303)


async def _evidence_sent(request: Request, person: Person, path: str) -> ServiceError | None:
    """Evidence photos and their note posted on to enforcement's multipart route (issue #29);
    its refusal, or None."""
    form = await checked_form(request)
    photos = await chosen_photos(form)
    try:
        data = {"note": str(form.get("note", ""))}
        if step := str(form.get("step", "")):  # a case's: the step the photos document (else its current)
            data["step"] = step
        await console_of(request).services.call(person, "enforcement", "POST", path, files=photos, data=data)
    except ServiceError as exc:
        return exc
    return None


@router.post("/enforcement/inspections/{inspection_id}/evidence", response_class=HTMLResponse)
async def inspection_evidence(request: Request, inspection_id: str) -> Response:
    person = guard(request, "enforcement", acting=True)
    if error := await _evidence_sent(request, person, f"/v1/inspections/{inspection_id}/evidence"):
        return await _inspection_view(request, person, inspection_id, error)
    return RedirectResponse(f"/enforcement/inspections/{inspection_id}", status_code=303)


@router.get("/enforcement/cases/{case_id}", response_class=HTMLResponse)
async def case_page(request: Request, case_id: str) -> Response:
    return await _case_view(request, guard(request, "enforcement"), case_id)


async def _case_view(request: Request, person: Person, case_id: str, error: ServiceError | None = None) -> Response:
    try:
        case = await console_of(request).services.call(person, "enforcement", "GET", f"/v1/cases/{case_id}")
    except ServiceError as exc:
        return render(request, "refused.html", _status(exc), title="案件", message=exc.page_line)
    # The finding that opened the case is the inspection's (its 立案 step keeps only a log line).
    finding = None
    with contextlib.suppress(ServiceError):
        inspection = await console_of(request).services.call(person, "enforcement", "GET",
                                                             f"/v1/inspections/{case['inspection_id']}")
        finding = next((f for f in inspection.get("findings") or [] if f["task_id"] == case["task_id"]), None)
    return render(request, "case.html", 200 if error is None else _status(error), title="执法案件", case=case,
                  error=error, finding=finding)


@router.post("/enforcement/cases/{case_id}/{action}", response_class=HTMLResponse)
async def case_action(request: Request, case_id: str, action: str) -> Response:
    if action == "evidence":  # photos (issue #29): a multipart form of its own
        person = guard(request, "enforcement", acting=True)
        if error := await _evidence_sent(request, person, f"/v1/cases/{case_id}/evidence"):
            return await _case_view(request, person, case_id, error)
        return RedirectResponse(f"/enforcement/cases/{case_id}", status_code=303)
    person, form = await acting_form(request, "enforcement", action, ("steps", "extension"))
    if action == "steps":
        body = {k: str(form.get(k, "")) or None for k in ("step", "decision", "note")}
    else:
        body = {"reason": str(form.get("reason", ""))}
    try:
        await console_of(request).services.call(person, "enforcement", "POST", f"/v1/cases/{case_id}/{action}",
                                                json=body)
    except ServiceError as exc:
        return await _case_view(request, person, case_id, exc)
    return RedirectResponse(f"/enforcement/cases/{case_id}", status_code=303)
