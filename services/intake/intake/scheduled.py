"""Intake's loops: the citizen's personal data erased once the retention period after the matter's
closure is over (issue #28 item 7); the photos' orphan sweep (issue #29)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from townflow_shared.objects import StoreUnavailable

from . import attachments, flows
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


def photo_sweep_loop(deps: Deps) -> Callable[[Any], Awaitable[None]]:
    """The orphan sweep of the photos' objects (attachments.sweep_orphans), for the service's life."""

    async def photo_sweep_loop(_: Any) -> None:
        """Wakes every `intake_photo_sweep_seconds` on the wall clock, not the service's (a test
        moves that one): an object's age is the object store's own clock. Replicas may sweep at
        once; removing an orphan twice is no harm."""
        while deps.objects is not None:
            older_than = datetime.now(UTC) - timedelta(seconds=deps.settings.intake_photo_orphan_grace_seconds)
            try:
                removed = await attachments.sweep_orphans(deps.objects, deps.unit_of_work, older_than)
                if removed:
                    logging.getLogger(__name__).info("removed %d photo objects no filing recorded", removed)
            except StoreUnavailable as error:
                logging.getLogger(__name__).warning("photo sweep: the object store did not answer: %s", error)
            await asyncio.sleep(deps.settings.intake_photo_sweep_seconds)

    return photo_sweep_loop
