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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dmp.profile import UNSCORED
from dsp.events.schema import BATCH_FIELD, BATCH_SCHEMA, Event, encode_table, events_table
from dsp.metrics import Metrics
from infra import keys
from infra.tasks import cancel_requested, stop_tasks

if TYPE_CHECKING:
    from dsp.bidder.openrtb import BidRequest
    from dsp.bidder.response import Admitted

log = logging.getLogger(__name__)

# One bid event's values, in BATCH_SCHEMA's order after "type" (and without the empty
# "reason"): ts, auction, imp, campaign, creative, device, tags, price, site_cat, os, w, h,
# scores. Only strings, numbers and tuples of them: the request and the bid it was taken
# from are freed with the answer. Held until the flush, they had every young collection of
# the garbage collector walk them (a 6 ms pause four times a second at full load) and were
# freed in one piece at the flush.
BidRow = tuple[
    int, str, str, str, str, str, tuple[int, ...], int, tuple[str, ...], str, int, int,
    tuple[int, ...] | None,
]  # fmt: skip
_ROW_FIELDS: Final = len(BATCH_SCHEMA) - 2  # all but "type" and "reason"
_SCHEMA_ERRORS: Final = (pa.ArrowException, TypeError, ValueError, OverflowError)
_BUILD_STEP: Final = 100  # bids made into a table between two looks at the event loop


def bid_row(request: BidRequest, item: Admitted, device_key: str, now_ms: int) -> BidRow:
    """The values of the bid event of ``item``."""
    imp, line = item.bid.imp, item.bid.line
    made = line.creative
    w, h = made.w, made.h
    if not (w and h) and imp.banner_sizes:
        w, h = imp.banner_sizes[0]
    known = item.scores
    return (
        now_ms, request.id, imp.id, line.campaign.id, made.id, device_key, item.tags,
        line.price_micros, tuple(sorted(request.categories)), request.os, w or 0, h or 0,
        None if known is None else tuple([known.get(tag, UNSCORED) for tag in item.tags]),
    )  # fmt: skip


def bid_table(rows: Sequence[BidRow]) -> pa.Table:
    """The bid events of ``rows`` as a table of BATCH_SCHEMA, built column by column (a dict
    per event for ``Table.from_pylist`` cost twice as much, and bids are most events)."""
    count = len(rows)
    values: list[Any] = list(zip(*rows, strict=True)) if count else [()] * _ROW_FIELDS
    *before, scores = values  # "reason", empty for bids, comes before "scores"
    columns = [pa.repeat("bid", count), *before, pa.nulls(count, pa.string()), scores]
    return pa.Table.from_arrays(
        [
            pa.array(column, type=field.type)
            for column, field in zip(columns, BATCH_SCHEMA, strict=True)
        ],
        schema=BATCH_SCHEMA,
    )


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
        # Bids as rows of values; their tables are built off the bid path, at flush.
        self._bids: list[BidRow] = []
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
        """Queue one bid event per admitted bid: a row of its values each (``bid_row``)."""
        bids = self._bids
        for item in admitted:
            if len(bids) + len(self._events) < self._max:
                bids.append(bid_row(request, item, device, now_ms))
            else:
                self._full()

    async def flush(self) -> int:
        """Send every queued event now; how many were sent."""
        bids, self._bids = self._bids, []
        others, self._events = self._events, []
        if not bids and not others:
            return 0
        # Batches of the bids, then the other events, ``batch`` events an entry.
        size, first = self._batch, len(bids)
        payloads = []
        try:
            for at in range(0, first + len(others), size):
                part = others[max(0, at - first) : max(0, at + size - first)]
                payloads.append(await self._encode(bids[at : at + size], part))
        except asyncio.CancelledError:  # nothing sent yet: the closing flush sends them
            self._bids[:0] = bids
            self._events[:0] = others
            raise
        sent = 0
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    if payload is None:
                        continue
                    data, count = payload
                    sent += count
                    pipe.xadd(
                        self._stream, {BATCH_FIELD: data}, maxlen=self._maxlen, approximate=True
                    )
                await pipe.execute()
        except (RedisError, OSError) as error:
            room = max(0, self._max - len(self))  # bids made during the failed flush stay
            kept_bids, kept_others = bids[:room], others[: max(0, room - len(bids))]
            self._bids[:0] = kept_bids
            self._events[:0] = kept_others
            lost = len(bids) + len(others) - len(kept_bids) - len(kept_others)
            if lost:
                self.dropped += lost
                self._metrics.count("events_dropped", lost)
            kept = len(kept_bids) + len(kept_others)
            log.warning("event flush failed", extra={"error": str(error), "kept": kept})
            return 0
        self.sent += sent
        self._metrics.count("events_sent", sent)
        return sent

    async def _encode(self, bids: list[BidRow], others: list[Event]) -> tuple[bytes, int] | None:
        """Bids and other events as one Arrow IPC payload, and how many it holds; one that
        does not fit the schema is dropped and counted, not the batch with it (None: none
        fit)."""
        # Built a slice at a time, the loop answering bids in between: a flush of 800 bids
        # in one piece held the loop for 5 to 10 ms, longer than the p99 of a bid at half load.
        parts = []
        for at in range(0, len(bids), _BUILD_STEP):
            parts.append(self._table(bid_table, bids[at : at + _BUILD_STEP]))
            await asyncio.sleep(0)
        parts.append(self._table(events_table, others))
        tables = [table for table in parts if table is not None]
        if not tables:
            return None
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return encode_table(table), table.num_rows

    def _table(self, build: Callable[[list[Any]], pa.Table], items: list[Any]) -> pa.Table | None:
        """``build(items)``; when some item does not fit the schema, the table of the others,
        each one left out counted and logged (None: nothing to build, or none fit)."""
        if not items:
            return None
        try:
            return build(items)
        except _SCHEMA_ERRORS:
            good = [item for item in items if self._fits(build, item)]
            return build(good) if good else None

    def _fits(self, build: Callable[[list[Any]], pa.Table], item: Any) -> bool:
        try:
            build([item])
        except _SCHEMA_ERRORS:
            self._metrics.count("events_malformed")
            log.error("event dropped: does not fit the schema", extra={"event": repr(item)[:300]})
            return False
        return True

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
