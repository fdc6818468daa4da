from __future__ import annotations

import asyncio
import hashlib
import random
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from dmp.errors import SceneEventError, UnknownTag
from dmp.ids import parse_device_id
from dmp.profile_store import ProfileStore
from dmp.scene_codec import decode_scenes, encode_scenes, live_scene_tags, merge_scenes
from dmp.scene_events import parse_event
from dmp.scene_rules import SceneLibrary
from dmp.scene_writer import SceneWriter
from dmp.taxonomy import Taxonomy
from infra import keys

IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
DEVICE = parse_device_id("idfa", IDFA)
AIRPORT = {"kind": "geofence", "lat": 22.639, "lon": 113.811}
TAXONOMY = Taxonomy.default()
AT_AIRPORT = TAXONOMY.tag("scene.travel.at_airport").id
CAR_APP = TAXONOMY.tag("scene.auto.car_app_opened").id


def raw(id_: str = IDFA, id_type: str = "idfa", **fields: Any) -> dict[str, Any]:
    place = {} if "kind" in fields else AIRPORT
    return {"id_type": id_type, "id": id_, **place, **fields}


@pytest.fixture
def writer(redis: Redis) -> SceneWriter:
    return SceneWriter(redis, SceneLibrary.default(), TAXONOMY)


async def stored(redis: Redis, digest: bytes = DEVICE.key) -> dict[int, tuple[int, int]]:
    blob = await redis.get(keys.scene_tags(digest))
    return decode_scenes(blob) if isinstance(blob, bytes) else {}


async def test_an_event_becomes_a_scene_that_expires_with_its_ttl(
    redis: Redis, writer: SceneWriter
) -> None:
    now = time.time()
    assert await writer.handle(raw(ts=now), now=now) == ["scene.travel.at_airport"]
    expiry = int(now) // 60 + 240
    assert await stored(redis) == {AT_AIRPORT: (90, expiry)}
    blob = await redis.get(keys.scene_tags(DEVICE.key))
    assert isinstance(blob, bytes)
    assert live_scene_tags(blob, expiry - 1) == {AT_AIRPORT: 90}
    assert live_scene_tags(blob, expiry) == {}
    # Redis drops the value when its last scene ends.
    assert abs(await redis.ttl(keys.scene_tags(DEVICE.key)) - (expiry * 60 - now)) <= 2


async def test_an_event_whose_scene_has_already_ended_writes_nothing(
    redis: Redis, writer: SceneWriter
) -> None:
    now = time.time()
    assert await writer.handle(raw(ts=now - 241 * 60), now=now) == []
    assert await redis.exists(keys.scene_tags(DEVICE.key)) == 0
    assert await writer.handle(raw(kind="search", query="weather today"), now=now) == []


