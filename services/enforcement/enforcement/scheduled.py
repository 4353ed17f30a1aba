"""Enforcement's loops: decision limits of undecided cases (day-60 warning, overdue) on the
service's clock; the evidence objects' orphan sweep (issue #29) on the wall clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import asyncpg

from townflow_shared.clock import Clock
from townflow_shared.deadlines import drain_due
from townflow_shared.town import EnforcementRules

from . import flows
from .deps import Deps
from .unit_of_work import PostgresUnitOfWork


async def flag_all_due(pool: asyncpg.Pool, limits_of: Mapping[str, EnforcementRules], clock: Clock,
                       batch_size: int) -> int:
    """Set every case flag due now in every town, each by its town's limits (`limits_of` by town
    code; see townflow_shared.deadlines), each with its `case.flagged` event; how many."""
    return await drain_due(pool, clock, lambda conn, now, limit: flows.flag_due_cases(
        PostgresUnitOfWork(conn), limits_of, now, limit), batch_size)


def case_deadline_loop(deps: Deps) -> Callable[[object], Awaitable[None]]:
    async def case_deadline_loop(_: object) -> None:
        """Wakes every `case_deadline_seconds`, or at once when a test moves the clock; one pass
        covers every town of the deployment."""
        limits_of = {code: town.rules.enforcement for code, town in deps.county.towns.items()}
        while True:
            await flag_all_due(deps.database.pool, limits_of, deps.clock, deps.settings.case_deadline_batch_size)
            await deps.clock.wait_moved(deps.settings.case_deadline_seconds)

    return case_deadline_loop
