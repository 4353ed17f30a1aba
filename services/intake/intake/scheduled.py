"""Intake's loops: the citizen's personal data erased once the retention period after the matter's
closure is over (issue #28 item 7); the photos' orphan sweep (issue #29)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from . import flows
from .flows import Deps


def erasure_loop(deps: Deps) -> Callable[[Any], Awaitable[None]]:
    """The loop the service runs for its life (its argument, the process runtime, is not used)."""

    async def erasure_loop(_: Any) -> None:
        """Wakes every `intake_erasure_seconds`, or at once when a test moves the clock; replicas
        share the batches (their rows are claimed with SKIP LOCKED)."""
        while True:
            await flows.erase_expired_personal_data(deps)
            await deps.clock.wait_moved(deps.settings.intake_erasure_seconds)

    return erasure_loop
