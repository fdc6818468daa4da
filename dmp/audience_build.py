"""Building the audience index: one full profile scan, cached until the DMP changes.

A build decodes every stored profile (``dmp.profile.decode`` as of today, so expired tags
are dropped) and packs their tags into the index's columns ``CHUNK_ROWS`` devices at a
time. Decoding dominates: about 30 µs a device in Python, so 200,000 devices take seconds.
``IndexCache`` keeps the index until the DMP version counter moves (``bump_version``,
called by whatever changes profiles in bulk: ingest, erasure) or the day changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis

from dmp.audience_index import (
    ABSENT_SCORE,
    DIGEST_BYTES,
    KEY_DTYPE,
    AudienceIndex,
    Rows,
    unpack,
    words_for,
)
from dmp.profile import UNSCORED, ProfileFormatError, day_number, decode
from dmp.profile_store import ProfileStore
from dmp.taxonomy import MAX_TAG_ID, Taxonomy
from infra import keys

log = logging.getLogger(__name__)

# Rows decoded between two packings; a multiple of 64 so that chunks join on word boundaries.
CHUNK_ROWS = 1 << 16
_SCAN_BATCH = 4096


class IndexBuilder:
    """Decoded profiles in, packed columns out: rows are gathered in Python lists and packed
    with numpy once per ``CHUNK_ROWS`` devices."""

    def __init__(self, taxonomy: Taxonomy, today: int) -> None:
        self.taxonomy = taxonomy
        self.today = today
        self.tag_ids = [tag.id for tag in taxonomy.tags]
        self.skipped = 0
        self._column = np.full(MAX_TAG_ID + 2, -1, dtype=np.int32)
        self._column[np.asarray(self.tag_ids, dtype=np.int32)] = np.arange(len(self.tag_ids))
        self._digests: list[bytes] = []
        self._chunks: list[npt.NDArray[np.uint64]] = []
        self._scored: list[tuple[Rows, Rows, npt.NDArray[np.uint8]]] = []
        self._reset()

    def _reset(self) -> None:
        self._rows: list[int] = []
        self._ids: list[int] = []
        self._values: list[int] = []
        self._count = 0

    def add(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Profiles as ``(primary digest, blob)``; unreadable ones are counted and skipped."""
        today = self.today
        for digest, blob in items:
            if len(digest) != DIGEST_BYTES:
                self.skipped += 1
                continue
            try:
                tags = decode(blob, today).tags
            except ProfileFormatError:
                self.skipped += 1
                continue
            self._digests.append(digest)
            self._rows += [self._count] * len(tags)
            self._ids += tags
            self._values += tags.values()
            self._count += 1
            if self._count == CHUNK_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self._count:
            return
        base = len(self._digests) - self._count
        rows = np.asarray(self._rows, dtype=np.intp)
        ids = np.minimum(np.asarray(self._ids, dtype=np.int32), MAX_TAG_ID + 1)
        values = np.asarray(self._values, dtype=np.int16)
        columns = self._column[ids]
        known = columns >= 0
        flags = np.zeros((len(self.tag_ids), words_for(self._count) * 64), dtype=np.bool_)
        flags[columns[known], rows[known]] = True
        self._chunks.append(np.packbits(flags, axis=1, bitorder="little").view(np.uint64))
        scored = known & (values != UNSCORED)
        self._scored.append(
            (rows[scored] + base, columns[scored], np.clip(values[scored], 0, 100).astype(np.uint8))
        )
        self._reset()

    def finish(self, version: int = 0) -> AudienceIndex:
        self._flush()
        digests = np.frombuffer(b"".join(self._digests), dtype=KEY_DTYPE)
        if self._chunks:
            bits = np.ascontiguousarray(np.concatenate(self._chunks, axis=1))
        else:
            bits = np.zeros((len(self.tag_ids), 0), dtype=np.uint64)
        scores = self._score_columns(bits, len(digests))
        self._chunks, self._scored = [], []
        return AudienceIndex(
            digests,
            bits,
            self.tag_ids,
            scores,
            taxonomy=self.taxonomy,
            version=version,
            today=self.today,
        )

    def _score_columns(
        self, bits: npt.NDArray[np.uint64], devices: int
    ) -> dict[int, npt.NDArray[np.uint8]]:
        columns = np.concatenate([part[1] for part in self._scored] or [np.zeros(0, np.intp)])
        if not len(columns):
            return {}
        rows = np.concatenate([part[0] for part in self._scored])
        values = np.concatenate([part[2] for part in self._scored])
        order = np.argsort(columns, kind="stable")
        rows, columns, values = rows[order], columns[order], values[order]
        found, starts = np.unique(columns, return_index=True)
        ends = [*starts[1:], len(columns)]
        scores: dict[int, npt.NDArray[np.uint8]] = {}
        for column, start, end in zip(found, starts, ends, strict=True):
            present = unpack(bits[column], devices)
            score = np.where(present, np.uint8(UNSCORED), np.uint8(ABSENT_SCORE)).astype(np.uint8)
            score[rows[start:end]] = values[start:end]
            scores[self.tag_ids[column]] = score
        return scores


