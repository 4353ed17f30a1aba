"""Intake's business rules as pure functions: no I/O, no clock reads. A refusal is returned as a
value (its code, field and params, from `refusals`) for the command handler to raise."""

from __future__ import annotations

import difflib
import functools
import hashlib
import hmac
import math
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from townflow_shared.events import Colour
from townflow_shared.problems import FieldError, Refusal
from townflow_shared.town import CatalogItem, IntakeRules, Town

from .refusals import CODES

if TYPE_CHECKING:
    from townflow_shared.auth import Principal

COLOURS: tuple[Colour, ...] = ("yellow", "orange", "red")
# No 0/O or 1/I/L: the citizen reads the code off a slip or hears it on the phone.
ACCESS_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def normalise_id_number(id_number: str) -> str:
    return re.sub(r"\s+", "", id_number).upper()


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def citizen_ref(key: bytes, id_number: str | None, phone: str | None) -> str:
    """HMAC-SHA256 of the normalised id number, else phone: links a citizen's matters without
    revealing who they are to anyone who reads the topics."""
    if id_number:
        basis = "id:" + normalise_id_number(id_number)
    elif phone:
        basis = "phone:" + normalise_phone(phone)
    else:
        raise ValueError("an id number or a phone is needed to identify the citizen")
    return hmac.new(key, basis.encode(), hashlib.sha256).hexdigest()


# A ticket number as `ticket_number` makes it: the town's 9-digit code, the local day, the daily
# sequence. Its length with the pattern: a trailing newline is no ticket number, in any regex dialect.
TICKET_NUMBER_PATTERN = r"^[0-9]{9}-[0-9]{8}-[0-9]{5}$"
TICKET_NUMBER_LENGTH = 24


def ticket_number(town_code: str, day: date, sequence: int) -> str:
    if not 1 <= sequence <= 99_999:
        raise ValueError(f"daily sequence {sequence} is outside 1..99999")
    return f"{town_code}-{day:%Y%m%d}-{sequence:05d}"


def town_of_ticket(ticket_no: str) -> str:
    """The town a ticket number names (SPEC §8: each town numbers its own tickets)."""
    return ticket_no.split("-", 1)[0]


# A new ticket's access code: 9 characters of the 31 (31⁹ ≈ 2.6·10¹³; the odds: test_rules).
# Codes issued before (6 characters) stay valid: a code is read at either length.
ACCESS_CODE_LENGTH = 9
OLD_ACCESS_CODE_LENGTH = 6
# What `normalise_access_code` takes (the OpenAPI document says so too): the code's characters, in
# either case, with spaces or dashes between them and whitespace around them, as a citizen may type it.
_CODE_CHARACTERS = ACCESS_CODE_ALPHABET + "".join(c.lower() for c in ACCESS_CODE_ALPHABET if c.isalpha())
# Exactly 6 or 9 of them, at most one space or dash between two: the pattern says no more and no less
# than what is read, so a client (and a generator drawing from it) can tell a code before it calls.
_C = f"[{_CODE_CHARACTERS}]"
ACCESS_CODE_PATTERN = rf"^\s*(?:(?:{_C}[ -]?){{8}}|(?:{_C}[ -]?){{5}}){_C}\s*$"
_ACCESS_CODE = re.compile(ACCESS_CODE_PATTERN)
CODE_GUESS_WINDOW = timedelta(hours=1)
# The "something more" a ticket under attack asks for: the last four characters of the phone the
# citizen gave (else of their id number: three digits and a check character, 0-9 or X).
CONTACT_TAIL_LENGTH = 4
CONTACT_TAIL_PATTERN = r"^\s*[0-9Xx]{4}\s*$"
_CONTACT_TAIL = re.compile(CONTACT_TAIL_PATTERN)


def new_access_code(length: int = ACCESS_CODE_LENGTH) -> str:
    return "".join(secrets.choice(ACCESS_CODE_ALPHABET) for _ in range(length))