async def test_merge_keeps_other_scenes_and_the_later_expiry(
    redis: Redis, writer: SceneWriter
) -> None:
    now = time.time()
    await writer.handle(raw(ts=now), now=now)
    await writer.handle(raw(kind="app_open", bundle="com.autohome", ts=now), now=now)
    late = int(now) // 60 + 240
    # A delayed event for the same scene must not shorten it ...
    await writer.handle(raw(ts=now - 3600), now=now)
    assert await stored(redis) == {AT_AIRPORT: (90, late), CAR_APP: (80, int(now) // 60 + 1440)}
    # ... and a newer one extends it.
    await writer.handle(raw(ts=now + 120), now=now + 120)
    assert (await stored(redis))[AT_AIRPORT] == (90, late + 2)


async def test_ended_scenes_are_dropped_on_the_next_write(
    redis: Redis, writer: SceneWriter
) -> None:
    now = time.time()
    minute = int(now) // 60
    await redis.set(keys.scene_tags(DEVICE.key), encode_scenes({CAR_APP: (80, minute)}))
    await writer.handle(raw(ts=now), now=now)
    assert await stored(redis) == {AT_AIRPORT: (90, minute + 240)}


async def test_the_lua_merge_agrees_with_merge_scenes(redis: Redis, writer: SceneWriter) -> None:
    rng = random.Random(3)
    now = time.time()
    minute = int(now) // 60
    for _ in range(20):
        old = {
            rng.choice([AT_AIRPORT, CAR_APP, 1003, 1010, 1020]): (rng.randint(0, 100), minute + rng.randint(-5, 400))
            for _ in range(rng.randint(0, 5))
        }  # fmt: skip
        await redis.set(keys.scene_tags(DEVICE.key), encode_scenes(old))
        ts = now - rng.randint(0, 200) * 60
        await writer.handle(raw(ts=ts), now=now)
        expected = merge_scenes(old, [(AT_AIRPORT, 90, int(ts) // 60 + 240)], minute)
        assert await stored(redis) == expected


async def test_an_alias_resolves_to_the_primary_digest(redis: Redis, writer: SceneWriter) -> None:
    await ProfileStore(redis).put_many([(DEVICE.digests(), b"\x01profile")])
    sha1 = hashlib.sha1(IDFA.encode()).hexdigest()
    alias = parse_device_id("idfa_sha1", sha1)
    assert alias.key != DEVICE.key and alias.key in DEVICE.digests()
    assert await writer.handle(raw(sha1, "idfa_sha1")) == ["scene.travel.at_airport"]
    assert AT_AIRPORT in await stored(redis, DEVICE.key)
    assert await redis.exists(keys.scene_tags(alias.key)) == 0


async def test_an_unknown_device_is_written_under_its_own_key(
    redis: Redis, writer: SceneWriter
) -> None:
    md5 = hashlib.md5(b"another device").hexdigest()
    await writer.handle(raw(md5, "gaid_md5"))
    assert AT_AIRPORT in await stored(redis, bytes.fromhex(md5)[:8])


async def test_concurrent_events_for_one_device_lose_nothing(
    redis: Redis, writer: SceneWriter
) -> None:
    events = [
        raw(),
        raw(kind="app_open", bundle="com.autohome"),
        raw(kind="url_visit", url="https://car.autohome.com.cn/price/1.html"),
        raw(kind="search", query="test drive"),
        raw(kind="call", number="95588"),
    ]
    # Separate writers and connections, interleaved: the merge must be atomic on the server.
    writers = [SceneWriter(redis, SceneLibrary.default(), TAXONOMY) for _ in range(4)]
    calls = [writers[i % 4].handle(events[i % 5]) for i in range(60)]
    await asyncio.gather(*calls)
    codes = {TAXONOMY.tag(tag).code for tag in await stored(redis)}
    assert codes == {
        "scene.travel.at_airport",
        "scene.auto.car_app_opened",
        "scene.auto.price_research",
        "scene.auto.car_search",
        "scene.finance.called_bank",
    }


async def test_a_batch_of_events_for_many_devices(redis: Redis, writer: SceneWriter) -> None:
    now = time.time()
    other = parse_device_id("gaid", "38400000-8cf0-11bd-b23e-10b96e40000d")
    events = [
        parse_event(raw(), now),
        parse_event(raw(other.value, "gaid", kind="app_open", bundle="com.autohome"), now),
        parse_event(raw(kind="search", query="nothing here"), now),
        parse_event(raw(kind="app_open", bundle="com.autohome"), now),
    ]
    applied = await writer.handle_many(events, now=now)
    assert applied == [
        ["scene.travel.at_airport"],
        ["scene.auto.car_app_opened"],
        [],
        ["scene.auto.car_app_opened"],
    ]
    assert set(await stored(redis)) == {AT_AIRPORT, CAR_APP}
    assert set(await stored(redis, other.key)) == {CAR_APP}
    assert await writer.handle_many([]) == []


async def test_invalid_events_and_libraries(redis: Redis, writer: SceneWriter) -> None:
    with pytest.raises(SceneEventError) as info:
        await writer.handle(raw(lat=200.0, lon=1.0, kind="geofence"))
    assert info.value.field == "lat"
    bad = SceneLibrary(
        [{"id": "x", "kind": "search", "keywords": ["x"], "tag": "scene.x.y", "ttl_minutes": 1}]
    )
    with pytest.raises(UnknownTag):
        SceneWriter(redis, bad, TAXONOMY)


async def test_warm_up_loads_the_script(redis: Redis, writer: SceneWriter) -> None:
    await redis.script_flush()
    await writer.warm_up()
    assert await writer.handle(raw()) == ["scene.travel.at_airport"]
