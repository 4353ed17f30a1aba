"""Notify's HTTP API: the delivery log (sent or waiting, attempts, why), for the command centre.
An adapter only: validate → the store's read → the answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from townflow_shared import problems
from townflow_shared.auth import Principal, require
from townflow_shared.problems import responses
from townflow_shared.scope import towns_to_read
from townflow_shared.types import NO_NUL_PATTERN, TOWN_CODE_PATTERN

from .deps import Deps
from .store import PgStore


async def _deps(request: Request) -> Deps:
    return request.app.state.deps  # type: ignore[no-any-return]


router = APIRouter(tags=["notify"])
Wired = Annotated[Deps, Depends(_deps)]
CommandCentre = Annotated[Principal, Depends(require("command_centre"))]
LISTED = (*problems.AUTHENTICATED, problems.TOWN_NOT_SERVED, problems.TOWN_NOT_FOUND, problems.TOWN_REQUIRED,
          problems.INVALID)


class DeliveryEntry(BaseModel):
    """One message to one person on one channel, as the delivery log keeps it."""

    id: int
    event_id: uuid.UUID
    event_type: str
    town_code: str
    recipient: str
    channel: str
    title: str
    status: Literal["pending", "sent"]
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    in_digest: bool


@router.get("/v1/deliveries", response_model=list[DeliveryEntry], responses=responses(*LISTED))
async def list_deliveries(deps: Wired, principal: CommandCentre,
                          status: Literal["pending", "sent"] | None = None,
                          event_id: uuid.UUID | None = None,
                          recipient: Annotated[str | None, Query(pattern=NO_NUL_PATTERN, max_length=64)] = None,
                          town: Annotated[str | None, Query(json_schema_extra={"pattern": TOWN_CODE_PATTERN})] = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                          offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> list[DeliveryEntry]:
    """The newest first: the caller's town; county roles every town, or `town`. `pending` with
    attempts and `last_error`: a receiver that is down, tried again at `next_attempt_at`. `offset`
    skips the newest ones (the console's pages)."""
    towns = [t.code for t in towns_to_read(deps.county, principal, town)]
    async with deps.database.pool.acquire() as conn:
        rows = await PgStore(conn).deliveries(towns, status, event_id, recipient, limit, offset)
    return [DeliveryEntry(**dict(row)) for row in rows]