def normalise_access_code(code: str) -> str | None:
    """The code as issued (the citizen may type it in lower case, in groups, with spaces around
    it), or None when it cannot be one: neither length, or a character outside the alphabet."""
    if not _ACCESS_CODE.fullmatch(code):
        return None
    plain = re.sub(r"[\s-]", "", code).upper()
    return plain if len(plain) in (ACCESS_CODE_LENGTH, OLD_ACCESS_CODE_LENGTH) else None


def codes_match(issued: str, given: str) -> bool:
    """Constant time, so the time an answer takes says nothing of how much of a guess was right."""
    return hmac.compare_digest(issued.encode(), given.encode())


def normalise_contact_tail(tail: str) -> str | None:
    return tail.strip().upper() if _CONTACT_TAIL.fullmatch(tail) else None


def contact_tail(phone: str | None, id_number: str | None) -> str:
    """The last four characters the citizen gave: of the phone, else of the id number."""
    basis = normalise_phone(phone) if phone else normalise_id_number(id_number or "")
    return basis[-CONTACT_TAIL_LENGTH:]


def address_ref(key: bytes | None, address: str) -> str:
    """What intake keeps of a client address while it counts its wrong codes (an hour): a keyed
    hash (the citizen_ref key), so the table names no one's address."""
    basis = f"address:{address}".encode()
    digest = hmac.new(key, basis, hashlib.sha256) if key else hashlib.sha256(basis)
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class WrongCode:
    at: datetime
    address: str  # address_ref of where it came from ("" for one counted before addresses were)


def recent_wrong_codes(failures: list[WrongCode], now: datetime) -> list[WrongCode]:
    return [w for w in failures if w.at > now - CODE_GUESS_WINDOW]


def guessing_wait(recent: list[WrongCode], address: str, now: datetime, allowed_per_hour: int) -> int | None:
    """Seconds until `address` may try another code on a ticket that saw `recent` wrong codes within
    the last hour; None while fewer than `allowed_per_hour` came from it. Per address: a stranger's
    wrong codes never make the citizen wait (SPEC §6.1, issue #28). A sliding window: the wait ends
    when the oldest of them is an hour old."""
    own = sorted(w.at for w in recent if w.address == address)
    if len(own) < allowed_per_hour:
        return None
    return max(1, math.ceil((own[-allowed_per_hour] + CODE_GUESS_WINDOW - now).total_seconds()))


def under_attack(recent: list[WrongCode], allowed_per_hour: int) -> bool:
    """A ticket that saw `allowed_per_hour` wrong codes within the hour, from more than one address:
    the code alone no longer opens it, the code and the contact's last four characters do. So the
    code-only guesses of any number of addresses are at most `allowed_per_hour` an hour (one address
    alone is held to as many by `guessing_wait`, and puts no one else to the extra step)."""
    return len(recent) >= allowed_per_hour and len({w.address for w in recent}) > 1


def raise_colour(colour: Colour) -> Colour:
    return COLOURS[min(COLOURS.index(colour) + 1, len(COLOURS) - 1)]


def colour_for(requested: Colour | None, item: CatalogItem, earlier_filings: int,
               rules: IntakeRules) -> Colour:
    """The filer's choice, else the item's default; raised one level when this is the same
    citizen's Nth filing of the same item within the window (default: 3rd in 30 days)."""
    colour = requested or item.default_colour
    if earlier_filings + 1 >= rules.repeat_filing_count:
        colour = raise_colour(colour)
    return colour


def closest_items(query: str, town: Town, limit: int = 3) -> list[CatalogItem]:
    """Catalog items nearest to an unknown code, by code and by (Chinese) name."""
    query = query.strip()
    if not query:
        return []

    def score(item: CatalogItem) -> float:
        by_code = difflib.SequenceMatcher(None, query.upper(), item.code.upper()).ratio()
        by_name = difflib.SequenceMatcher(None, query, item.name).ratio()
        contains = 1.0 if query in item.name or item.name in query else 0.0
        return max(by_code, by_name, contains)

    ranked = sorted(town.catalog.values(), key=lambda item: (-score(item), item.code))
    return [item for item in ranked[:limit] if score(item) > 0.2]


