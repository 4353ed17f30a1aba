"""Group commit: concurrent commands that each need a short transaction are written together.

Under load, requests that arrive while a transaction is being written wait for it and are then
written in ONE transaction, so a burst costs one BEGIN/COMMIT (one fsync) and one statement per
kind of row instead of a transaction each — and a row every command must lock (a daily
sequence) is locked once per batch instead of being fought over by every request. Alone, a
command is written at once. One writer at a time per process: the batch grows with the load.

If writing a batch fails, its commands are written again one by one, so only the one that fails
sees the error (as the batch consumer does with events) — unless the failure is no command's own
(`shared_failures`: the database away, a lock wait cut short), which every command of the batch
gets at once: written one by one, each would wait out the same trouble again in turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
C = TypeVar("C")  # a command
R = TypeVar("R")  # its result

# Each command's own outcome: a result, or an exception meant for that command alone.
WriteBatch = Callable[[Sequence[C]], Awaitable[Sequence[R | BaseException]]]


# The most commands one transaction takes: the rest wait for the next. Large enough that a burst
# costs few commits, small enough that one transaction's locks and statement stay short.
MAX_BATCH = 200


class GroupCommit(Generic[C, R]):
    def __init__(self, write: WriteBatch[C, R], max_batch: int = MAX_BATCH,
                 shared_failures: tuple[type[Exception], ...] = ()) -> None:
        self._write = write
        self.max_batch = max_batch
        self._shared_failures = shared_failures
        self._waiting: list[tuple[C, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, command: C) -> R:
        """Write `command` with whatever else is waiting; its own result or exception."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, future))
        if self._writer is None:
            # Its own task: a caller that goes away (a client hanging up) does not cancel the
            # transaction the others are waiting for.
            self._writer = asyncio.create_task(self._write_while_waiting())
        return await future  # cancelled when the caller goes away; the write goes on

    async def _write_while_waiting(self) -> None:
        batch: list[tuple[C, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
                await self._write_batch(batch)
        except BaseException:
            # Stopped mid-write (the service shutting down): nobody may wait for ever.
            left, self._waiting = [*batch, *self._waiting], []
            for _, future in left:
                if not future.done():
                    future.set_exception(RuntimeError("the writer stopped before this was written"))
            raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[C, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._write([command for command, _ in batch])
        except self._shared_failures as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                outcomes = [exc]
            else:
                log.warning("a batch of %d failed (%s); writing it one by one", len(batch), exc)
                for single in batch:
                    await self._write_batch([single])
                return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
