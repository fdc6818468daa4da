from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis

from dmp import profile_refs
from dmp.profile import (
    UNSCORED,
    ProfileFormatError,
    Snapshot,
    TagEntry,
    decode,
    decode_entries,
    decode_live_entries,
    encode,
    snapshot_bytes,
    tag_section,
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


def test_tags_of_many_expiry_days_and_scores_round_trip() -> None:
    rng = random.Random(7)
    for _ in range(300):
        entries = [
            TagEntry(
                rng.randint(1, 4095),
                rng.choice([2500 + rng.choice([1, 14, 30, 90, 180, 365]), rng.randint(0, 9000)]),
                rng.choice([None, rng.randint(0, 100)]),
            )
            for _ in range(rng.randint(0, 40))
        ]
        latest: dict[int, TagEntry] = {}
        for entry in entries:
            if entry.tag_id not in latest or entry.expires_day >= latest[entry.tag_id].expires_day:
                latest[entry.tag_id] = entry
        snapshot, decoded = decode_entries(encode(SNAPSHOT, entries))
        assert snapshot == SNAPSHOT
        assert sorted(decoded, key=lambda e: e.tag_id) == sorted(
            latest.values(), key=lambda e: e.tag_id
        )
        # merge mode's reading: the same entries as tuples, those expired before a day left out
        for today in (0, 2600, 5000):
            live = decode_live_entries(encode(SNAPSHOT, entries), today)
            kept = [(e.tag_id, e.expires_day, e.score) for e in decoded if e.expires_day >= today]
            assert live == (SNAPSHOT, kept)


def test_a_fresh_load_of_24_tags_packs_into_a_few_bits_a_tag() -> None:
    # One load: each tag expires after its TTL, a TTL per dimension (the default taxonomy's
    # base, social, interest and usage ids), two tags scored.
    by_ttl = {
        365: [3, 9, 13],
        180: [20, 35, 50, 61, 80],
        90: [100, 130, 160, 190, 220, 250, 280, 310, 340, 370],
        14: [111, 135],
        30: [450, 480, 510, 540],
    }
    entries = [
        TagEntry(tag, 2500 + ttl, 70 if tag in (130, 480) else None)
        for ttl, tags in by_ttl.items()
        for tag in tags
    ]
    assert len(entries) == 24
    assert len(tag_section(entries)) <= 32  # 60 bytes in the varint layout before


async def test_profiles_are_stored_with_a_snapshot_reference(redis: Redis) -> None:
    store = ProfileStore(redis)
    primary, alias = b"\x01" * 8, b"\xfe" * 8
    blob = encode(SNAPSHOT, [TagEntry(5, 100), TagEntry(9, 120, 70)])
    await store.put_many([([primary, alias], blob)])
    raw = await redis.hget(keys.profile_bucket(primary), keys.profile_field(primary))
    assert isinstance(raw, bytes) and raw[0] >= profile_refs.FIRST_REF_BYTE
    assert len(raw) < len(blob) - len(snapshot_bytes(SNAPSHOT)) + 3
    assert await redis.hget(keys.profile_bucket(alias), keys.alias_field(alias)) == primary
    assert await store.get_many([primary]) == [blob]
    assert [item async for item in store.scan()] == [(primary, blob)]
    assert await store.resolve([alias, primary, b"\x33" * 8]) == {
        alias: primary,
        primary: primary,
        b"\x33" * 8: b"\x33" * 8,
    }


async def test_the_snapshot_dictionary_is_a_hash_table_and_its_references_start_at_zero(
    redis: Redis,
) -> None:
    # The bid lookup reads the dictionary: as a ziplist every read would scan it.
    store = ProfileStore(redis)
    snapshots = [Snapshot(os="ios", model=f"m{n}") for n in range(3)]
    await store.put_many(
        [([bytes([n]) * 8], encode(s, [TagEntry(5, 100)])) for n, s in enumerate(snapshots)]
    )
    assert await redis.object("encoding", keys.SNAPSHOTS) == b"hashtable"
    refs = await redis.hgetall(keys.SNAPSHOT_REFS)
    assert sorted(refs.values()) == [bytes([0x10]), bytes([0x11]), bytes([0x12])]
    for n, snapshot in enumerate(snapshots):
        found = await store.lookup([bytes([n]) * 8])
        assert found is not None and found.profile == encode(snapshot, [TagEntry(5, 100)])


async def test_a_profile_under_a_digest_wins_over_an_alias_of_it(redis: Redis) -> None:
    store = ProfileStore(redis)
    one, two = b"\x01" * 8, b"\x02" * 8
    mine, theirs = encode(SNAPSHOT, [TagEntry(5, 100)]), encode(Snapshot(), [TagEntry(6, 100)])
    await store.put_many([([two], theirs), ([one, two], mine)])
    found = await store.lookup([two])
    assert found is not None and (found.profile, found.primary) == (theirs, two)
    assert await store.delete([two]) == 2
    found = await store.lookup([two])
    assert found is None
