"""The auditor's read of a service's audit trail (issue #28): GET /v1/audit, mounted by every
service (runtime.py). The records are written by audit_trail.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from .audit_trail import search
from .auth import Principal, require
from .county import County
from .db import Database
from .events import AuditFacts
from .problems import AUTHENTICATED, INVALID, TOWN_NOT_FOUND, TOWN_NOT_SERVED, responses
from .scope import towns_to_read
from .types import Instant

AUDITORS = ("auditor",)
PAGE_MAX = 500
BIGINT_MAX = 2**63 - 1  # a record id is a bigint: a larger `before` is no id (422), not an overflow (500)


class AuditQuery(BaseModel):
    """A search of the audit trail: every filter optional, newest first, a page at a time
    (`before`: the `next_before` of the previous page)."""

    actor: str | None = Field(None, max_length=64, pattern="^[^\\u0000]*$", description="the caller's subject")
    action: str | None = Field(None, max_length=100, pattern="^[a-z_.]+$",
                               description="an action's code; ending in `.`: every action under it")
    target: str | None = Field(None, max_length=200, pattern="^[^\\u0000]*$",
                               description="the id of what was acted on (a task, a ticket number, a case)")
    outcome: str | None = Field(None, max_length=100, pattern="^[a-z0-9_.]+$", description="`ok` or a refusal's code")
    town: str | None = Field(None, pattern="^[0-9]{9}$", description="the caller's town (county auditors)")
    since: Instant | None = Field(None, description="from this instant (RFC 3339 with offset)")
    until: Instant | None = Field(None, description="before this instant")
    before: int | None = Field(None, ge=1, le=BIGINT_MAX, description="records written before this one (`next_before`: the next page)")
    limit: int = Field(100, ge=1, le=PAGE_MAX)


class AuditRecordView(AuditFacts):
    service: str
    id: int = Field(description="the order records were written in, the pages' cursor")
    seq: int | None = Field(description="its place in the chain; null until sealed (within a second)")
    at: str = Field(description="RFC 3339 on the county's clock")
    prev_hash: str | None
    hash: str | None


class AuditPage(BaseModel):
    records: list[AuditRecordView]
    next_before: int | None = Field(description="`before` of the next page; null on the last")


def audit_router(service: str, database: Database, county: County) -> APIRouter:
    """GET /v1/audit of a service: the auditor's search of its chain, on the service's database."""
    router = APIRouter(tags=["audit"])
    tz = next(iter(county.towns.values())).calendar.tz  # a county's towns keep one clock

    @router.get("/v1/audit", response_model=AuditPage, responses=responses(
        *AUTHENTICATED, TOWN_NOT_SERVED, TOWN_NOT_FOUND, INVALID))
    async def audit_records(principal: Annotated[Principal, Depends(require(*AUDITORS))],
                            query: Annotated[AuditQuery, Query()]) -> AuditPage:
        """The audit trail of this service (auditors only): a town's auditor reads the records of
        its town's staff; the county's (no town) every record, or `town`'s."""
        towns = None if principal.county_wide and query.town is None else [
            t.code for t in towns_to_read(county, principal, query.town)]
        return await search_page(database.pool, service, towns, query, tz)

    return router


async def search_page(pool: asyncpg.Pool, service: str, towns: Sequence[str] | None, query: AuditQuery,
                      tz: tzinfo) -> AuditPage:
    """A page of the service's records for `query` in `towns` (None: every town's), times on the
    county's clock: what GET /v1/audit answers, and what the console reads of its own trail."""
    rows = await search(pool, towns, query)
    shown = [AuditRecordView(
        service=service, id=r["id"], seq=r["seq"], at=r["at"].astimezone(tz).isoformat(), actor=r["actor"],
        roles=list(r["roles"]), town=r["town_code"], action=r["action"], target_type=r["target_type"],
        target_id=r["target_id"], outcome=r["outcome"], client=r["client"], forwarded_for=r["forwarded_for"],
        correlation_id=r["correlation_id"], prev_hash=r["prev_hash"], hash=r["hash"]) for r in rows[:query.limit]]
    more = len(rows) > query.limit
    return AuditPage(records=shown, next_before=shown[-1].id if more else None)


