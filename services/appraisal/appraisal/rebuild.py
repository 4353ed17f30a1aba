"""Rebuild: replay every topic appraisal consumes, from the beginning, into an empty database,
and check that it ends with exactly the figures the live service holds.

    python -m appraisal rebuild --into postgresql://…/appraisal_rebuild [--compare]

The parent departments' posted scores of seconded units are the one input not on a topic: they
are copied from the live database first. Score notifications written during the replay are
dropped, not published again: subscribers have had them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from townflow_shared import db
from townflow_shared.inbox import handle_once
from townflow_shared.kafka import topic_partitions

from . import flows, store
from .app import MIGRATIONS, create_runtime
from .settings import AppraisalSettings


class NotEmpty(RuntimeError):
    """The target database already holds handled events; a rebuild starts from nothing."""


async def rebuild(settings: AppraisalSettings, into: str, report: Callable[[str], None] = print,
                  every: int = 1000) -> dict[str, int]:
    runtime = create_runtime(settings)
    live = await db.create_pool(settings.database_url.get_secret_value(), 1, 2)
    target = await db.create_pool(into, 1, 4)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=500)
    try:
        await db.migrate(target, [db.SHARED_MIGRATIONS, MIGRATIONS])
        if await target.fetchval("SELECT count(*) FROM inbox"):
            raise NotEmpty(f"{into.rsplit('/', 1)[-1]} already holds handled events")
        async with target.acquire() as conn, conn.transaction():
            for row in await store.all_seconded_scores(live):
                await store.post_seconded_score(conn, row["unit"], row["period"], row["score"],
                                                row["posted_by"], row["posted_at"])
        runtime.use_pool(target)
        by_topic = {event_type.topic: (event_type, registered.name, registered.handler)
                    for event_type, registered in runtime.handlers.items()}
        await consumer.start()
        partitions = await topic_partitions(settings.kafka_bootstrap, list(by_topic))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends.values())
        stats = {"total": total, "replayed": 0, "applied": 0, "skipped_invalid": 0, "failed": 0}
        report(f"replaying {total} messages from {len(by_topic)} topics")
        started = time.monotonic()
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    stats["replayed"] += 1
                    event_type, name, handler = by_topic[record.topic]
                    try:
                        event = event_type.model_validate_json(record.value)
                    except (ValidationError, ValueError):
                        stats["skipped_invalid"] += 1  # the live consumer dead-lettered it too
                        continue

                    async def effect(conn: asyncpg.Connection, e: Any = event, h: Any = handler) -> None:
                        await h(conn, e, runtime)

                    try:
                        if await handle_once(target, runtime.service, name, event, effect):
                            stats["applied"] += 1
                    except (ValueError, KeyError) as exc:  # the live consumer dead-lettered these too
                        stats["failed"] += 1
                        report(f"  {record.topic}[{record.partition}]@{record.offset} rejected: {exc}")
                    if stats["replayed"] % every == 0:
                        rate = stats["replayed"] / max(time.monotonic() - started, 1e-9)
                        report(f"  {stats['replayed']}/{total} ({100 * stats['replayed'] / max(total, 1):.0f}%), "
                               f"{rate:.0f} msg/s")
        await target.execute("DELETE FROM outbox")
        report(f"replayed {stats['replayed']} messages: {stats['applied']} applied, "
               f"{stats['skipped_invalid']} invalid skipped, {stats['failed']} rejected")
        return stats
    finally:
        await consumer.stop()
        await live.close()
        await target.close()


async def snapshot(settings: AppraisalSettings, dsn: str) -> dict[str, Any]:
    """Every period's figures in a database, as plain data for comparison."""
    runtime = create_runtime(settings)
    pool = await db.create_pool(dsn, 1, 2)
    try:
        periods = [r["period"] for r in await pool.fetch(
            "SELECT DISTINCT period FROM task_facts WHERE period IS NOT NULL"
            " UNION SELECT DISTINCT period FROM inspection_facts ORDER BY 1")]
        result: dict[str, Any] = {}
        for period in periods:
            figures = await flows.period_figures(pool, runtime.town, period)
            result[period] = {kind: [flows.as_dict(f) for f in figs] for kind, figs in figures.items()}
        return json.loads(json.dumps(result, sort_keys=True, default=str))  # type: ignore[no-any-return]
    finally:
        await pool.close()


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    diffs = []
    for period in sorted(set(a) | set(b)):
        for kind in sorted(set(a.get(period, {})) | set(b.get(period, {}))):
            left = {f["subject_id"]: f for f in a.get(period, {}).get(kind, [])}
            right = {f["subject_id"]: f for f in b.get(period, {}).get(kind, [])}
            for subject in sorted(set(left) | set(right)):
                if left.get(subject) != right.get(subject):
                    diffs.append(f"{period} {kind} {subject}: {left.get(subject)} != {right.get(subject)}")
    return diffs