@dataclass(frozen=True)
class Placed:
    """Where a filing is: its village, and from its point (if any) the grid cell."""

    village: str
    cell: str | None = None
    point: tuple[float, float] | None = None  # (longitude, latitude), WGS 84


def placed(*, town: Town, item: CatalogItem, village: str | None,
           point: tuple[float, float] | None) -> Placed | Refusal:
    """The filing's village and grid cell (issue #30), or the refusal of its point: only a located
    item takes one (a person's own matter would be placed at a home), inside the town's map, in the
    village given if one is. Without a point, the village as given (the request model needs one)."""
    if point is None:
        if village is None:
            return CODES["filing.village_missing"]("village")
        return Placed(village)
    if not item.located:
        return CODES["filing.point_not_located"]("point", item=item.code)
    if town.places is None:
        return CODES["filing.point_no_map"]("point", town=town.info.name)
    found = town.places.locate(*point)
    if found is None:
        return CODES["filing.point_outside_town"]("point", town=town.info.name)
    if village is not None and village != found.village:
        return CODES["filing.village_contradicts_point"]("village", village=village, located=found.village)
    return Placed(found.village, found.cell, point)


def filing_refusal(*, town: Town, item: CatalogItem, village: str, target: str | None,
                   proxy_agent_id: str | None) -> Refusal | None:
    """Why the town refuses a filing its request model took (409), or None: what it names that
    the town does not have (the village, the proxy agent) and what the item needs (a target).
    The first names the answer; `errors` lists them all, so every field at fault is shown at
    once. The channel's own fields are the request model's."""
    problems: list[FieldError] = []
    if village not in town.villages:
        problems.append(CODES["filing.village_unknown"].error(
            "village", village=village, town=town.info.name, villages=list(town.villages)))
    if proxy_agent_id is not None and proxy_agent_id not in proxy_agents(town):
        problems.append(CODES["filing.proxy_agent_unknown"].error(
            "proxy_agent_id", agent=proxy_agent_id, town=town.info.name, agents=proxy_agents(town)))
    if item.task_kind in ("enforcement", "joint_visit") and not target:
        problems.append(CODES["filing.target_missing"].error("target", task_kind=item.task_kind))
    if not problems:
        return None
    first = problems[0]
    return Refusal(CODES.codes[first.code], field=first.field, errors=problems,
                   params=first.params or {}, detail=first.detail)


def unknown_item(query: str, town: Town) -> Refusal:
    """The refusal of an item code the town's catalog does not hold, with the closest items."""
    closest = closest_items(query, town)
    return CODES["item.unknown"]("item_code", item=query, town=town.info.name,
                                 suggestions=[i.code for i in closest],
                                 suggestion_names=[i.name for i in closest])


def proxy_agents(town: Town) -> list[str]:
    """The staff ids of a town's village proxy agents (代办员)."""
    return [s.id for s in town.staff.values() if "proxy_agent" in s.roles]


TIMELINE_STEPS = ("filed", "dispatched", "accepted", "returned", "supervised", "inspected",
                  "completed", "verified", "rated")


def may_rate(status: str, already_rated: bool) -> Refusal | None:
    """None when a rating is allowed, else the refusal."""
    if already_rated:
        return CODES["rating.already_given"]()
    if status not in ("completed", "closed"):
        return CODES["rating.not_completed"](status=status)
    return None


