from __future__ import annotations

import asyncio
import functools
import random
import uuid
from dataclasses import dataclass

import numpy as np
import pytest
from redis.asyncio import Redis

from dmp.audience_bench import bench_audience_size_ms, synthetic_index, ten_tag_expression
from dmp.audience_build import IndexBuilder, IndexCache, build_index, bump_version, read_version
from dmp.audience_index import AudienceIndex, unpack
from dmp.errors import UnknownTag
from dmp.ids import DeviceId, parse_device_id
from dmp.profile import Snapshot, TagEntry, decode, encode
from dmp.profile_store import ProfileStore
from dmp.tag_expression import compile_expression, parse
from dmp.taxonomy import Taxonomy

TODAY = 2200
NOW = (TODAY + 18262) * 86400.0 + 3600  # a time on day TODAY
POPULATION = 3000
ID_TYPES = ("idfa", "gaid", "imei", "mac", "oaid")
POOL_CODES = (
    "base.gender",
    "base.age",
    "interest.automotive",
    "interest.travel",
    "social.car_ownership",
    "usage.app_games",
)


@dataclass(frozen=True, slots=True)
class Device:
    id: DeviceId
    digests: tuple[bytes, ...]
    blob: bytes
    tags: dict[int, int]  # live tags as decode() sees them on TODAY

    @property
    def key(self) -> bytes:
        return self.digests[0]

    @property
    def line(self) -> str:
        return f"{self.id.type.value},{self.id.value}"


def random_id(rng: random.Random, id_type: str) -> DeviceId:
    if id_type in ("idfa", "gaid"):
        return parse_device_id(id_type, str(uuid.UUID(int=rng.getrandbits(128))))
    if id_type == "imei":
        return parse_device_id("imei", str(rng.randrange(10**13, 10**14)))
    if id_type == "mac":
        return parse_device_id("mac", f"{rng.getrandbits(47) | 1 << 45:012x}")
    return parse_device_id("oaid", f"{rng.getrandbits(64) | 1 << 60:016x}")


def _entries(rng: random.Random, taxonomy: Taxonomy) -> list[TagEntry]:
    pool = sorted({i for code in POOL_CODES for i in taxonomy.resolve(code)})
    chosen = rng.sample(pool, rng.randrange(0, 10))
    entries = []
    for tag_id in chosen:
        expires = TODAY - 1 if rng.random() < 0.1 else TODAY + rng.randrange(0, 60)
        scored = taxonomy.tag(tag_id).scored and rng.random() < 0.9
        entries.append(TagEntry(tag_id, expires, rng.randrange(0, 101) if scored else None))
    return entries


@functools.cache
def population(count: int = POPULATION, seed: int = 11) -> tuple[Device, ...]:
    """Devices of every ID type with tags of a few categories, some expired, some scored."""
    taxonomy = Taxonomy.default()
    rng = random.Random(seed)
    devices = []
    for n in range(count):
        device_id = random_id(rng, ID_TYPES[n % len(ID_TYPES)])
        blob = encode(Snapshot(os="android"), _entries(rng, taxonomy))
        devices.append(Device(device_id, device_id.digests(), blob, decode(blob, TODAY).tags))
    return tuple(devices)


async def store_population(redis: Redis, count: int = POPULATION) -> tuple[Device, ...]:
    devices = population(count)
    await ProfileStore(redis).put_many((d.digests, d.blob) for d in devices)
    return devices


@functools.cache
def population_index(count: int = POPULATION) -> AudienceIndex:
    """The population indexed without Redis: the same decoding and packing as a scan."""
    builder = IndexBuilder(Taxonomy.default(), TODAY)
    builder.add((device.key, device.blob) for device in population(count))
    return builder.finish()


def brute_force(devices: tuple[Device, ...], expression: str) -> set[bytes]:
    predicate = compile_expression(parse(expression), Taxonomy.default())
    return {device.key for device in devices if predicate(device.tags)}


