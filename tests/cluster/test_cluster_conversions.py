"""Conversions on the cluster: the recorder's two steps (the once-only check with the event in
the stream's slot, then the campaign's counters in its own) keep exactly-once counting.

The conversion endpoint's own tests run again on the cluster in ``tests/cluster/conversions``
(one click to one conversion, the same order id counting once, view-through by device, the
report); these cover what only the cluster path has.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from dsp.conversions.attribution import Touch
from dsp.conversions.recorder import Conversion, ConversionRecorder
from infra import keys
from tests.dsp.conversions.test_conversion_endpoint import stream_events

pytestmark = pytest.mark.cluster
NOW = 1_790_000_000.0
HOUR = "2026092114"  # NOW's hour (UTC)


def _touch(campaign: str, auction: str = "a-1") -> Touch:
    return Touch("click", auction, "1", campaign, "cr-1", "dev", (8,), int(NOW * 1000) - 60_000)


def _recorder(redis: Redis) -> ConversionRecorder:
    return ConversionRecorder(redis, dedup_ttl_s=3600, stream_maxlen=10_000)


async def _counted(redis: Redis, campaign: str) -> dict[bytes | str, bytes | str]:
    return await redis.hgetall(keys.campaign_stats(campaign))


async def test_an_order_counts_once_even_when_reported_for_another_campaign(
    cluster_redis: Redis,
) -> None:
    redis, recorder = cluster_redis, _recorder(cluster_redis)
    first = Conversion(_touch("c1"), "a:adv-1", "order-9", 25_000_000)
    again = Conversion(_touch("c2", "a-2"), "a:adv-1", "order-9", 25_000_000)
    assert await recorder.record(first, NOW) is True
    assert await recorder.record(first, NOW) is False
    assert await recorder.record(again, NOW) is False  # the advertiser's order: once in all
    assert await _counted(redis, "c1") == {
        f"{HOUR}|cr-1|conversion".encode(): b"1",
        f"{HOUR}|cr-1|conversion_value".encode(): b"25000000",
    }
    assert await _counted(redis, "c2") == {}
    events = [e for e in await stream_events(redis) if e["type"] == "conversion"]
    assert [(e["campaign"], e["order"], e["price"]) for e in events] == [
        ("c1", "order-9", 25_000_000)
    ]
    # Another advertiser's order id of the same name is its own conversion.
    other = Conversion(_touch("c3"), "a:adv-2", "order-9", 0)
    assert await recorder.record(other, NOW) is True


async def test_a_repeat_finishes_the_count_of_a_first_try_that_died_between_the_steps(
    cluster_redis: Redis,
) -> None:
    redis, recorder = cluster_redis, _recorder(cluster_redis)
    conversion = Conversion(_touch("c1"), "c:c1", "", 0)  # no order id: once per click
    first, count = await recorder.log_on_cluster(conversion, f"{HOUR}|cr-1|", {"ts": 1})
    assert first is True  # the event is in, the counters not: the process died here
    assert await _counted(redis, "c1") == {}
    assert await recorder.record(conversion, NOW) is False  # the repeat: a duplicate...
    assert await _counted(redis, "c1") == {f"{HOUR}|cr-1|conversion".encode(): b"1"}  # counted
    assert await recorder.record(conversion, NOW) is False
    assert await recorder.count_on_cluster(conversion, count) is False  # never twice
    assert await _counted(redis, "c1") == {f"{HOUR}|cr-1|conversion".encode(): b"1"}
    assert len(await stream_events(redis)) == 1
