"""Intake's request and response models (SPEC §5.2): what the HTTP API takes and answers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from townflow_shared.events import Channel, Colour, Rating
from townflow_shared.types import (
    IDENTIFIER_CHECKS,
    NOT_BLANK_PATTERN,
    TOWN_CODE_PATTERN,
    Command,
    Identifier,
    Text,
)

from .refusals import CODES
from .rules import (
    ACCESS_CODE_PATTERN,
    CONTACT_TAIL_PATTERN,
    TICKET_NUMBER_LENGTH,
    TICKET_NUMBER_PATTERN,
    SeenAs,
)

# Every pattern, bound and "required when" below is in the OpenAPI document as the server checks
# it, so what the schemas allow is accepted and what they do not is refused with a 422. (An exact
# length beside a pattern: Python's `$` also matches before a final newline, the others' do not.)
TownCode = Annotated[str, Field(pattern=TOWN_CODE_PATTERN, min_length=9, max_length=9,
                                description="a town's 9-digit code")]
TicketNumber = Annotated[str, Field(
    pattern=TICKET_NUMBER_PATTERN, min_length=TICKET_NUMBER_LENGTH, max_length=TICKET_NUMBER_LENGTH,
    description="a ticket number: the town's code, the day filed (YYYYMMDD), the day's sequence")]
AccessCodeSchema = {"pattern": ACCESS_CODE_PATTERN}  # checked by rules.normalise_access_code (its own code)
ContactTailSchema = {"pattern": CONTACT_TAIL_PATTERN}  # checked by rules.normalise_contact_tail

# A phone as clerks type it (digits, spaces, dashes, a leading +) and a resident id number (17
# digits and a check digit or X). A mismatch is named by its code, never by these patterns; the
# schema carries them so a client knows before it calls.
_PHONE_PATTERN = r"^\+?[0-9][0-9 -]{4,19}$"
_ID_NUMBER_PATTERN = r"^[0-9]{17}[0-9Xx]$"
_PHONE, _ID_NUMBER = re.compile(_PHONE_PATTERN), re.compile(_ID_NUMBER_PATTERN)
Phone = Annotated[str, Field(json_schema_extra={"pattern": _PHONE_PATTERN})]
IdNumber = Annotated[str, Field(json_schema_extra={"pattern": _ID_NUMBER_PATTERN})]


# Identifiers of 1 to N characters as sent, for the optional fields: their bounds stand before the
# trimming, as they do for a required field and in the schema (pydantic would apply a
# `Field(max_length=...)` of `Identifier | None` to the trimmed value).
Identifier40 = Annotated[str, StringConstraints(min_length=1, max_length=40), *IDENTIFIER_CHECKS]
Identifier64 = Annotated[str, StringConstraints(min_length=1, max_length=64), *IDENTIFIER_CHECKS]


def _required_string(name: str, **schema: Any) -> dict[str, Any]:
    """JSON Schema: `name` present and a string (not null)."""
    return {"required": [name], "properties": {name: {"type": "string", **schema}}}


# Each contact field's form and the code that refuses it (the document states the same patterns).
_CONTACT_FORMS = {"phone": (_PHONE, CODES["citizen.phone_malformed"]), "id_number": (_ID_NUMBER, CODES["citizen.id_number_malformed"])}


class Citizen(Command):
    # The phone or the id number (or both): `citizen.contact_missing` otherwise.
    model_config = ConfigDict(json_schema_extra={"anyOf": [_required_string("phone"),
                                                           _required_string("id_number")]})

    name: Text = Field(min_length=1, max_length=50)
    phone: Phone | None = Field(default=None, description="5–20 digits, spaces or dashes, an optional +")
    id_number: IdNumber | None = Field(default=None, description="the resident id number (18 characters)")

    @field_validator("phone", "id_number")
    @classmethod
    def _well_formed(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern, malformed = _CONTACT_FORMS[info.field_name or ""]
        if value is not None and not pattern.fullmatch(value):
            raise malformed.pydantic()
        return value

    @model_validator(mode="after")
    def _identifiable(self) -> Citizen:
        if not self.phone and not self.id_number:
            raise CODES["citizen.contact_missing"].pydantic()
        return self


# The fields a channel requires (`filing.channel_field_missing`): present, a string, not only
# whitespace (an identifier is trimmed).
CHANNEL_FIELDS = {"proxy": "proxy_agent_id", "village_station": "village_record_id"}


class GeoPoint(Command):
    """A position in WGS 84 (the phone's, or picked on the map; CGCS2000 agrees with it to a few
    centimetres). Only a located item's matter takes one: it is where the matter is (a broken road,
    a stall), never a person's home, which is why a person's own service matter takes none."""

    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)


class FileRequest(Command):
    model_config = ConfigDict(json_schema_extra={
        "allOf": [{"if": {"required": ["channel"], "properties": {"channel": {"const": channel}}},
                   "then": _required_string(field, pattern=NOT_BLANK_PATTERN)}
                  for channel, field in CHANNEL_FIELDS.items()],
        # The village, or a point to find it from (`filing.village_missing`).
        "anyOf": [_required_string("village"), {"required": ["point"], "properties": {"point": {"type": "object"}}}]})

    channel: Channel
    item_code: Identifier = Field(min_length=1, max_length=40)
    description: Text = Field(min_length=1, max_length=2000)
    point: GeoPoint | None = Field(
        default=None, description="where the matter is (located items only): the village and grid cell are found from it")
    # Validated when absent too, after `point`: without a point the village is required (`_placed`).
    village: Identifier40 | None = Field(
        default=None, validate_default=True,
        description="the village's code; may be left out when a point is given (found from it)")
    location: Text = Field(min_length=1, max_length=200)
    target: Identifier64 | None = Field(
        default=None,
        description="the enterprise's unified social credit code or the site id (required for enforcement items)")
    colour: Colour | None = None
    citizen: Citizen
    # Validated when absent too: a channel's own field is required (`_channel_field`).
    proxy_agent_id: Identifier40 | None = Field(default=None, validate_default=True)
    village_record_id: Identifier64 | None = Field(default=None, validate_default=True)
    town_code: TownCode | None = Field(
        default=None,
        description="the town filed in: required of county_admin in a county; a town's staff file in their own town")
    sms_opt_out: bool = Field(default=False, description=(
        "不接收短信: the citizen wants no SMS about this matter (none at filing, completion or for the callback)"))

    @field_validator("village")
    @classmethod
    def _placed(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("point") is None and "point" in info.data:
            raise CODES["filing.village_missing"].pydantic()
        return value

    @field_validator(*CHANNEL_FIELDS.values())
    @classmethod
    def _channel_field(cls, value: str | None, info: ValidationInfo) -> str | None:
        channel = info.data.get("channel")  # absent when the channel itself was refused
        if channel is not None and CHANNEL_FIELDS.get(channel) == info.field_name and not value:
            raise CODES["filing.channel_field_missing"].pydantic(channel=channel)
        return value


class PossibleDuplicate(BaseModel):
    ticket_no: str
    item_code: str
    village: str
    status: str
    filed_at: str
    reason: str = Field(description="same_target, nearby (same item, within the town's distance), or similar_location"
                                    " (same item and village)")
    location_similarity: float
    distance_m: float | None = Field(default=None, description="metres between the two points, when both have one")


class Filed(BaseModel):
    request_id: str
    ticket_no: str
    access_code: str
    colour: Colour
    status: str
    # Issue #30: where the matter was placed (absent for a filing without a point).
    village: str | None = Field(default=None, description="the village filed in: as given, or found from the point")
    grid_cell: str | None = Field(default=None, description="the grid cell (15-digit GB/T 30428 code) the point is in")
    # Issue #27, for the receipt (absent from an answer replayed from the previous release).
    filed_at: str | None = Field(default=None, description="when it was filed, in the town's time zone")
    promised_by: str | None = Field(default=None, description="the date it is promised by (the dispatch rules' deadline)")
    handling_module: str | None = Field(default=None, description="the item's lead module, which will handle it")
    department: str | None = Field(default=None, description="that module's name, as the town calls it")
    possible_duplicates: list[PossibleDuplicate] = Field(
        default_factory=list,
        description="重复件: open matters of the town this one may repeat, newest first, at most 10 (SPEC §10)")


class Step(BaseModel):
    at: str
    step: str
    detail: dict[str, Any] | None = None


class Primary(BaseModel):
    """The matter a merged one follows (重复件): its progress, no one's personal data."""

    ticket_no: str
    status: str
    timeline: list[Step]


