from __future__ import annotations

import pytest
from redis.asyncio import Redis

from dmp.profile import (
    UNSCORED,
    ProfileFormatError,
    Snapshot,
    TagEntry,
    decode,
    decode_entries,
    encode,
)
from dmp.profile_store import Found, ProfileStore
from dmp.scene_codec import encode_scenes, live_scene_tags
from infra import keys

SNAPSHOT = Snapshot(os="ios", model="iPhone15,2", price_tier=3, country="CHN", region="GD")


def test_round_trip_keeps_snapshot_scores_and_drops_expired_tags() -> None:
    blob = encode(
        SNAPSHOT,
        [TagEntry(5, 100), TagEntry(900, 100, score=61), TagEntry(7, 10), TagEntry(3000, 250)],
    )
    profile = decode(blob, today=50)
    assert profile.tags == {5: UNSCORED, 900: 61, 3000: UNSCORED}
    assert (profile.os, profile.model, profile.price_tier, profile.region) == (
        "ios",
        "iPhone15,2",
        3,
        "GD",
    )
    assert decode(blob, today=101).tags == {3000: UNSCORED}


def test_a_tag_given_twice_keeps_the_later_expiry() -> None:
    blob = encode(SNAPSHOT, [TagEntry(5, 100), TagEntry(5, 300, score=20)])
    assert decode_entries(blob)[1] == [TagEntry(5, 300, 20)]


def test_twenty_four_tags_stay_compact() -> None:
    entries = [TagEntry(tag_id=i * 13 + 1, expires_day=2500) for i in range(24)]
    assert len(encode(Snapshot(), entries)) <= 40


@pytest.mark.parametrize("blob", [b"", b"\x09\x00", encode(SNAPSHOT, [TagEntry(1, 9)])[:-1]])
def test_garbage_is_a_format_error(blob: bytes) -> None:
    with pytest.raises(ProfileFormatError):
        decode(blob, today=0)


async def test_lookup_follows_an_alias_in_one_call(redis: Redis) -> None:
    store = ProfileStore(redis)
    primary, alias, other = b"\x01" * 8, b"\xfe" * 8, b"\x77" * 8
    blob = encode(SNAPSHOT, [TagEntry(5, 100)])
    await store.put_many([([primary, alias], blob)])
    assert await store.lookup([alias]) == Found(blob, None, primary)
    assert await store.lookup([other, primary]) == Found(blob, None, primary)
    assert await store.lookup([other]) is None
    assert await store.get_many([primary, alias]) == [blob, b"\x00" + primary]
    await store.delete([primary, alias])
    assert await store.lookup([alias]) is None


async def test_lookup_brings_scene_tags_with_the_profile(redis: Redis) -> None:
    store = ProfileStore(redis)
    primary, alias, stranger = b"\x01" * 8, b"\xfe" * 8, b"\x33" * 8
    blob = encode(SNAPSHOT, [TagEntry(5, 100)])
    await store.put_many([([primary, alias], blob)])
    scenes = encode_scenes({900: (80, 10_000)})
    await redis.set(keys.scene_tags(primary), scenes)
    await redis.set(keys.scene_tags(stranger), scenes)
    assert await store.lookup([alias]) == Found(blob, scenes, primary)
    assert await store.lookup([stranger]) == Found(None, scenes, stranger)
    assert live_scene_tags(scenes, now_minute=9_999) == {900: 80}
    assert live_scene_tags(scenes, now_minute=10_000) == {}


async def test_scan_yields_every_profile_once_and_no_alias(redis: Redis) -> None:
    store = ProfileStore(redis)
    items = [
        ([bytes([i, i]) + b"\x00" * 6, bytes([i, 1]) + b"\x09" * 6], bytes([1, i]))
        for i in range(50)
    ]
    await store.put_many(items)
    found = {digest: blob async for digest, blob in store.scan()}
    assert found == {digests[0]: blob for digests, blob in items}


async def test_lookup_brings_the_frequency_counters_of_the_primary(redis: Redis) -> None:
    store = ProfileStore(redis)
    primary, alias = b"\x01" * 8, b"\xfe" * 8
    await store.put_many([([primary, alias], encode(SNAPSHOT, []))])
    await redis.hset(keys.frequency_counters(primary), mapping={"c1:d20261122": 2, "c2:l": 7})
    found = await store.lookup([alias])
    assert found is not None
    assert found.counters == {"c1:d20261122": 2, "c2:l": 7}
