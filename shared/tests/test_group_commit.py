"""Group commit: what waits together is written together; a failure reaches only its own command."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from townflow_shared.group_commit import GroupCommit


class Recorder:
    def __init__(self, poison: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.poison = poison or set()
        self.release = asyncio.Event()

    async def write(self, commands: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(commands))
        if len(self.batches) == 1:
            await self.release.wait()  # the first transaction is slow: others queue meanwhile
        if self.poison & set(commands) and len(commands) > 1:
            raise RuntimeError("the batch fails as a whole")
        return [ValueError(f"{c} refused") if c in self.poison else c * 10 for c in commands]


async def test_commands_waiting_on_a_write_share_the_next_one() -> None:
    recorder = Recorder()
    writer: GroupCommit[int, int] = GroupCommit(recorder.write)
    first = asyncio.create_task(writer.submit(1))
    await asyncio.sleep(0)  # the first write has started and holds the writer
    rest = [asyncio.create_task(writer.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_a_failing_batch_is_written_again_one_by_one_and_only_the_culprit_fails() -> None:
    recorder = Recorder(poison={3})
    writer: GroupCommit[int, int] = GroupCommit(recorder.write)
    first = asyncio.create_task(writer.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(writer.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 10
    outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert outcomes[0] == 20 and outcomes[2] == 40
    assert isinstance(outcomes[1], ValueError) and "3 refused" in str(outcomes[1])
    assert recorder.batches == [[1], [2, 3, 4], [2], [3], [4]]


async def test_a_failure_that_is_no_commands_own_reaches_the_whole_batch_at_once() -> None:
    class Away(ConnectionError):
        pass

    batches: list[list[int]] = []
    release = asyncio.Event()

    async def write(commands: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(commands))
        if len(batches) == 1:
            await release.wait()
            return [c * 10 for c in commands]
        raise Away("the database went away")

    writer: GroupCommit[int, int] = GroupCommit(write, shared_failures=(Away,))
    first = asyncio.create_task(writer.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(writer.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    release.set()
    assert await first == 10
    outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert all(isinstance(o, Away) for o in outcomes)
    assert batches == [[1], [2, 3, 4]]  # not written again one by one


async def test_batches_are_capped_and_a_caller_that_leaves_does_not_stop_the_others() -> None:
    recorder = Recorder()
    writer: GroupCommit[int, int] = GroupCommit(recorder.write, max_batch=2)
    first = asyncio.create_task(writer.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(writer.submit(n)) for n in (2, 3, 4, 5)]
    await asyncio.sleep(0)
    rest[0].cancel()  # a client hung up while waiting
    recorder.release.set()
    assert await first == 10
    with pytest.raises(asyncio.CancelledError):
        await rest[0]
    assert await asyncio.gather(*rest[1:]) == [30, 40, 50]
    assert recorder.batches == [[1], [2, 3], [4, 5]]


async def test_a_writer_stopped_mid_write_fails_everyone_waiting_instead_of_leaving_them_hanging() -> None:
    recorder = Recorder()
    writer: GroupCommit[int, int] = GroupCommit(recorder.write)
    first = asyncio.create_task(writer.submit(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(writer.submit(2))
    await asyncio.sleep(0)
    assert writer._writer is not None
    writer._writer.cancel()  # as at shutdown, while the first transaction is being written
    outcomes = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), timeout=5)
    assert all(isinstance(o, RuntimeError) and "writer stopped" in str(o) for o in outcomes)
    assert await asyncio.wait_for(writer.submit(3), timeout=5) == 30  # a new writer takes over
