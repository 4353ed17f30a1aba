"""Offset commits in batches. A message's offset is marked only after its effect and inbox row
have committed in PostgreSQL; marked offsets are committed to Kafka every few hundred
milliseconds instead of once per message (a broker round trip each). A crash re-delivers at most
that window, and the inbox makes re-delivery harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import TopicPartition

log = logging.getLogger(__name__)


class OffsetCommitter:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending: dict[int, tuple[Any, dict[TopicPartition, int]]] = {}

    def mark(self, consumer: Any, topic: str, partition: int, offset: int) -> None:
        """The message at `offset` is handled: the consumer may resume after it."""
        _, offsets = self._pending.setdefault(id(consumer), (consumer, {}))
        tp = TopicPartition(topic, partition)
        offsets[tp] = max(offsets.get(tp, 0), offset + 1)

    async def commit(self) -> None:
        pending, self._pending = self._pending, {}
        for consumer, offsets in pending.values():
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # revoked in a rebalance: the new owner re-delivers, the inbox dedups
                log.info("offset commit skipped: %s", exc)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.commit()
        finally:
            with contextlib.suppress(Exception):
                await self.commit()
