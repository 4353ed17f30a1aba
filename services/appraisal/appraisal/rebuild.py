"""Rebuild: replay every topic appraisal consumes, from the beginning, into an empty database,
and check that it ends with exactly the figures the live service holds.

    python -m appraisal rebuild --into postgresql://…/appraisal_rebuild [--compare]

The parent departments' posted scores of seconded units are the one input not on a topic: they
are copied from the live database first. The replay runs the live consumer's path (BatchConsumer,
then flows.apply_batch) on large fetches: a few set-based statements per batch of thousands of
events, one transaction each. Parsing and folding events is Python's work on one core, so
`rebuild_workers` processes replay side by side, each reading every record and applying those
of its share of the towns. Nothing is published again (subscribers have had it); alerts are
kept."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import queue
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from townflow_shared import db
from townflow_shared.cloudevents import CE_PREFIX
from townflow_shared.consumer import BatchConsumer, ParsedBatch, Poison
from townflow_shared.county import load_county
from townflow_shared.dlq import describe
from townflow_shared.kafka import topic_partitions
from townflow_shared.logs import setup_logging
from townflow_shared.retry import Retrying

from . import flows, store
from .app import MIGRATIONS, create_runtime
from .settings import AppraisalSettings

log = logging.getLogger(__name__)


def _without_waiting_for_flush(dsn: str) -> str:
    """The target's sessions commit without waiting for the WAL flush: a crash loses at most the
    last moments of a replay into a fresh database, which is run again anyway (asyncpg takes
    query parameters it does not know as the session's settings)."""
    parts = urlsplit(dsn)
    query = [*parse_qsl(parts.query), ("synchronous_commit", "off")]
    return urlunsplit(parts._replace(query=urlencode(query)))


class NotEmpty(RuntimeError):
    """The target database already holds handled events; a rebuild starts from nothing."""


class _NamePoison:
    """The live consumer dead-lettered these already: a replay only names them, a line each."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report

    async def __call__(self, conn: asyncpg.Connection, poison: Sequence[Poison]) -> None:
        for x in poison:
            self.report(f"  {x.record.topic}[{x.record.partition}]@{x.record.offset} skipped: {describe(x.error)}")


class Progress:
    """Progress lines with the replay's rate and, from the end offsets against the consumer's
    position, the time still to go."""

    def __init__(self, report: Callable[[str], None], total: int, every_seconds: float) -> None:
        self.report = report
        self.total = total
        self.every_seconds = every_seconds
        self.started = time.monotonic()
        self.last = self.started

    def rate(self, replayed: int) -> float:
        return replayed / max(time.monotonic() - self.started, 1e-9)

    def tick(self, replayed: int, remaining: int) -> None:
        now = time.monotonic()
        if replayed == 0 or now - self.last < self.every_seconds:
            return
        self.last = now
        rate = self.rate(replayed)
        self.report(f"  {replayed}/{self.total} ({100 * replayed / max(self.total, 1):.0f}%), {rate:.0f} msg/s,"
                    f" ETA {_duration(remaining / rate if rate else 0)}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


async def rebuild(settings: AppraisalSettings, into: str, report: Callable[[str], None] = print) -> dict[str, int]:
    """Prepare the target, then replay in `settings.rebuild_workers` processes, each the events of
    its share of the towns (so no two ever write the same row), reporting to this one."""
    live = await db.create_pool(settings.database_url.get_secret_value(), 1, 2)
    target = await db.create_pool(into, 1, 2)
    try:
        await db.migrate(target, [db.SHARED_MIGRATIONS, MIGRATIONS])
        if await target.fetchval("SELECT count(*) FROM inbox"):
            raise NotEmpty(f"{into.rsplit('/', 1)[-1]} already holds handled events")
        async with target.acquire() as conn, conn.transaction():
            for row in await store.all_seconded_scores(live):
                await store.post_seconded_score(conn, row["town_code"], row["unit"], row["period"], row["score"],
                                                row["posted_by"], row["posted_at"])
        topics = [event_type.topic for event_type in create_runtime(settings, publishing=False).handlers]
        ends = await _end_offsets(settings.kafka_bootstrap, topics)
        total = sum(ends.values())
        workers = max(1, settings.rebuild_workers)
        report(f"replaying {total} messages from {len(topics)} topics, up to {settings.rebuild_batch_max} a batch,"
               f" in {workers} process{'es' if workers > 1 else ''}")
        progress = Progress(report, total, settings.rebuild_progress_seconds)
        if workers == 1:
            skipped = await replay_share(settings, into, Share(0, 1), ends,
                                        lambda read: progress.tick(read, total - read), report)
        else:
            skipped = await asyncio.to_thread(_in_processes, settings, into, workers, ends, progress)
        for line in skipped:
            report(line)
        applied = await target.fetchval("SELECT count(*) FROM inbox")
        seconds = time.monotonic() - progress.started
        report(f"replayed {total} messages in {seconds:.1f}s ({progress.rate(total):.0f} msg/s):"
               f" {applied} applied, {len(skipped)} poison skipped")
        return {"total": total, "replayed": total, "applied": applied, "poison": len(skipped)}
    finally:
        await live.close()
        await target.close()


@dataclass(frozen=True)
class Share:
    """The towns one replay process takes: those whose code hashes to `index` of `of`. A town's
    events all go to one process, so its matters, tasks and subjects are written by that one only
    (two processes never wait on each other's rows nor apply one task's facts side by side)."""
    index: int
    of: int

    def takes(self, record: ConsumerRecord) -> bool:
        return self.of == 1 or zlib.crc32(_town_of(record).encode()) % self.of == self.index


_TOWN_HEADER = f"{CE_PREFIX}towncode"  # cloudevents.EXTENSIONS: the envelope's town_code


def _town_of(record: ConsumerRecord) -> str:
    """The town of a record from its CloudEvents header (SPEC §11) without parsing its value; an
    older message without it is parsed for `town_code`; one that is not an envelope at all goes
    to the first process, which counts it as poison."""
    for key, value in record.headers or ():
        if key == _TOWN_HEADER:
            return value.decode(errors="replace")
    try:
        town = json.loads(record.value or b"").get("town_code")
    except (ValueError, AttributeError):
        return ""
    return town if isinstance(town, str) else ""


async def replay_share(settings: AppraisalSettings, into: str, share: Share, ends: dict[TopicPartition, int],
                       on_progress: Callable[[int], None], report: Callable[[str], None]) -> list[str]:
    """Every record up to `ends` read, those of `share`'s towns applied through the live consumer's
    own path in large batches; `on_progress` gets the records read and applied so far after each
    batch but the last (the summary line says that one), `report` a line for each batch that
    fails and is tried again (an outage is waited out). The poison records skipped, a line each."""
    runtime = create_runtime(settings, publishing=False)
    target = await db.create_pool(_without_waiting_for_flush(into), 1, 2)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=settings.rebuild_batch_max,
                                # what the live consumer reads: never a fenced relay's aborted sends
                                isolation_level="read_committed")
    skipped: list[str] = []
    try:
        runtime.use_pool(target)
        poison = _NamePoison(skipped.append)
        # the live consumer's own path, in large batches; without a span per event (nothing is traced)
        batches = runtime.batch_consumer(poison)
        batches.per_event_spans = False
        await consumer.start()
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        read = 0
        retrying = Retrying(f"{runtime.service}-rebuild", settings.retry_base_seconds, settings.retry_max_seconds)
        applying: asyncio.Task[int] | None = None
        try:
            while await _remaining(consumer, ends):
                fetched = await consumer.getmany(timeout_ms=500, max_records=settings.rebuild_batch_max)
                records = [r for tp, rs in fetched.items() for r in rs if r.offset < ends[tp]]
                # Parsed while the database applies the batch before: the two cores work at once.
                parsed = batches.parse([r for r in records if share.takes(r)])
                if applying is not None:
                    await applying
                    on_progress(read)
                read += len(records)
                applying = asyncio.create_task(_apply(batches, parsed, retrying, report))
            if applying is not None:
                await applying
        finally:
            if applying is not None and not applying.done():
                applying.cancel()
        return skipped
    finally:
        await consumer.stop()
        await target.close()


def _in_processes(settings: AppraisalSettings, into: str, workers: int, ends: dict[TopicPartition, int],
                  progress: Progress) -> list[str]:
    """The shares in processes of their own (each a core's worth of parsing and folding), their
    progress and poison gathered here; the replay has read everything when the slowest has."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no event loop or pool inherited
    messages = context.Queue()
    processes = [context.Process(target=_share_process, args=(settings, into, Share(i, workers), ends, messages),
                                 name=f"appraisal-rebuild-{i}", daemon=True) for i in range(workers)]
    for process in processes:
        process.start()
    total = sum(ends.values())
    read = [0] * workers
    skipped: list[str] = []
    done: set[int] = set()
    try:
        while len(done) < workers:
            try:
                kind, index, value = messages.get(timeout=1.0)
            except queue.Empty:
                if dead := [p.name for i, p in enumerate(processes) if i not in done and not p.is_alive()]:
                    raise RuntimeError(f"{', '.join(dead)} stopped without finishing") from None
                continue
            if kind == "read":
                read[index] = value
                progress.tick(min(read), total - min(read))
            elif kind == "line":
                progress.report(f"  [{index}] {value.strip()}")
            elif kind == "done":
                done.add(index)
                skipped += value
            else:
                raise RuntimeError(f"appraisal-rebuild-{index} failed:\n{value}")
    finally:
        for process in processes:
            if process.is_alive() and len(done) < workers:
                process.terminate()
            process.join(timeout=10)
    return skipped


def _share_process(settings: AppraisalSettings, into: str, share: Share, ends: dict[TopicPartition, int],
                   messages: Any) -> None:
    setup_logging(settings.service_name, "WARNING")
    try:
        skipped = asyncio.run(replay_share(settings, into, share, ends,
                                          lambda read: messages.put(("read", share.index, read)),
                                          lambda line: messages.put(("line", share.index, line))))
        messages.put(("done", share.index, skipped))
    except BaseException:
        messages.put(("failed", share.index, traceback.format_exc()))
        raise


async def _apply(batches: BatchConsumer, parsed: ParsedBatch, retrying: Retrying,
                 report: Callable[[str], None]) -> int:
    """One batch in one transaction, as the live consumer does, waiting out outages the same way;
    the number of records it held."""
    while parsed.parsed or parsed.poison:
        try:
            await batches.handle_parsed(parsed)
            break
        except Exception as exc:
            delay = retrying.failed(exc)
            report(f"  a batch failed ({describe(exc)}); again in {delay:.1f}s")
            await asyncio.sleep(delay)
    retrying.succeeded()
    return len(parsed.parsed) + len(parsed.poison)


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(await topic_partitions(bootstrap, topics))  # type: ignore[no-any-return]
    finally:
        await consumer.stop()


async def _remaining(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> int:
    """Messages still to replay: the end offsets taken at the start against the position."""
    return sum([max(end - await consumer.position(tp), 0) for tp, end in ends.items()])


async def snapshot(settings: AppraisalSettings, dsn: str) -> dict[str, Any]:
    """Every town's figures of every period in a database, as plain data for comparison:
    {town_code: {period: {subject_type: [figures]}}}."""
    county = load_county(settings.town_dir)
    pool = await db.create_pool(dsn, 1, 2)
    try:
        result: dict[str, Any] = {}
        async with pool.acquire() as conn:
            months = store.Store(conn)
            for row in await store.months(conn):
                town = county.town(row["town_code"])
                if town is None:  # a town no longer served: its facts are kept, its figures not computed
                    result.setdefault(row["town_code"], {})[row["period"]] = "town not served"
                    continue
                figures = await flows.month_figures(months, town, row["period"])
                result.setdefault(town.code, {})[row["period"]] = {
                    kind: [flows.as_dict(f) for f in figs] for kind, figs in figures.items()}
        return json.loads(json.dumps(result, sort_keys=True, default=str))  # type: ignore[no-any-return]
    finally:
        await pool.close()


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    diffs = []
    for town in sorted(set(a) | set(b)):
        left_town, right_town = a.get(town, {}), b.get(town, {})
        for period in sorted(set(left_town) | set(right_town)):
            left_period, right_period = left_town.get(period, {}), right_town.get(period, {})
            if not isinstance(left_period, dict) or not isinstance(right_period, dict):
                if left_period != right_period:
                    diffs.append(f"{town} {period}: {left_period} != {right_period}")
                continue
            for kind in sorted(set(left_period) | set(right_period)):
                left = {f["subject_id"]: f for f in left_period.get(kind, [])}
                right = {f["subject_id"]: f for f in right_period.get(kind, [])}
                for subject in sorted(set(left) | set(right)):
                    if left.get(subject) != right.get(subject):
                        diffs.append(f"{town} {period} {kind} {subject}: {left.get(subject)} != {right.get(subject)}")
    return diffs
