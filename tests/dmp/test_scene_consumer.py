from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dmp.errors import SceneEventError
from dmp.ids import parse_device_id
from dmp.scene_codec import decode_scenes
from dmp.scene_consumer import EVENT_FIELD, SceneConsumer, publish, publish_many
from dmp.scene_rules import SceneLibrary
from dmp.scene_writer import SceneWriter
from dmp.taxonomy import Taxonomy
from infra import keys

IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
DEVICE = parse_device_id("idfa", IDFA)
STREAM = keys.scene_events()
AT_AIRPORT = Taxonomy.default().tag("scene.travel.at_airport").id
CAR_APP = Taxonomy.default().tag("scene.auto.car_app_opened").id


def event(**fields: Any) -> dict[str, Any]:
    place = {} if "kind" in fields else {"kind": "geofence", "lat": 22.639, "lon": 113.811}
    return {"id_type": "idfa", "id": IDFA, **place, **fields}


def consumer(redis: Redis, name: str = "c1", **options: Any) -> SceneConsumer:
    writer = SceneWriter(redis, SceneLibrary.default(), Taxonomy.default())
    return SceneConsumer(redis, writer, name=name, block_ms=50, **options)


async def scenes(redis: Redis) -> set[int]:
    blob = await redis.get(keys.scene_tags(DEVICE.key))
    return set(decode_scenes(blob)) if isinstance(blob, bytes) else set()


async def pending(redis: Redis, group: str = "scene-writers") -> int:
    summary = await redis.xpending(STREAM, group)
    return int(summary["pending"])


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_published_events_become_scene_tags_and_are_acked(redis: Redis) -> None:
    reader = consumer(redis)
    await reader.ensure_group()
    await publish(redis, event())
    await publish(redis, event(kind="app_open", bundle="com.autohome"))
    assert await reader.step() == 0  # nothing of ours pending: the backlog pass is empty
    assert await reader.step() == 2
    assert await scenes(redis) == {AT_AIRPORT, CAR_APP}
    assert await pending(redis) == 0
    assert (reader.stats.read, reader.stats.applied, reader.stats.tags) == (2, 2, 2)


async def test_events_published_before_the_group_exists_are_not_lost(redis: Redis) -> None:
    await publish(redis, event())
    reader = consumer(redis)
    await reader.ensure_group()
    await reader.step()
    await reader.step()
    assert await scenes(redis) == {AT_AIRPORT}


async def test_malformed_entries_are_acked_counted_and_skipped(redis: Redis) -> None:
    reader = consumer(redis)
    await reader.ensure_group()
    await redis.xadd(STREAM, {EVENT_FIELD: b"{not json"})
    await redis.xadd(STREAM, {EVENT_FIELD: orjson.dumps(event(lat=123.0))})
    await redis.xadd(STREAM, {b"other": b"field"})
    await redis.xadd(STREAM, {EVENT_FIELD: orjson.dumps(event(id="nope"))})
    await publish(redis, event())
    await reader.step()
    assert await reader.step() == 5
    assert (reader.stats.rejected, reader.stats.applied) == (4, 1)
    assert await scenes(redis) == {AT_AIRPORT}
    assert await pending(redis) == 0


async def test_entries_of_a_dead_consumer_are_claimed(redis: Redis) -> None:
    dead = consumer(redis, "dead")
    await dead.ensure_group()
    await publish_many(redis, [event(), event(kind="app_open", bundle="com.autohome")])
    # The dead consumer read both entries and died before writing or acking them.
    await redis.xreadgroup(dead.group, dead.name, {STREAM: b">"}, count=10)
    assert await pending(redis) == 2
    patient = consumer(redis, "live", claim_idle_ms=60_000)
    assert await patient.claim_abandoned() == 0  # not idle long enough yet
    live = consumer(redis, "live", claim_idle_ms=0)
    assert await live.claim_abandoned() == 2
    assert await scenes(redis) == {AT_AIRPORT, CAR_APP}
    assert await pending(redis) == 0
    assert live.stats.claimed == 2


async def test_a_restarted_consumer_finishes_its_own_pending_entries_first(redis: Redis) -> None:
    first = consumer(redis, "worker-1")
    await first.ensure_group()
    await publish(redis, event())
    await redis.xreadgroup(first.group, first.name, {STREAM: b">"}, count=10)
    again = consumer(redis, "worker-1")
    assert await again.step() == 1
    assert await scenes(redis) == {AT_AIRPORT}
    assert await pending(redis) == 0


async def test_run_in_the_background_until_stopped(redis: Redis) -> None:
    reader = consumer(redis)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    await publish(redis, event())
    await eventually(lambda: _has(redis, AT_AIRPORT))
    stop.set()
    await asyncio.wait_for(task, 1.0)
    assert reader.stats.errors == 0


async def test_run_survives_a_flushed_database(redis: Redis) -> None:
    reader = consumer(redis, retry_s=0.01)
    async with reader.running() as task:
        await publish(redis, event())
        await eventually(lambda: _has(redis, AT_AIRPORT))
        await redis.flushdb()  # the stream and its group are gone: reads fail with NOGROUP
        await eventually(lambda: _errors_seen(reader))
        await publish(redis, event(kind="app_open", bundle="com.autohome"))
        await eventually(lambda: _has(redis, CAR_APP))
        assert not task.done()
    assert task.cancelled()


async def _has(redis: Redis, tag: int) -> bool:
    return tag in await scenes(redis)


async def _errors_seen(reader: SceneConsumer) -> bool:
    return reader.stats.errors > 0


async def test_publish_validates_and_fills_in_the_time(redis: Redis) -> None:
    now = time.time()
    entry_id = await publish(redis, event(), now=now)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(STREAM)  # type: ignore[assignment]
    ((stored_id, fields),) = entries
    stored = orjson.loads(fields[EVENT_FIELD])
    assert stored["ts"] == int(now) and stored["id_type"] == "idfa_raw"
    assert entry_id == stored_id
    with pytest.raises(SceneEventError) as info:
        await publish(redis, event(lat="north"))
    assert info.value.field == "lat"
    with pytest.raises(SceneEventError) as info:
        await publish_many(redis, [event(), event(kind="call")])
    assert info.value.field == "events[1].number"
    assert await redis.xlen(STREAM) == 1


async def test_the_stream_is_bounded(redis: Redis) -> None:
    for _ in range(10):
        await publish_many(redis, [event()] * 100, maxlen=50)
    assert await redis.xlen(STREAM) < 250
