"""What every page shares: the session and person of a request, the pages a person may see, the
CSRF check of a posted form, and rendering a template with the navigation."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from starlette.datastructures import FormData

from townflow_shared.county import County

from . import labels, session_audit
from .accounts import Person
from .metrics import CSRF_REFUSED
from .names import TownNames
from .services import browser_address
from .session import Session, csrf_matches

if TYPE_CHECKING:
    from .app import Console

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.globals["L"] = labels


@pass_context
def names_in(context: Context, town: str | None = None) -> TownNames:
    """In a template: the names and clock of `town` (a record's own `town_code`), else of the page's
    person's town (a county role's, or no one's: the county's)."""
    person: Person | None = context.get("person")
    return console_of(context["request"]).names.of(town or (person.town if person is not None else None))


@pass_context
def when(context: Context, value: object, town: str | None = None) -> str:
    """In a template: a service's time on the town's clock (times.shown), `2026-12-06 08:12`."""
    return names_in(context, town).when(value)


def photo_address(kind: str, owner: str, attachment_id: str, variant: str = "photo") -> str:
    """The console's address of a photo (pages/photos.py): of a matter (`requests`, by ticket), a
    task, an inspection or a case; what pages link to and show, never the object store's."""
    return f"/photos/{kind}/{owner}/{attachment_id}" + ("?variant=thumbnail" if variant == "thumbnail" else "")


def photo_href(kind: str, owner: str) -> Callable[[dict[str, Any], str], str]:
    """In a template: `photo_href('requests', ticket)` for `photo_strip`, the address of each photo listed."""
    return lambda photo, variant: photo_address(kind, owner, str(photo["attachment_id"]), variant)


templates.env.globals["N"] = names_in
templates.env.globals["when"] = when
templates.env.globals["photo_href"] = photo_href


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    path: str
    roles: frozenset[str]


# Which roles each page is for: the services' own rules on who may call what (README "Access").
PAGES = (
    Page("board", "指挥中心", "/board", frozenset({"command_centre"})),
    Page("intake", "窗口受理", "/intake", frozenset({"clerk", "proxy_agent", "village_station", "command_centre"})),
    Page("tasks", "我的任务", "/tasks", frozenset({"staff", "module_leader", "officer"})),
    Page("enforcement", "执法检查", "/enforcement", frozenset({"officer"})),
    Page("appraisal", "绩效考核", "/appraisal", frozenset({"appraisal_admin", "command_centre", "module_leader"})),
    Page("county", "全县排名", "/county", frozenset({"county_reader", "county_admin"})),
    Page("suspensions", "挂起审批", "/suspensions", frozenset({"command_centre"})),
    Page("deliveries", "消息记录", "/deliveries", frozenset({"command_centre"})),  # issue #31: notify's log
    Page("map", "地图", "/map", frozenset({"command_centre"})),  # issue #30
    Page("hotspots", "热点", "/hotspots", frozenset({"appraisal_admin", "command_centre", "module_leader"})),
    Page("audit", "审计", "/audit", frozenset({"auditor"})),
    Page("rehearsal", "改革预演", "/rehearsal", frozenset({"appraisal_admin"})),  # and the party secretary
)
BY_KEY = {p.key: p for p in PAGES}


class SignInNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Forbidden(Exception):
    """No page and no action for a person without the page's role."""


class CsrfRefused(Exception):
    """A form posted without the session's CSRF token."""


class NoSuchAction(Exception):
    """A form posted to an action the page does not have."""


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def session_of(request: Request) -> Session:
    return request.state.session  # type: ignore[no-any-return]


def start_session(request: Request, session: Session, ending: str = session_audit.SIGN_OUT) -> None:
    """The one way a session begins (sign-in with a person, sign-out with none): with the answer,
    the request's old session ends on every replica — recorded as `ending` in the audit trail,
    when a person had signed in — and the new one is stored under a new id, written to the
    cookie (app.SessionMiddleware)."""
    request.state.session = session
    request.state.session_changed = True
    request.state.session_ending = (ending, session_audit.Where.of(request))


# A county department reads the county's board, appraisal and town ranking; the county's admin
# holds every role; a town's staff see the pages of their roles, never the county's ranking.
COUNTY_READER_PAGES = frozenset({"board", "appraisal", "county"})


def party_secretary(person: Person, county: County | None) -> bool:
    """The town's party secretary (党委书记, named in town.yaml), who may rehearse a reform of the
    town's layout whatever their roles (dispatch's rehearsal.may_rehearse)."""
    town = county.towns.get(person.town or "") if county is not None else None
    return town is not None and town.info.party_secretary == person.sub


def visible_pages(person: Person | None, county: County | None = None) -> list[Page]:
    if person is None:
        return []
    if "county_admin" in person.roles:
        return list(PAGES)
    if "county_reader" in person.roles:
        return [p for p in PAGES if p.key in COUNTY_READER_PAGES]
    return [p for p in PAGES if p.key != "county" and (
        person.has_any(p.roles) or (p.key == "rehearsal" and party_secretary(person, county)))]


def guard(request: Request, page: str, acting: bool = False) -> Person:
    """The signed-in person, if the page is theirs (to act on it, too): else sign-in or 403."""
    person = session_of(request).person
    if person is None:
        raise SignInNeeded(request.url.path)
    browser_address.set(request.client.host if request.client else None)  # for the services' audit records
    if BY_KEY[page] not in visible_pages(person, console_of(request).county) or (acting and not person.has_any(BY_KEY[page].roles)):
        raise Forbidden()
    return person


def signed_in(request: Request) -> Person:
    """The signed-in person, whatever their roles: for what the service itself decides on (a photo
    of a matter: intake answers whoever may read it, and 404 to anyone else)."""
    person = session_of(request).person
    if person is None:
        raise SignInNeeded(request.url.path)
    browser_address.set(request.client.host if request.client else None)
    return person


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token is the session's."""
    form = await request.form()
    if not csrf_matches(session_of(request), form.get("csrf")):
        CSRF_REFUSED.inc()
        raise CsrfRefused()
    return form


async def acting_form(request: Request, page: str, action: str, actions: Collection[str]) -> tuple[Person, FormData]:
    """Who acts on `page` and their checked form, for one of the page's `actions`: else sign-in,
    403, the CSRF refusal or 404 (no such action), in that order."""
    person = guard(request, page, acting=True)
    form = await checked_form(request)
    if action not in actions:
        raise NoSuchAction()
    return person, form


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    # No session on the quiet paths (/static/…): their refusal pages are drawn signed out.
    session: Session | None = getattr(request.state, "session", None)
    person = session.person if session is not None else None
    county = console_of(request).county if person is not None else None  # the party secretary's page
    return templates.TemplateResponse(request, template, {
        "person": person, "csrf": session.csrf if session is not None else "", "pages": visible_pages(person, county),
        "path": request.url.path, **context}, status_code=status_code)
