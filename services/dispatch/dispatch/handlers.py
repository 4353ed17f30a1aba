"""Dispatch's event handlers: decode → rules → store + outbox, one transaction each."""

from __future__ import annotations

import asyncpg

from townflow_shared.events import RequestFiled
from townflow_shared.runtime import ServiceRuntime

from . import store


async def request_filed(conn: asyncpg.Connection, event: RequestFiled, runtime: ServiceRuntime) -> None:
    if event.data.item_code not in runtime.town.catalog:
        raise ValueError(f"item {event.data.item_code!r} is not in this town's catalog")
    await store.record_matter(conn, event.data, event.id, runtime.clock.now())