# 办事进度: where a matter is, as the citizen is told (the console says it in words): received and
# waiting for its department, being handled, answered (completed, the closure check to come; it may
# be rated), or closed. A returned, reworked or reopened matter is being handled again.
CITIZEN_STAGES = {"filed": "received", "dispatched": "handling", "in_progress": "handling",
                  "returned": "handling", "rework": "handling", "reopened": "handling",
                  "completed": "answered", "closed": "closed",
                  "suspended": "suspended"}  # 挂起: waiting on the citizen's materials or another unit


def citizen_stage(status: str) -> str:
    return CITIZEN_STAGES.get(status, "handling")


def reply_shown(status: str) -> bool:
    """The answer is the citizen's once the task is completed; while the matter is handled again
    (rework, reopened) the old answer is withdrawn until the new one comes."""
    return citizen_stage(status) in ("answered", "closed")


# Where a status stands in a matter's life; breaks ties between events stamped at the same moment
# (topics are consumed side by side, so "completed" may arrive before "dispatched").
STATUS_ORDER = {"filed": 0, "dispatched": 1, "returned": 2, "in_progress": 2, "suspended": 2, "completed": 3,
                "rework": 4, "closed": 5, "reopened": 6}
# 挂起: the matter's status once its task resumes, from the status dispatch gives the task back.
RESUMED_STATUS = {"dispatched": "dispatched", "accepted": "in_progress", "rework": "rework"}

# --- 重复件 (SPEC §10) ---------------------------------------------------------------------------
# A matter still being worked on: a new filing may duplicate it, and it may be merged or merged into.
OPEN_STATUSES = ("filed", "dispatched", "in_progress", "returned", "rework", "reopened", "completed", "suspended")
# What a filing weighs and answers: the newest open matters of its item and village, and of its
# target, this many of each (a busy week of one item stays one bounded look, issue #16); of those
# that are likely the same matter, the newest few are what a clerk reads before filing on.
DUPLICATE_CANDIDATES_PER_KIND = 50
DUPLICATE_HINTS_MAX = 10
# A merged matter's task is closed as `merged`: only a matter whose task has not been completed
# may be merged away (a completed one waits for its closure check and counts as done).
MERGEABLE_STATUSES = ("filed", "dispatched", "in_progress", "returned", "rework", "reopened")


@functools.lru_cache(maxsize=4096)
def normalise_location(location: str) -> str:
    """Full-width to half-width (NFKC), lower case, without spaces or punctuation: clerks and
    villagers write `南塘村 3组`, `南塘村三组（村口）` and `南塘村,3组` for one place. Remembered
    for the last few thousand texts: each filing weighs up to a hundred open matters, mostly the
    same ones the filing before it weighed (in `make bench` weighing them was a quarter of
    intake's CPU per matter)."""
    text = unicodedata.normalize("NFKC", location).lower()
    return "".join(c for c in text if not (c.isspace() or unicodedata.category(c).startswith("P")))


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)} if len(text) > 1 else {text}


def location_similarity(a: str, b: str) -> float:
    """How alike two locations read, 0–1: 1 when the normalised texts are equal or one contains
    the other (`南塘村村道` and `南塘村村道K2+300`); else the Dice coefficient of their character
    bigrams. Bigrams, not trigrams: Chinese place names are short and carry meaning in two
    characters (`南塘`, `村道`), so trigrams would miss most near matches."""
    x, y = normalise_location(a), normalise_location(b)
    if not x or not y:
        return 0.0
    if x in y or y in x:
        return 1.0
    bx, by = _bigrams(x), _bigrams(y)
    return 2 * len(bx & by) / (len(bx) + len(by))


@dataclass(frozen=True)
class Candidate:
    """An open matter of the town filed within the duplicate window (as store reads it)."""

    ticket_no: str
    item_code: str
    village: str
    location: str
    target: str | None
    distance_m: float | None = None  # from the new filing's point, when both have one


