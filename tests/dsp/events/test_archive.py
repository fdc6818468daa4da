"""The archiver: every event once in hourly gzip files, written before the stream is trimmed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from dsp.events.aggregate import Aggregator
from dsp.events.archive import Archiver, archive_files, file_name, read_archive
from infra import keys
from tests.dsp.events.streams import events, fill


def archived(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_archive(directory)]


async def test_events_are_archived_once_and_trimmed_only_when_counted(
    redis: Redis, tmp_path: Path
) -> None:
    found = events(500, seed=7)
    await fill(redis, found, batch=20)
    entries = await redis.xlen(keys.EVENTS)
    archiver = Archiver(redis, tmp_path, count=25)
    await archiver.catch_up()
    assert sorted(archived(tmp_path), key=lambda e: e["auction"]) == sorted(
        found, key=lambda e: e["auction"]
    )
    assert await redis.xlen(keys.EVENTS) == entries  # the aggregator has not counted them
    await Aggregator(redis, consumer="a").catch_up()
    await archiver.trim()
    assert await redis.xlen(keys.EVENTS) < entries // 10  # approximate trimming keeps a rest
    names = [path.name for path in archive_files(tmp_path)]
    assert names and all(n.startswith("events-") and n.endswith(".jsonl.gz") for n in names)
    rest: Any = await redis.xrange(keys.EVENTS, count=1)
    first_id = rest[0][0] if rest else b"9999999999999-0"
    assert file_name(first_id) >= names[-1]


async def test_a_crash_between_writing_and_acknowledging_leaves_no_duplicate(
    redis: Redis, tmp_path: Path
) -> None:
    found = events(300, seed=8)
    await fill(redis, found[:200], batch=20)
    archiver = Archiver(redis, tmp_path, count=10)
    await archiver.catch_up()
    await fill(redis, found[200:], batch=20)
    # A second archiver writes a batch and dies before its MULTI (no length, no XACK).
    crashed = Archiver(redis, tmp_path, count=10)
    await crashed.ensure_groups()
    await crashed._repair()
    entries = await crashed._read()
    assert entries
    from dsp.events.archive import _lines

    by_file: dict[str, list[bytes]] = {}
    for entry_id, data in entries:
        assert data is not None
        by_file.setdefault(file_name(entry_id), []).extend(_lines(data))
    await crashed._record_new_files(list(by_file))
    crashed._write(by_file)
    torn = archive_files(tmp_path)[-1]
    with torn.open("ab") as handle:  # and a torn half member after it
        handle.write(gzip.compress(b'{"type":"imp"}\n')[:9])
    restarted = Archiver(redis, tmp_path, count=10)
    await restarted.catch_up()
    assert sorted(e["auction"] for e in archived(tmp_path)) == sorted(e["auction"] for e in found)
