"""Intake's request and response models (SPEC §5.2): what the HTTP API takes and answers."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from townflow_shared.events import Channel, Colour, Rating
from townflow_shared.types import Command, Identifier, Text

from . import refusals

# A phone as clerks type it (digits, spaces, dashes, a leading +) and a resident id number (17
# digits and a check digit or X). A mismatch is named by its code, never by these patterns.
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{4,19}")
_ID_NUMBER = re.compile(r"\d{17}[\dXx]")


class Citizen(Command):
    name: Text = Field(min_length=1, max_length=50)
    phone: str | None = Field(default=None, description="5–20 digits, spaces or dashes, an optional +")
    id_number: str | None = Field(default=None, description="the resident id number (18 characters)")

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.fullmatch(value):
            raise refusals.PHONE_MALFORMED.pydantic()
        return value

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str | None) -> str | None:
        if value is not None and not _ID_NUMBER.fullmatch(value):
            raise refusals.ID_NUMBER_MALFORMED.pydantic()
        return value

    @model_validator(mode="after")
    def _identifiable(self) -> Citizen:
        if not self.phone and not self.id_number:
            raise refusals.CITIZEN_CONTACT_MISSING.pydantic()
        return self


class FileRequest(Command):
    channel: Channel
    item_code: Identifier = Field(min_length=1, max_length=40)
    description: Text = Field(min_length=1, max_length=2000)
    village: Identifier = Field(min_length=1, max_length=40)
    location: Text = Field(min_length=1, max_length=200)
    target: Identifier | None = Field(
        default=None, min_length=1, max_length=64,
        description="the enterprise's unified social credit code or the site id (required for enforcement items)")
    colour: Colour | None = None
    citizen: Citizen
    proxy_agent_id: Identifier | None = Field(default=None, min_length=1, max_length=40)
    village_record_id: Identifier | None = Field(default=None, min_length=1, max_length=64)
    town_code: Identifier | None = Field(
        default=None, min_length=1, max_length=20,
        description="the town filed in: required of county_admin in a county; a town's staff file in their own town")


class PossibleDuplicate(BaseModel):
    ticket_no: str
    item_code: str
    village: str
    status: str
    filed_at: str
    reason: str = Field(description="same_target, or similar_location (same item and village)")
    location_similarity: float


class Filed(BaseModel):
    request_id: str
    ticket_no: str
    access_code: str
    colour: Colour
    status: str
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
    citizen: CitizenSeen | None = None
    description: str | None = None
    location: str | None = None


class RatingBody(Command):
    rating: Rating


class Rated(BaseModel):
    ticket_no: str
    rating: Rating
    rated_at: str


class MergeBody(Command):
    into: Identifier = Field(min_length=1, max_length=40, description="the primary matter's ticket number")


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