def duplicate_reason(candidate: Candidate, *, item_code: str, village: str, location: str,
                     target: str | None, rules: IntakeRules) -> tuple[str, float] | None:
    """Why `candidate` may be the same matter as a new filing, with the location similarity:
    `same_target` (one enterprise or site), else `nearby` (same item, its point within the town's
    distance of the new one's), else `similar_location` (same item, same village, a location at
    least as alike as the town's rule). None when it is not a likely duplicate."""
    similarity = round(location_similarity(candidate.location, location), 2)
    if target is not None and candidate.target == target:
        return "same_target", similarity
    if (candidate.item_code == item_code and candidate.distance_m is not None
            and candidate.distance_m <= rules.duplicate_distance_m):
        return "nearby", similarity
    if (candidate.item_code == item_code and candidate.village == village
            and similarity >= rules.duplicate_location_similarity):
        return "similar_location", similarity
    return None


@dataclass(frozen=True)
class MergeSide:
    """What a merge needs to know of a matter."""

    ticket_no: str
    town_code: str
    status: str
    merged_into: str | None  # the primary's ticket number, when this matter is merged
    followers: int  # matters merged into this one


def merge_refusal(merged: MergeSide, into: MergeSide) -> Refusal | None:
    """The refusal (its code, the field at fault: `into` or `ticket_no`) when `merged` may not be
    merged into `into`; None when it may. A chain of merges is refused: every follower follows one
    primary that is not itself merged."""
    if merged.ticket_no == into.ticket_no:
        return CODES["merge.into_itself"]("into")
    if merged.town_code != into.town_code:
        return CODES["merge.other_town"]("into", ticket=into.ticket_no)
    if merged.merged_into is not None:
        return CODES["merge.already_merged"]("ticket_no", ticket=merged.ticket_no, primary=merged.merged_into)
    if merged.followers:
        return CODES["merge.has_merged_matters"]("ticket_no", ticket=merged.ticket_no, count=merged.followers)
    if merged.status not in MERGEABLE_STATUSES:
        return CODES["merge.not_open"]("ticket_no", ticket=merged.ticket_no, status=merged.status)
    if into.merged_into is not None:
        return CODES["merge.primary_merged"]("into", ticket=into.ticket_no, primary=into.merged_into)
    if into.status not in OPEN_STATUSES:
        return CODES["merge.primary_closed"]("into", ticket=into.ticket_no, status=into.status)
    return None


def unmerge_refusal(merged_into: str | None, primary_status: str | None) -> Refusal | None:
    """Why a merge may not be undone; None when it may (SPEC §10: until the primary closes)."""
    if merged_into is None:
        return CODES["unmerge.not_merged"]("ticket_no")
    if primary_status == "closed":
        return CODES["unmerge.primary_closed"]("ticket_no", primary=merged_into)
    return None


def newer_status(current: str, current_at: datetime | None, candidate: str, candidate_at: datetime) -> bool:
    """Whether an event's status replaces the matter's current one: the later event wins; at
    the same moment, the one further along the matter's life."""
    if current_at is None or candidate_at > current_at:
        return True
    if candidate_at < current_at:
        return False
    return STATUS_ORDER.get(candidate, 0) >= STATUS_ORDER.get(current, 0)


# --- the matter in front of the handler (issue #27) ----------------------------------------------
# Intake follows each task of a matter from dispatch's events (`Holder`): who holds it, its post and
# lead module, its status. Whoever holds the task now, their module leader and the command centre
# see the citizen's name and phone; the rest of the town's staff see the matter without them.
TASK_OPEN_STATUSES = ("dispatched", "accepted", "rework")  # dispatch's open statuses
# Ties between task events stamped at the same moment go to the one further along the task's life.
TASK_STATUS_ORDER = {"dispatched": 0, "accepted": 1, "returned": 2, "completed": 2, "rework": 3, "closed": 4,
                     "merged": 5}
# Why a caller sees the citizen (what each read of personal data records).
SeenAs = Literal["assignee", "module_leader", "command_centre"]


