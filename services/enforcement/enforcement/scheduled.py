"""Enforcement's loops: decision limits of undecided cases (day-60 warning, overdue) on the
service's clock; the evidence objects' orphan sweep (issue #29) on the wall clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

import asyncpg

from townflow_shared.clock import Clock
from townflow_shared.deadlines import drain_due
from townflow_shared.objects import StoreUnavailable
from townflow_shared.town import EnforcementRules

from . import evidence, flows
from .deps import Deps
from .store import PgStore


async def flag_all_due(pool: asyncpg.Pool, limits_of: Mapping[str, EnforcementRules], clock: Clock,
                       batch_size: int) -> int:
    """Set every case flag due now in every town, each by its town's limits (`limits_of` by town
    code; see townflow_shared.deadlines); how many."""
    return await drain_due(pool, clock, lambda conn, now, limit: flows.flag_due_cases(
        PgStore(conn), limits_of, now, limit), batch_size)


def case_deadline_loop(deps: Deps) -> Callable[[object], Awaitable[None]]:
    async def case_deadline_loop(_: object) -> None:
        """Wakes every `case_deadline_seconds`, or at once when a test moves the clock; one pass
        covers every town of the deployment."""
        limits_of = {code: town.rules.enforcement for code, town in deps.county.towns.items()}
        while True:
            await flag_all_due(deps.database.pool, limits_of, deps.clock, deps.settings.case_deadline_batch_size)
            await deps.clock.wait_moved(deps.settings.case_deadline_seconds)

    return case_deadline_loop


def evidence_sweep_loop(deps: Deps) -> Callable[[object], Awaitable[None]]:
    """The orphan sweep of enforcement's objects (evidence.sweep_orphans), for the service's life."""

    async def evidence_sweep_loop(_: object) -> None:
        """Wakes every `enforcement_evidence_sweep_seconds` on the wall clock, not the service's (a
        test moves that one): an object's age is the object store's own clock. It removes only
        objects no evidence row records; replicas may sweep at once, removing an orphan twice is
        no harm."""
        log = logging.getLogger(__name__)
        while deps.objects is not None:
            grace = timedelta(seconds=deps.settings.enforcement_evidence_orphan_grace_seconds)
            try:
                if removed := await evidence.sweep_orphans(deps.objects, deps, datetime.now(UTC) - grace):
                    log.info("removed %d evidence objects no recording recorded", removed)
            except StoreUnavailable as error:
                log.warning("evidence sweep: the object store did not answer: %s", error)
            await asyncio.sleep(deps.settings.enforcement_evidence_sweep_seconds)

    return evidence_sweep_loop