class CitizenSeen(BaseModel):
    name: str
    phone: str | None
    id_number: str | None


class PhotoSeen(BaseModel):
    """A photo of the matter (issue #29): filed with it, or taken when its task was completed.
    Read it at `/v1/requests/{ticket_no}/photos/{attachment_id}` (`?variant=thumbnail` for its
    thumbnail)."""

    attachment_id: str
    stage: Literal["filed", "after"] = Field(default="filed", description=(
        "filed: taken at filing; after: by the task's holder when it was completed (处置后照片)"))
    content_type: str
    size: int
    width: int | None = Field(default=None, description="of a filed photo (an after photo is known by reference)")
    height: int | None = None
    sha256: str = Field(description="hex SHA-256 of the stored copy: what a reader fetches, and can check")
    taken_at: str | None = Field(default=None, description="an after photo's completion time, in the town's time zone")


class RequestStatus(BaseModel):
    """A matter's status timeline. `merged_into` only for a merged matter; `citizen`,
    `description` and `location` only for a token that sees personal data (clerk, command centre)."""

    ticket_no: str
    request_id: str
    town_code: str
    item_code: str
    item_name: str | None
    channel: str
    colour: str
    status: str
    village: str
    filed_at: str
    rating: str | None
    timeline: list[Step]
    merged_into: Primary | None = None
    # Issue #27, what the citizen is told (a merged matter: its primary's).
    stage: str = Field(default="received", description=(
        "where the matter is, for the citizen: received, handling, answered (completed; the closure "
        "check is to come), suspended (挂起: waiting on the citizen's materials or another unit) or closed"))
    may_rate: bool = Field(default=False, description="the citizen may rate it now (once, when completed)")
    reply: str | None = Field(default=None, description="the answer (答复): what was done or why not, once completed")
    replied_at: str | None = None
    handling_module: str | None = Field(default=None, description="the module handling it (the item's lead module until dispatched)")
    department: str | None = Field(default=None, description="that module's name, as the town calls it")
    promised_by: str | None = Field(default=None, description=(
        "the date it is promised by: its task's resolve_by (with extensions); before dispatch, as the receipt promised"))
    citizen: CitizenSeen | None = None
    description: str | None = None
    location: str | None = None
    photos: list[PhotoSeen] | None = Field(default=None, description=(
        "its photos — filed with it, then its task's after photos (处置后照片) — for the town's staff, and "
        "for the citizen where the town shows them"))