async def read_version(redis: Redis) -> int:
    """The DMP version counter (0 before the first bump)."""
    value = await redis.get(keys.dmp_version())
    return int(value) if value is not None else 0


async def bump_version(redis: Redis) -> int:
    """Mark the DMP's profiles as changed, so cached audience indexes rebuild."""
    return int(await redis.incr(keys.dmp_version()))


async def build_index(
    redis: Redis, taxonomy: Taxonomy, *, today: int | None = None, version: int | None = None
) -> AudienceIndex:
    """Scan every stored profile into a new index (seconds per 100,000 devices)."""
    if version is None:
        version = await read_version(redis)  # read first: a bump during the scan rebuilds
    builder = IndexBuilder(taxonomy, day_number(time.time()) if today is None else today)
    started = time.perf_counter()
    batch: list[tuple[bytes, bytes]] = []
    async for item in ProfileStore(redis).scan():
        batch.append(item)
        if len(batch) >= _SCAN_BATCH:
            builder.add(batch)
            batch = []
    builder.add(batch)
    index = builder.finish(version)
    log.info(
        "audience index built",
        extra={
            "devices": index.devices,
            "skipped": builder.skipped,
            "version": version,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return index


class IndexCache:
    """The current index: rebuilt when the DMP version or the day has moved on.

    One build at a time. By default a caller finding the index stale waits for the rebuild,
    so sizes are exact as of the call. With ``serve_stale``, once a first index exists,
    callers get it at once while a rebuild runs in the background: a console's live
    estimate then never stalls behind a build (tens of seconds per million devices). A
    process that uses ``serve_stale`` calls ``close()`` on shutdown.
    """

    def __init__(
        self,
        redis: Redis,
        taxonomy: Taxonomy,
        *,
        clock: Callable[[], float] = time.time,
        serve_stale: bool = False,
    ) -> None:
        self._redis = redis
        self._taxonomy = taxonomy
        self._clock = clock
        self._serve_stale = serve_stale
        self._lock = asyncio.Lock()
        self._index: AudienceIndex | None = None
        self._refresh: asyncio.Task[AudienceIndex] | None = None

    async def get(self) -> AudienceIndex:
        version = await read_version(self._redis)
        today = day_number(self._clock())
        index = self._index
        if index is not None and index.version == version and index.today == today:
            return index
        if index is not None and self._serve_stale:
            if self._refresh is None or self._refresh.done():
                self._refresh = asyncio.create_task(self._rebuild(version, today))
            return index
        return await self._rebuild(version, today)

    async def _rebuild(self, version: int, today: int) -> AudienceIndex:
        async with self._lock:
            index = self._index
            if index is None or index.version != version or index.today != today:
                index = await build_index(self._redis, self._taxonomy, today=today, version=version)
                self._index = index
            return index

    async def close(self) -> None:
        """Cancel a background rebuild, if one is running."""
        task, self._refresh = self._refresh, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
