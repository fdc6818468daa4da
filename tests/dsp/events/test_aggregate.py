"""The aggregator counts every event exactly once: across batches, consumers and crashes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys

from redis.asyncio import Redis

from dsp.events.aggregate import Aggregator, count_events
from dsp.events.schema import ENTRY_FIELD, encode
from infra import keys
from tests.dsp.events.streams import events, fill, stored, truth


async def test_counts_per_campaign_creative_hour_and_tag_equal_the_true_ones(
    redis: Redis,
) -> None:
    found = events(3000, seed=2)
    await fill(redis, found)
    aggregator = Aggregator(redis, consumer="a", target_events=400)
    progress = await aggregator.catch_up()
    assert progress.events == 3000 and progress.batches > 5
    assert await stored(redis) == truth(found)
    assert (await redis.xpending(keys.EVENTS, keys.EVENTS_GROUP_AGGREGATOR))["pending"] == 0
    again = await Aggregator(redis, consumer="b").catch_up()
    assert again.events == 0  # nothing is counted twice


async def test_a_batch_applied_twice_counts_once_and_a_shared_entry_once(redis: Redis) -> None:
    found = events(40, seed=3)
    await fill(redis, found, batch=10)
    first = Aggregator(redis, consumer="first", claim_idle_s=0)
    await first.ensure_group()
    entries = await first._xreadgroup(">", 1000)
    await first.apply(entries[:5])
    await first.apply(entries[:5])  # a retry after a lost reply: already acknowledged
    # another consumer took the rest over (the first looked dead) and shares three entries
    second = Aggregator(redis, consumer="second")
    await second.apply(entries[2:])
    assert second.progress.skipped == 3
    assert first.progress.skipped == 5
    assert await stored(redis) == truth(found)


async def test_entries_of_a_dead_consumer_are_claimed_after_they_idle(redis: Redis) -> None:
    found = events(60, seed=4)
    await fill(redis, found, batch=10)
    dead = Aggregator(redis, consumer="dead")
    await dead.ensure_group()
    await dead._xreadgroup(">", 10)  # read, then "crashed" before counting
    alive = Aggregator(redis, consumer="alive", claim_idle_s=0.05)
    await asyncio.sleep(0.1)
    await alive.catch_up()
    assert await stored(redis) == truth(found)


def test_pyarrow_batches_and_json_lines_count_alike() -> None:
    found = events(500, seed=5)
    from dsp.events.schema import BATCH_FIELD, encode_batch

    as_json = [{ENTRY_FIELD: encode(found[i : i + 7])} for i in range(0, 500, 7)]
    as_arrow = [{BATCH_FIELD: encode_batch(found[i : i + 9])} for i in range(0, 500, 9)]
    assert count_events(as_json).nested() == count_events(as_arrow).nested()
    counted = {f"{c}:{h}": fields for (c, h), fields in count_events(as_json).nested().items()}
    assert counted == truth(found)
    bad = [{ENTRY_FIELD: encode(found[:3]) + b"\n{not json"}]
    assert count_events(bad).events == 3  # a malformed line is skipped, not fatal


_WORKER = """
import asyncio, sys
from redis.asyncio import Redis
from dsp.events.aggregate import Aggregator

async def main():
    redis = Redis.from_url(sys.argv[1])
    aggregator = Aggregator(redis, consumer=sys.argv[2], claim_idle_s=0.2, target_events=150)
    await aggregator.ensure_group()
    print("ready", flush=True)
    while await aggregator.step():  # paced, so that a kill lands mid-stream
        await asyncio.sleep(0.01)

asyncio.run(main())
"""


async def test_killed_with_sigkill_mid_stream_and_restarted_the_counts_are_exact(
    redis: Redis, redis_url: str
) -> None:
    found = events(20_000, seed=6)
    await fill(redis, found, batch=40)
    rng = random.Random(6)
    group = keys.EVENTS_GROUP_AGGREGATOR
    kills = 0
    for attempt in range(5):
        with subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, f"agg-{attempt}"],
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.getcwd()},
        ) as worker:  # fmt: skip
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n"
            if attempt == 4:  # the last one runs to the end
                assert worker.wait(timeout=60) == 0
                break
            await asyncio.sleep(0.05 + rng.random() * 0.3)
            assert worker.poll() is None, "finished before the kill: make the stream longer"
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            kills += 1
        info = {g["name"].decode(): g for g in await redis.xinfo_groups(keys.EVENTS)}
        assert info[group]["last-delivered-id"] != b"0-0"  # it was mid-stream
        await asyncio.sleep(0.25)  # the dead worker's entries idle past claim_idle_s
    info = {g["name"].decode(): g for g in await redis.xinfo_groups(keys.EVENTS)}
    assert info[group]["pending"] == 0 and kills == 4
    assert await stored(redis) == truth(found)
