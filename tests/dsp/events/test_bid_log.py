"""The bidder's event buffer: no Redis call per event, bounded, batches in one round trip."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from dmp.taxonomy import Taxonomy
from dsp.bidder.decide import Bid
from dsp.bidder.openrtb import BidRequest, parse_bid_request
from dsp.bidder.response import Admitted
from dsp.budget.keeper import Reservation
from dsp.campaigns.index import CampaignIndex
from dsp.campaigns.validation import campaign_from_dict
from dsp.events.bid_log import EventBuffer
from dsp.events.schema import entry_events
from infra import keys
from tests.dsp import factories
from tests.dsp.events.streams import events


async def test_events_are_flushed_in_entries_of_a_batch_each(redis: Redis) -> None:
    buffer = EventBuffer(redis, max_events=1000, batch_max=100, flush_s=3600)
    for event in events(250, seed=9):
        assert buffer.append(event)
    assert await redis.xlen(keys.EVENTS) == 0  # nothing sent until a flush
    assert await buffer.flush() == 250 and len(buffer) == 0
    entries: Any = await redis.xrange(keys.EVENTS)
    assert [len(entry_events(data)) for _, data in entries] == [100, 100, 50]
    sent = [event for _, data in entries for event in entry_events(data)]
    assert [(e["auction"], e["tags"], e["price"]) for e in sent] == [
        (e["auction"], e["tags"], e["price"]) for e in events(250, seed=9)
    ]


async def test_a_full_buffer_drops_and_counts_instead_of_blocking(redis: Redis) -> None:
    buffer = EventBuffer(redis, max_events=10, flush_s=3600)
    accepted = [buffer.append(event) for event in events(15, seed=10)]
    assert accepted == [True] * 10 + [False] * 5 and buffer.dropped == 5
    assert await buffer.flush() == 10


async def test_a_failed_flush_keeps_its_events_for_the_next(redis_url: str) -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    buffer = EventBuffer(broken, max_events=100, flush_s=3600)
    for event in events(5, seed=11):
        buffer.append(event)
    assert await buffer.flush() == 0 and len(buffer) == 5 and buffer.dropped == 0
    await broken.aclose()
    working = Redis.from_url(redis_url)
    try:
        await working.delete(keys.EVENTS)
        buffer._redis = working  # Redis is back
        await buffer.close()  # closing flushes the rest
        assert await working.xlen(keys.EVENTS) == 1
    finally:
        await working.aclose()


def queued_bid(auction: str, tags: tuple[int, ...] = (8,)) -> tuple[BidRequest, Admitted]:
    # Real objects, as the bidder hands them over (the compiled bid path checks their types).
    line = CampaignIndex.build(
        [campaign_from_dict(factories.campaign("c1", cpm_micros=7))], Taxonomy.default()
    ).lines[0]
    data = factories.bid_request(id=auction, device={"os": "Android"})
    data["app"]["cat"] = ["IAB2", "IAB1"]
    request = parse_bid_request(
        data, default_tmax_ms=100, max_tmax_ms=1000, fx_per_usd={"USD": Decimal(1)}
    )
    reservation = Reservation("k1", "2026-11-23", 7)
    return request, Admitted(Bid(request.imps[0], line), reservation, tags=tags)


async def test_bids_are_queued_as_rows_of_values_and_built_into_events_at_flush(
    redis: Redis,
) -> None:
    request, bid = queued_bid("a9")
    admitted = [bid]
    buffer = EventBuffer(redis, max_events=3, flush_s=3600)
    for _ in range(4):
        buffer.bids(request, admitted, "00ff", 1234)
    assert len(buffer) == 3 and buffer.dropped == 1
    assert await buffer.flush() == 3
    entries: Any = await redis.xrange(keys.EVENTS)
    (event, *_) = entry_events(entries[0][1])
    assert event == {
        "type": "bid", "ts": 1234, "auction": "a9", "imp": "1", "campaign": "c1",
        "creative": "cr1", "device": "00ff", "tags": [8], "price": 7,
        "site_cat": ["IAB1", "IAB2"], "os": "android", "w": 300, "h": 250,
    }  # fmt: skip


async def test_a_queued_bid_keeps_no_reference_to_its_request_or_bid(redis: Redis) -> None:
    # Held until the flush, they would be walked by every young garbage collection, and
    # freed all together at the flush: the bid path's pauses.
    request, bid = queued_bid("a9")
    before = sys.getrefcount(request), sys.getrefcount(bid)
    buffer = EventBuffer(redis, max_events=10, flush_s=3600)
    buffer.bids(request, [bid], "00ff", 1234)
    assert len(buffer) == 1
    assert (sys.getrefcount(request), sys.getrefcount(bid)) == before


async def test_an_event_that_does_not_fit_the_schema_is_dropped_alone(redis: Redis) -> None:
    buffer = EventBuffer(redis, max_events=100, flush_s=3600)
    good = events(5, seed=11)
    bad = {**good[0], "auction": "bad", "price": "not a number"}
    for event in [*good[:2], bad, *good[2:]]:
        assert buffer.append(event)
    assert await buffer.flush() == 5
    entries: Any = await redis.xrange(keys.EVENTS)
    sent = [event for _, data in entries for event in entry_events(data)]
    assert [e["auction"] for e in sent] == [e["auction"] for e in good]


async def test_a_bid_that_does_not_fit_the_schema_is_dropped_alone(redis: Redis) -> None:
    buffer = EventBuffer(redis, max_events=100, flush_s=3600)
    for auction, tags in [("a1", (8,)), ("a2", (2**70,)), ("a3", (9,))]:  # 2**70: no int64
        request, bid = queued_bid(auction, tags)
        buffer.bids(request, [bid], "00ff", 1)
    assert await buffer.flush() == 2
    entries: Any = await redis.xrange(keys.EVENTS)
    sent = [event for _, data in entries for event in entry_events(data)]
    assert [(e["auction"], e["tags"]) for e in sent] == [("a1", [8]), ("a3", [9])]


async def test_bids_of_a_failed_flush_are_kept_for_the_next(redis_url: str) -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    buffer = EventBuffer(broken, max_events=3, flush_s=3600)
    for auction in ("a1", "a2"):
        request, bid = queued_bid(auction)
        buffer.bids(request, [bid], "00ff", 1)
    buffer.append(events(2, seed=3)[0])
    buffer.append(events(2, seed=3)[1])  # over the bound of 3: dropped
    assert await buffer.flush() == 0 and len(buffer) == 3 and buffer.dropped == 1
    await broken.aclose()
    working = Redis.from_url(redis_url)
    try:
        await working.delete(keys.EVENTS)
        buffer._redis = working  # Redis is back
        assert await buffer.flush() == 3
        entries: Any = await working.xrange(keys.EVENTS)
        sent = [event for _, data in entries for event in entry_events(data)]
        assert sorted(e["auction"] for e in sent if e["type"] == "bid") == ["a1", "a2"]
    finally:
        await working.aclose()


async def test_bids_of_a_flush_cancelled_while_encoding_are_sent_by_the_next(
    redis: Redis,
) -> None:
    buffer = EventBuffer(redis, max_events=1000, flush_s=3600)
    request, bid = queued_bid("a1")
    for _ in range(250):  # three slices of the table: the flush yields to the loop twice
        buffer.bids(request, [bid], "00ff", 1)
    await redis.delete(keys.EVENTS)
    flushing = asyncio.create_task(buffer.flush())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert len(buffer) == 250 and await redis.xlen(keys.EVENTS) == 0
    assert await buffer.flush() == 250
