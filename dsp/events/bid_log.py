"""The bidder's in-process event buffer: bid and loss events reach the stream in batches.

The bid path must not wait for Redis on their account: ``append`` is synchronous and only
adds to a list; a background task sends what gathered, every ``flush_s``, as a few stream
entries (``event_batch_max`` events each, Arrow IPC) in one pipelined round trip. Memory is bounded:
beyond ``max_events`` waiting, events are dropped and counted, never waited for. A failed
flush keeps its events for the next one (within the same bound); closing flushes the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dmp.profile import UNSCORED
from dsp.events.schema import BATCH_FIELD, Event, encode_batch
from dsp.metrics import Metrics
from infra import keys
from infra.tasks import cancel_requested, stop_tasks

if TYPE_CHECKING:
    from dsp.bidder.openrtb import BidRequest
    from dsp.bidder.response import Admitted

log = logging.getLogger(__name__)


class EventBuffer:
    def __init__(
        self,
        redis: Redis,
        *,
        max_events: int = 100_000,
        flush_s: float = 0.2,
        batch_max: int = 1000,
        stream_maxlen: int = 1_000_000,
        stream: bytes = keys.EVENTS,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis = redis
        self._max = max_events
        self._flush_s = flush_s
        self._batch = max(1, batch_max)
        self._maxlen = stream_maxlen
        self._stream = stream
        self._metrics = metrics or Metrics()
        self._events: list[Event] = []
        # Bids as the bidder holds them: the events are built off the bid path, at flush.
        self._bids: list[tuple[BidRequest, Admitted, str, int]] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.sent = 0

    def __len__(self) -> int:
        return len(self._events) + len(self._bids)

    def _full(self, adding: int = 1) -> bool:
        if len(self._events) + len(self._bids) + adding <= self._max:
            return False
        self.dropped += adding
        self._metrics.count("events_dropped", adding)
        return True

    def append(self, event: Event) -> bool:
        """Queue one event; False (and counted) when the buffer is full."""
        if self._full():
            return False
        self._events.append(event)
        return True

    def bids(
        self,
        request: BidRequest,
        admitted: Sequence[Admitted],
        device: str,
        now_ms: int,
    ) -> None:
        """Queue one bid event per admitted bid: a list append each, nothing built yet."""
        bids = self._bids
        for item in admitted:
            if len(bids) + len(self._events) < self._max:
                bids.append((request, item, device, now_ms))
            else:
                self._full()

    @staticmethod
    def _bid_event(request: BidRequest, item: Admitted, device: str, now_ms: int) -> Event:
        """The event of one bid, with what the bidder saw of the request."""
        imp, line = item.bid.imp, item.bid.line
        creative = line.creative
        w, h = creative.w, creative.h
        if not (w and h) and imp.banner_sizes:
            w, h = imp.banner_sizes[0]
        event = {
            "type": "bid", "ts": now_ms, "auction": request.id, "imp": imp.id,
            "campaign": line.campaign.id, "creative": creative.id, "device": device,
            "tags": list(item.tags), "price": line.price_micros,
            "site_cat": sorted(request.categories), "os": request.os, "w": w or 0, "h": h or 0,
        }  # fmt: skip
        scores = item.scores
        if scores is not None:  # issue 12: each matched tag's score, as the pCVR model reads it
            event["scores"] = [scores.get(tag, UNSCORED) for tag in item.tags]
        return event

    async def flush(self) -> int:
        """Send every queued event now; how many were sent."""
        bids, self._bids = self._bids, []
        events = [self._bid_event(*bid) for bid in bids] + self._events
        self._events = []
        if not events:
            return 0
        sent = 0
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for start in range(0, len(events), self._batch):
                    payload = self._encode(events[start : start + self._batch])
                    if payload is None:
                        continue
                    data, count = payload
                    sent += count
                    pipe.xadd(
                        self._stream, {BATCH_FIELD: data}, maxlen=self._maxlen, approximate=True
                    )
                await pipe.execute()
        except (RedisError, OSError) as error:
            room = max(0, self._max - len(self._events))
            kept = events[:room]
            self._events[:0] = kept
            lost = len(events) - len(kept)
            if lost:
                self.dropped += lost
                self._metrics.count("events_dropped", lost)
            log.warning("event flush failed", extra={"error": str(error), "kept": len(kept)})
            return 0
        self.sent += sent
        self._metrics.count("events_sent", sent)
        return sent

    def _encode(self, events: list[Event]) -> tuple[bytes, int] | None:
        """The batch as Arrow IPC and how many events it holds; an event that does not fit
        the schema is dropped and counted, not the batch with it (None: none fit)."""
        try:
            return encode_batch(events), len(events)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            good = []
            for event in events:
                try:
                    encode_batch([event])
                except (pa.ArrowException, TypeError, ValueError, OverflowError):
                    self._metrics.count("events_malformed")
                    extra = {"event": repr(event)[:300]}
                    log.error("event dropped: does not fit the schema", extra=extra)
                else:
                    good.append(event)
            return (encode_batch(good), len(good)) if good else None

    async def run(self) -> None:
        while not cancel_requested():
            await asyncio.sleep(self._flush_s)
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def close(self) -> None:
        """Stop the flusher and send what is left."""
        if self._task is not None:
            task, self._task = self._task, None
            await stop_tasks([task])
        await self.flush()