@dataclass(frozen=True)
class Holder:
    """One task of a matter as intake knows it (None: a field its dispatch event has not told yet)."""

    assignee: str | None
    post: str | None
    lead_module: str | None
    status: str

    @property
    def open(self) -> bool:
        return self.status in TASK_OPEN_STATUSES


def newer_task_status(current: str | None, current_at: datetime | None, candidate: str,
                      candidate_at: datetime) -> bool:
    """Whether a task event's status replaces the one intake holds: the later event wins; at the
    same moment, the one further along the task's life (topics are consumed side by side)."""
    if current is None or current_at is None or candidate_at > current_at:
        return True
    if candidate_at < current_at:
        return False
    return TASK_STATUS_ORDER.get(candidate, 0) >= TASK_STATUS_ORDER.get(current, 0)


def leaders_of(holder: Holder, town: Town) -> set[str]:
    """The module leaders of a task: of its post's module (who may act on it, as dispatch decides)
    and of its lead module."""
    modules = {holder.lead_module}
    if holder.post is not None and (post := town.posts.get(holder.post)) is not None:
        modules.add(post.module)
    return {town.modules[m].leader for m in modules if m is not None and m in town.modules}


def citizen_basis(actor: Principal, town: Town, holders: list[Holder]) -> SeenAs | None:
    """Why `actor` sees the citizen's name and phone of a matter of `town` with these tasks, or
    None: the matter without them. Only the town's own staff: the command centre (it calls the
    citizen back after closure and takes returned tasks, so whatever the task's state); the
    assignee of an open task (while it is theirs); the leader of an open task's module. A county
    role never (SPEC §1), nor any other role or staff member of the town."""
    if actor.town != town.code:
        return None
    if "command_centre" in actor.roles:
        return "command_centre"
    open_tasks = [h for h in holders if h.open]
    if any(h.assignee == actor.sub for h in open_tasks):
        return "assignee"
    if any(actor.sub in leaders_of(h, town) for h in open_tasks):
        return "module_leader"
    return None


def status_reader_role(actor: Principal) -> str:
    """As what a staff token read a matter's status with its citizen: the role that let it."""
    for role in ("command_centre", "clerk", "county_admin", "admin"):
        if role in actor.roles:
            return role
    return "admin"  # has_any admits no one else


# --- citizens' SMS (issue #31 item 3, docs/notify.md "Citizens' SMS") -----------------------------
# Quiet hours on the town's clock: from 21:00 until 08:00 only a red matter's messages go out; the
# others wait for 08:00.
QUIET_FROM, QUIET_UNTIL = 21, 8
# What a provider's template variable holds at most (the providers cap each variable; 35 is Alibaba
# Cloud's for a notification): the reply is cut to it, the whole answer is on the status page.
SMS_PARAM_MAX = 35
# A mainland mobile number as the gateways take it (PhoneNumbers): 11 digits, 1 and 3-9 first.
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def quiet_until(local_now: datetime, red: bool) -> datetime | None:
    """When a message may go, if not now: None for a red matter's, or outside quiet hours; else the
    next 08:00 of the town (`local_now` is the town's local time, and so is the answer)."""
    if red or QUIET_UNTIL <= local_now.hour < QUIET_FROM:
        return None
    morning = local_now.replace(hour=QUIET_UNTIL, minute=0, second=0, microsecond=0)
    return morning if local_now.hour < QUIET_UNTIL else morning + timedelta(days=1)


def mobile_number(phone: str | None) -> str | None:
    """The citizen's phone as an SMS gateway takes it (a leading +86 dropped, spaces and dashes
    gone), or None when it is no mainland mobile number (a landline, or none given)."""
    if not phone:
        return None
    digits = normalise_phone(phone)
    return digits if _MOBILE.fullmatch(digits) else None


def short_param(text: str, limit: int = SMS_PARAM_MAX) -> str:
    """A template variable within the provider's limit: cut with … past it."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
