"""A loaded stage is measured on a settled system, the same way each time. The history is written in
half an hour where a county takes a year: right after the consumers catch up, PostgreSQL is still
vacuuming and analysing millions of new rows, writing them out at checkpoints, and the services
are still relaying what they produced. Timed then, every read (a primary-key lookup as much as a
month's rankings) is slower by whatever that work takes from two cores, and the slowdown differs
from stage to stage. So before each loaded stage: every database vacuumed and analysed (what
autovacuum converges to over a year), a checkpoint, then a wait until the machine is quiet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg

QUIET_BUSY = 0.30       # share of both cores busy under which the machine counts as quiet
QUIET_WINDOWS = 3       # that many consecutive windows
WINDOW_SECONDS = 2.0


def cpu_times(stat: Path = Path("/proc/stat")) -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot."""
    fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total if total else 0.0


async def quiet(longest: float, report: Callable[[str], None]) -> dict[str, Any]:
    """Wait until QUIET_WINDOWS windows in a row are under QUIET_BUSY, at most `longest` seconds:
    a machine never quiet is measured anyway, and the figure says how busy it was."""
    if longest <= 0:
        return {"quiet_wait_seconds": 0.0, "busy_share_when_measured": None}
    started = time.monotonic()
    streak, last = 0, 1.0
    while streak < QUIET_WINDOWS and time.monotonic() - started < longest:
        before = cpu_times()
        await asyncio.sleep(WINDOW_SECONDS)  # a window of CPU time, not a wait for a condition
        last = busy_share(before, cpu_times())
        streak = streak + 1 if last < QUIET_BUSY else 0
    waited = round(time.monotonic() - started, 1)
    if streak < QUIET_WINDOWS:
        report(f"  the machine stayed busy ({last:.0%}) for {waited:.0f}s: measured anyway")
    return {"quiet_wait_seconds": waited, "busy_share_when_measured": round(last, 3)}


async def settle(dsns: Iterable[str], longest_quiet_wait: float, report: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    for dsn in dsns:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM (ANALYZE)")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
    vacuumed = round(time.monotonic() - started, 1)
    report(f"  every database vacuumed, analysed and checkpointed in {vacuumed:.0f}s")
    return {"vacuum_seconds": vacuumed, **await quiet(longest_quiet_wait, report)}