class RatingBody(Command):
    rating: Rating


class Rated(BaseModel):
    ticket_no: str
    rating: Rating
    rated_at: str


class MergeBody(Command):
    into: TicketNumber = Field(description="the primary matter's ticket number")


class Merged(BaseModel):
    ticket_no: str
    merged_into: str
    merged_at: str


class Unmerged(BaseModel):
    ticket_no: str
    unmerged_from: str
    unmerged_at: str


class CatalogEntry(BaseModel):
    code: str
    name: str
    kind: str
    time_limit: str
    default_colour: Colour
    legal_basis: str
    delegated: bool
    department: str | None
    joint_units: list[str]
    task_kind: str


# --- the matter in front of the handler (issue #27) ----------------------------------------------
class MatterCitizen(BaseModel):
    """The citizen, for 回访 and for handling: only for the callers `rules.citizen_basis` names."""

    name: str
    phone: str | None


class Matter(BaseModel):
    """A matter as the town's staff read it. `citizen` and `citizen_seen_as` only for the task's
    assignee (while the task is open and theirs), its module leader (while open) and the command
    centre; every such answer is recorded. Without them, a phone number typed into `description` or
    `location` is masked, as on the topics."""

    ticket_no: str
    request_id: str
    town_code: str
    status: str
    colour: str
    channel: str
    item_code: str
    item_name: str | None
    village: str
    village_name: str | None
    description: str
    location: str
    target: str | None
    filed_by: str = Field(description="the staff id (or proxy agent) who filed it")
    proxy_agent_id: str | None
    filed_at: str = Field(description="ISO 8601 with the town's offset")
    citizen: MatterCitizen | None = None
    citizen_seen_as: SeenAs | None = Field(
        default=None, description="why the caller sees the citizen")
    photos: list[PhotoSeen] = Field(default_factory=list, description=(
        "the photos filed with it (issue #29), which whoever reads the matter may read"))


# The months appraisal's periods have (2000-01 to 2100-12): a year 0 month is refused, never a 500.
PERIOD_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$"
Period = Annotated[str, Field(pattern=PERIOD_PATTERN, min_length=7, max_length=7,
                              description="YYYY-MM (2000-01 to 2100-12), a month on the town's clock")]


class PersonalDataRead(BaseModel):
    """One read of a citizen's personal data: who, as what, when, which matter (never the data)."""

    town_code: str
    read_at: str = Field(description="ISO 8601 with the town's offset")
    staff_id: str
    seen_as: str = Field(description=(
        "why the citizen was seen: assignee, module_leader or command_centre (the matter read); "
        "command_centre, clerk, county_admin or admin (a staff token's status read)"))
    ticket_no: str
    task_id: str | None


class PersonalDataReads(BaseModel):
    reads: list[PersonalDataRead]
    next_offset: int | None = Field(description="the next page's offset; null on the last page")


# --- citizens' SMS (issue #31 item 3) ---------------------------------------------------------------
class SmsMessage(BaseModel):
    """One SMS to the matter's citizen, as the delivery log keeps it: never the phone or the text."""

    kind: Literal["filed", "completed", "callback"] = Field(description=(
        "filed: the ticket and access code; completed: the reply in short; callback: the invitation to rate it"))
    status: Literal["pending", "sent", "failed", "skipped"] = Field(description=(
        "pending: waits (quiet hours, the callback's day, a gateway down); failed: the number refused for good; "
        "skipped: no mobile number, personal data erased, or already rated"))
    created_at: str = Field(description="when it was queued, in the town's time zone")
    hold_until: str | None = Field(default=None, description="held until then (quiet hours, the callback's day)")
    attempts: int
    last_error: str | None = Field(default=None, description="why it waits, failed or was skipped")
    sent_at: str | None = None