def keys_of(index: AudienceIndex, mask: np.ndarray) -> set[bytes]:
    return set(index.digests_of(index.rows(mask)))


EXPRESSIONS = [
    "base.gender.female",
    "base.gender",
    "base",
    "interest",
    "NOT base.gender.female",
    "NOT interest",
    "NOT NOT base.age.25_34",
    "base.gender.female AND base.age.25_34",
    "base.gender.female OR base.age.25_34 OR social.car_ownership",
    "interest.automotive AND NOT interest.travel",
    "interest.automotive.purchase_intent >= 60",
    "interest.automotive.purchase_intent > 60",
    "interest.automotive.purchase_intent <= 40",
    "interest.automotive.purchase_intent < 40",
    "interest.automotive.purchase_intent = 100",
    "interest.automotive.purchase_intent >= 0",
    "NOT interest.automotive.purchase_intent >= 60",
    "interest.automotive.suv >= 50",  # unscored: holders score 100
    "interest.automotive.suv < 50",
    "interest.finance",  # nobody holds it
    "NOT interest.finance.loan_intent >= 10",
    "(base.gender.female OR interest.travel) AND NOT (base.age OR usage.app_games)",
    "interest.travel.purchase_intent >= 30 AND interest.automotive.purchase_intent < 70"
    " OR social.car_ownership AND NOT base.gender.male",
    "((base.gender.female AND (interest.automotive.suv OR interest.automotive.sedan"
    " OR interest.automotive.purchase_intent >= 50)) OR (base.gender.male AND"
    " interest.travel.outbound)) AND NOT base.age.18_24 AND NOT usage.app_games"
    " AND (base.age.25_34 OR base.age.35_44 OR social.car_ownership)",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_expression_size_equals_a_brute_force_count(expression: str) -> None:
    devices, index = population(), population_index()
    mask = index.evaluate(parse(expression))
    expected = brute_force(devices, expression)
    assert index.size(mask) == len(expected)
    assert keys_of(index, mask) == expected


async def test_a_scan_indexes_every_device_once_with_its_live_tags(redis: Redis) -> None:
    devices = await store_population(redis)
    index = await build_index(redis, Taxonomy.default(), today=TODAY)
    expression = EXPRESSIONS[-1]
    assert keys_of(index, index.evaluate(parse(expression))) == brute_force(devices, expression)
    assert index.devices == len(devices)
    assert set(index.digests_of(index.rows(index.everyone()))) == {d.key for d in devices}
    assert index.today == TODAY
    assert index.size(index.nothing()) == 0
    # The padding bits past the last device stay clear, even under NOT.
    assert index.size(index.evaluate(parse("NOT interest.finance"))) == len(devices)


async def test_unknown_codes_raise(redis: Redis) -> None:
    await store_population(redis, 10)
    index = await build_index(redis, Taxonomy.default(), today=TODAY)
    with pytest.raises(UnknownTag):
        index.evaluate(parse("interest.no_such_thing"))


async def test_an_empty_dmp_gives_an_empty_index(redis: Redis) -> None:
    index = await build_index(redis, Taxonomy.default(), today=TODAY)
    assert index.devices == 0
    assert index.size(index.evaluate(parse("NOT base"))) == 0
    assert len(index.rows_of(b"\x01" * 8)) == 0


async def test_digests_map_to_rows_and_unknown_ones_are_skipped(redis: Redis) -> None:
    devices = await store_population(redis, 200)
    index = await build_index(redis, Taxonomy.default(), today=TODAY)
    wanted = [devices[5].key, b"\xff" * 8, devices[9].key, devices[5].key]
    assert set(index.digests_of(index.rows_of(b"".join(wanted)))) == {
        devices[5].key,
        devices[9].key,
    }
    assert index.size(index.mask_of(b"".join(wanted))) == 2


@pytest.mark.parametrize("ratios", [(0.7, 0.3), (0.5, 0.5), (1.0, 2.0, 3.0), (0.01, 0.99)])
def test_split_is_within_one_of_the_ratios_disjoint_and_stable(ratios: tuple[float, ...]) -> None:
    index = population_index()
    source = index.evaluate(parse("NOT base.gender.male"))
    total = index.size(source)
    parts = index.split(source, ratios)
    for part, ratio in zip(parts, ratios, strict=True):
        assert abs(index.size(part) - total * ratio / sum(ratios)) <= 1
    keys = [keys_of(index, part) for part in parts]
    assert sum(len(k) for k in keys) == total
    assert set().union(*keys) == keys_of(index, source)
    # Stable: an index of the same devices in another row order splits them the same way.
    builder = IndexBuilder(Taxonomy.default(), TODAY)
    builder.add((device.key, device.blob) for device in reversed(population()))
    again = builder.finish()
    assert not np.array_equal(again.keys, index.keys)
    again_source = again.evaluate(parse("NOT base.gender.male"))
    assert [keys_of(again, part) for part in again.split(again_source, ratios)] == keys
    reseeded = [keys_of(index, part) for part in index.split(source, ratios, seed=1)]
    assert reseeded != keys


async def test_split_of_a_small_set() -> None:
    index = synthetic_index(100, Taxonomy.default())
    source = index.mask_of_rows(np.array([3, 50, 77]))
    parts = index.split(source, (0.5, 0.5))
    assert sorted(index.size(part) for part in parts) == [1, 2]
    empty = index.split(index.nothing(), (0.7, 0.3))
    assert [index.size(part) for part in empty] == [0, 0]


async def test_the_cache_rebuilds_when_the_version_or_the_day_moves(redis: Redis) -> None:
    await store_population(redis, 50)
    now = [NOW]
    cache = IndexCache(redis, Taxonomy.default(), clock=lambda: now[0])
    first = await cache.get()
    assert await cache.get() is first
    assert first.devices == 50
    await store_population(redis, 80)
    assert await cache.get() is first  # not bumped: still the cached one
    assert await bump_version(redis) == 1
    assert await read_version(redis) == 1
    second = await cache.get()
    assert second is not first and second.devices == 80 and second.version == 1
    now[0] += 86400
    third = await cache.get()
    assert third is not second and third.today == TODAY + 1


async def test_a_stale_index_can_be_served_while_it_rebuilds(redis: Redis) -> None:
    await store_population(redis, 50)
    cache = IndexCache(redis, Taxonomy.default(), clock=lambda: NOW, serve_stale=True)
    first = await cache.get()  # no index yet: this one is waited for
    await store_population(redis, 80)
    await bump_version(redis)
    assert await cache.get() is first  # stale, served at once; a rebuild starts
    assert await cache.get() is first  # the same rebuild still running
    for _ in range(200):
        fresh = await cache.get()
        if fresh is not first:
            break
        await asyncio.sleep(0.01)
    assert fresh.devices == 80 and fresh.version == 1
    await bump_version(redis)
    await cache.get()
    await cache.close()  # cancels the rebuild in flight


def test_synthetic_index_compares_scores_like_a_brute_force() -> None:
    taxonomy = Taxonomy.default()
    index = synthetic_index(5000, taxonomy, seed=3)
    tag = next(t for t in taxonomy.tags if t.scored)
    present = unpack(index.tag(tag.id), 5000)
    mask = index.evaluate(parse(f"{tag.code} >= 60"))
    scores = index._scores[tag.id]
    assert index.size(mask) == int(np.count_nonzero(present & (scores >= 60) & (scores <= 100)))


async def test_bench_audience_size_ms_runs() -> None:
    assert await bench_audience_size_ms(20_000) > 0
    assert len(parse(ten_tag_expression(Taxonomy.default())).children) == 5  # type: ignore[union-attr]
