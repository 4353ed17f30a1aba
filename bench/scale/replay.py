"""Appraisal's rebuild (`python -m appraisal rebuild`) against a bare aiokafka consumer reading
the same topics from the beginning: the replay's rate and the floor the broker and client set."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer

from devstack.stack import REPO
from townflow_shared.kafka import topic_partitions

from .topics import CONSUMED, end_offsets


async def bare_consumer(bootstrap: str, topics: list[str]) -> dict[str, Any]:
    """Read every message of `topics` up to their end offsets now; nothing done with them."""
    ends = await end_offsets(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.monotonic()
        read = 0
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                read += sum(1 for r in records if r.offset < ends[tp])
            # By position, not by the last record: a partition's log may end in a transaction
            # marker, which takes an offset and is no record.
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
    return {"messages": read, "seconds": round(elapsed, 2), "rate": round(read / elapsed, 1) if elapsed else 0.0}


async def appraisal_rebuild(env: Mapping[str, str], into: str) -> dict[str, Any]:
    """Run the rebuild CLI into an empty database; its rate over the whole run (start-up and
    migrations included) and, when it printed one, over the replay alone."""
    messages = sum((await end_offsets(env["TOWNFLOW_KAFKA_BOOTSTRAP"], CONSUMED["appraisal"])).values())
    started = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appraisal", "rebuild", "--into", into, cwd=REPO, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await child.communicate()
    elapsed = time.monotonic() - started
    text = output.decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"appraisal rebuild exited {child.returncode}:\n{text[-3000:]}")
    # The CLI prints lines for people ("  12000/50000 (24%), 2100 msg/s", "replayed N messages");
    # a machine-readable summary would spare this parsing.
    replayed = re.search(r"replayed (\d+) messages", text)
    rates = re.findall(r"\(\d+%\), (\d+) msg/s", text)
    return {"messages": messages, "replayed": int(replayed.group(1)) if replayed else None,
            "seconds": round(elapsed, 2), "rate": round(messages / elapsed, 1),
            "rate_reported_by_rebuild": float(rates[-1]) if rates else None, "output_tail": text[-600:]}
