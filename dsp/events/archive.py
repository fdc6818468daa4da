"""The archiver: every event of the stream, once, in gzip JSON Lines files rotated by hour.

It reads the stream in its own consumer group, appends each batch to the file of the hour
its entries arrived in (``events-YYYYMMDDHH.jsonl.gz``, one gzip member per batch), fsyncs,
and only then records the file's new length and acknowledges the batch, together in one
MULTI. Killed before that, the batch is read again, and the file is first cut back to the
length last recorded, so a half-written or unacknowledged tail never stays: each event is in
the archive exactly once. One archiver per data directory.

Only what is archived, and counted by the aggregator, is trimmed from the stream
(XTRIM MINID up to the oldest entry either group still needs).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis.asyncio import Redis

from dsp.events.aggregate import Entry, ensure_group, entries_of
from dsp.events.schema import BATCH_FIELD, ENTRY_FIELD, decode_table
from infra import keys

log = logging.getLogger(__name__)
RedisValue = bytes | bytearray | memoryview | str | int | float

FILE_PREFIX = "events-"
FILE_SUFFIX = ".jsonl.gz"


def file_name(entry_id: bytes) -> str:
    """The hourly file of a stream entry, by the time it was added."""
    ms = int(entry_id.split(b"-", 1)[0])
    return f"{FILE_PREFIX}{time.strftime('%Y%m%d%H', time.gmtime(ms // 1000))}{FILE_SUFFIX}"


def archive_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"))


def read_archive(directory: Path) -> Iterator[bytes]:
    """Every archived line (one event each), file by file in hour order."""
    for path in archive_files(directory):
        with gzip.open(path, "rb") as lines:
            for line in lines:
                if line.strip():
                    yield line.rstrip(b"\n")


def _lines(data: dict[bytes, bytes]) -> list[bytes]:
    batch = data.get(BATCH_FIELD)
    if batch is not None:
        rows = decode_table(batch).to_pylist()
        return [orjson.dumps({k: v for k, v in row.items() if v is not None}) for row in rows]
    payload = data.get(ENTRY_FIELD) or b""
    return [line for line in payload.split(b"\n") if line]


def _next_id(entry_id: bytes | str) -> str:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(slots=True)
class ArchiveProgress:
    entries: int = 0
    events: int = 0
    lost: int = 0  # entries trimmed before they were archived (the stream's hard bound)
    trimmed_to: str = ""


class Archiver:
    def __init__(
        self,
        redis: Redis,
        directory: Path,
        *,
        stream: bytes = keys.EVENTS,
        group: str = keys.EVENTS_GROUP_ARCHIVER,
        consumer: str = "archiver",
        count: int = 200,
        compresslevel: int = 6,
        trim_after: Sequence[str] = (keys.EVENTS_GROUP_AGGREGATOR,),
    ) -> None:
        self._redis = redis
        self.directory = directory
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._count = count
        self._level = compresslevel
        self._groups = (group, *trim_after)
        self._own_pending = True
        self._repaired = False
        self._known: set[str] = set()
        self.progress = ArchiveProgress()

    async def ensure_groups(self) -> None:
        for group in self._groups:
            await ensure_group(self._redis, self._stream, group)

    async def _repair(self) -> None:
        """Cut every file back to the length last acknowledged with its batch."""
        self.directory.mkdir(parents=True, exist_ok=True)
        recorded = {
            (k.decode() if isinstance(k, bytes) else k): int(v)
            for k, v in (await self._redis.hgetall(keys.archive_offsets())).items()
        }
        for name, size in recorded.items():
            path = self.directory / name
            if path.exists() and path.stat().st_size > size:
                log.warning("archive tail cut", extra={"file": path.name, "to": size})
                with path.open("r+b") as handle:
                    handle.truncate(size)
                    os.fsync(handle.fileno())
        self._known = set(recorded)
        self._repaired = True

    async def _record_new_files(self, names: Sequence[str]) -> None:
        """Note a file's length before its first batch is written, so a crash in between
        is cut back too (a file that exists but was never recorded keeps what it holds)."""
        for name in names:
            if name in self._known:
                continue
            path = self.directory / name
            size = path.stat().st_size if path.exists() else 0
            await self._redis.hsetnx(keys.archive_offsets(), name, size)
            self._known.add(name)

    async def _read(self) -> list[Entry]:
        start = "0" if self._own_pending else ">"
        reply = await self._redis.xreadgroup(
            self._group, self._consumer, {self._stream: start}, count=self._count
        )
        entries = entries_of(reply)
        if not entries and self._own_pending:
            self._own_pending = False
            return await self._read()
        return entries

    async def step(self) -> int:
        """Archive one batch; how many entries it held (0: nothing to read)."""
        if not self._repaired:
            await self.ensure_groups()
            await self._repair()
        entries = await self._read()
        if not entries:
            return 0
        by_file: dict[str, list[bytes]] = defaultdict(list)
        for entry_id, data in entries:
            if data is None:
                self.progress.lost += 1
                continue
            by_file[file_name(entry_id)] += _lines(data)
        await self._record_new_files(list(by_file))
        sizes = await asyncio.to_thread(self._write, dict(by_file))
        async with self._redis.pipeline(transaction=True) as pipe:
            if sizes:
                pipe.hset(keys.archive_offsets(), mapping=sizes)
            pipe.xack(self._stream, self._group, *[entry_id for entry_id, _ in entries])
            await pipe.execute()
        self.progress.entries += len(entries)
        self.progress.events += sum(len(lines) for lines in by_file.values())
        await self.trim()
        return len(entries)

    def _write(self, by_file: dict[str, list[bytes]]) -> dict[RedisValue, RedisValue]:
        sizes: dict[RedisValue, RedisValue] = {}
        for name, lines in by_file.items():
            path = self.directory / name
            new = not path.exists()
            member = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=self._level, mtime=0)
            with path.open("ab") as handle:
                handle.write(member)
                handle.flush()
                os.fsync(handle.fileno())
                sizes[name] = handle.tell()
            if new:
                directory = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        return sizes

    async def safe_trim_id(self) -> str | None:
        """The oldest entry any of the groups still needs (None: a group is missing)."""
        groups = {
            (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g
            for g in await self._redis.xinfo_groups(self._stream)
        }
        needed = []
        for name in self._groups:
            info = groups.get(name)
            if info is None:
                return None
            if int(info["pending"]):
                summary = await self._redis.xpending(self._stream, name)
                oldest = summary["min"]
                needed.append(oldest.decode() if isinstance(oldest, bytes) else str(oldest))
            else:
                needed.append(_next_id(info["last-delivered-id"]))
        return min(needed, key=_id_key)

    async def trim(self) -> None:
        safe = await self.safe_trim_id()
        if safe is not None and safe != "0-1":
            await self._redis.xtrim(self._stream, minid=safe, approximate=True)
            self.progress.trimmed_to = safe

    async def catch_up(self) -> ArchiveProgress:
        while await self.step():
            pass
        return self.progress

    async def run(self, idle_s: float = 0.5, stop: asyncio.Event | None = None) -> None:
        while stop is None or not stop.is_set():
            if not await self.step():
                await self.trim()  # the aggregator may have caught up meanwhile
                await asyncio.sleep(idle_s)
