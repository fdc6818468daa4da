"""Synthetic DMP devices, many and fast: the simulator's records under fresh device IDs.

``adx_mock.population`` draws every record with care (about 0.3 ms each), too slow for a
million devices. The benchmarks draw a few thousand *templates* with it and clone them
under new IDs, so handsets, places and tag mixes are the simulator's own while a million
records take seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import uvloop
from redis.asyncio import Redis

from adx_mock.devices import make_device_id
from adx_mock.population import generate_population
from dmp.ids import parse_device_id
from dmp.ingest_format import TagTable
from dmp.profile import Snapshot, TagEntry, day_number, encode
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy

Record = dict[str, object]
TEMPLATES = 2000
TAGS_PER_DEVICE = 24
BATCH = 4000
_RESOLVED_CACHE = 10_000


def templates(count: int, seed: int, taxonomy: Taxonomy) -> list[Record]:
    """Records drawn by the simulator itself."""
    return list(generate_population(count, seed, taxonomy))


def clones(templates: Sequence[Record], n: int, seed: int, start: int = 0) -> Iterator[Record]:
    """Records ``start`` to ``start + n`` of a population: templates under fresh device IDs."""
    rng = random.Random(f"{seed}/{start}")
    for index in range(start, start + n):
        record = dict(templates[index % len(templates)])
        record["id"] = make_device_id(str(record["id_type"]), rng.getrandbits(128))
        yield record


def write_jsonl(path: Path, records: Iterable[Record]) -> int:
    """Records as a JSON Lines ingest file; returns how many were written."""
    count = 0
    with path.open("wb") as file:
        for record in records:
            file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count


def _text(record: Record, name: str) -> str:
    value = record.get(name)
    return value if isinstance(value, str) else ""


class ProfileMaker:
    """Profile blobs of exactly ``tags`` tags: a record's own, topped up at random or cut."""

    def __init__(self, taxonomy: Taxonomy, today: int, seed: int, tags: int = TAGS_PER_DEVICE):
        self._table = TagTable(taxonomy, today)
        self._spare = [
            TagEntry(t.id, today + t.ttl_days, 50 if t.scored else None) for t in taxonomy.tags
        ]
        self._rng = random.Random(seed)
        self._tags = tags
        # Clones share their template's tag list: its entries are resolved once, by identity.
        self._resolved: dict[int, tuple[object, list[TagEntry]]] = {}

    def _own(self, tags: object) -> list[TagEntry]:
        cached = self._resolved.get(id(tags))
        if cached is not None and cached[0] is tags:
            return cached[1]
        if len(self._resolved) >= _RESOLVED_CACHE:
            self._resolved.clear()
        entries = self._table.entries(tags, None)[: self._tags]
        self._resolved[id(tags)] = (tags, entries)  # holding ``tags`` keeps its id unique
        return entries

    def entries(self, record: Record) -> list[TagEntry]:
        entries = list(self._own(record.get("tags")))
        held = {entry.tag_id for entry in entries}
        while len(entries) < self._tags:
            extra = self._rng.choice(self._spare)
            if extra.tag_id not in held:
                held.add(extra.tag_id)
                entries.append(extra)
        return entries

    def blob(self, record: Record) -> bytes:
        price_tier = record.get("price_tier")
        snapshot = Snapshot(
            os=_text(record, "os"),
            model=_text(record, "model"),
            price_tier=price_tier if isinstance(price_tier, int) else 0,
            country=_text(record, "country"),
            region=_text(record, "region"),
            city=_text(record, "city"),
        )
        return encode(snapshot, self.entries(record))


@dataclass(frozen=True, slots=True)
class Stored:
    """What ``store_devices`` wrote, and every ``sample_every``-th record for requests."""

    devices: int
    blob_bytes: int
    sample: list[Record]


def digests(record: Record) -> tuple[bytes, ...]:
    return parse_device_id(_text(record, "id_type"), _text(record, "id")).digests()


async def store_devices(
    redis: Redis,
    records: Iterable[Record],
    maker: ProfileMaker,
    *,
    sample_every: int = 0,
    start: int = 0,
) -> Stored:
    """Encode and store every record, one pipeline per batch, the next batch encoded meanwhile.

    Records whose place in the population (from ``start``) is a multiple of ``sample_every``
    are kept as the sample.
    """
    store = ProfileStore(redis)
    iterator = iter(records)
    pending: asyncio.Task[int] | None = None
    devices = blob_bytes = 0
    sample: list[Record] = []
    while batch := list(itertools.islice(iterator, BATCH)):
        items = [(digests(record), maker.blob(record)) for record in batch]
        if sample_every:
            sample += batch[-(start + devices) % sample_every :: sample_every]
        devices += len(items)
        blob_bytes += sum(len(blob) for _, blob in items)
        if pending is not None:
            await pending
        pending = asyncio.create_task(store.put_many(items))
        await asyncio.sleep(0)  # let the write start before the next batch is encoded
    if pending is not None:
        await pending
    return Stored(devices, blob_bytes, sample)


async def _store_slice(url: str, start: int, count: int, seed: int, sample_every: int) -> Stored:
    taxonomy = Taxonomy.default()
    maker = ProfileMaker(taxonomy, day_number(time.time()), seed + start)
    records = clones(templates(TEMPLATES, seed, taxonomy), count, seed, start)
    redis = Redis.from_url(url)
    try:
        return await store_devices(redis, records, maker, sample_every=sample_every, start=start)
    finally:
        await redis.aclose()


def store_slice(url: str, start: int, count: int, seed: int, sample_every: int) -> Stored:
    """Process target: devices ``start`` to ``start + count`` of the population."""
    return uvloop.run(_store_slice(url, start, count, seed, sample_every))


def store_population(
    url: str, count: int, seed: int, *, sample_every: int = 0, processes: int = 0
) -> Stored:
    """``count`` devices stored through ``ProfileStore.put_many`` by parallel processes.

    Packing Redis commands costs the client more than Redis spends on them, so slices of
    the population are written by one process per core (``processes``; 0: all cores).
    """
    if count <= 0:
        return Stored(0, 0, [])
    processes = processes or os.cpu_count() or 1
    size = -(-count // processes)
    slices = [
        (url, start, min(size, count - start), seed, sample_every)
        for start in range(0, count, size)
    ]
    with multiprocessing.get_context("spawn").Pool(len(slices)) as pool:
        parts = pool.starmap_async(store_slice, slices).get(timeout=max(600, count / 1000))
    return Stored(
        devices=sum(part.devices for part in parts),
        blob_bytes=sum(part.blob_bytes for part in parts),
        sample=[record for part in parts for record in part.sample],
    )
