"""The DMP's benchmark figures, for ``make bench``: bytes per device and ingest speeds.

Devices are the exchange simulator's own records (``adx_mock.population``: handsets, places,
tag mixes) cloned under fresh IDs, each with exactly ``TAGS`` tags (the record's, cut or
topped up with random taxonomy tags, scored ones with a score), written as JSON Lines (or
as CSV) and loaded through ``ingest_file`` in replace mode, so the figures measure what a
real load stores and does, aliases included.
"""

from __future__ import annotations

import csv
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
from redis.asyncio import Redis

from adx_mock.devices import make_device_id
from adx_mock.population import generate_population
from dmp.ingest import ingest_file
from dmp.ingest_format import CSV_COLUMNS
from dmp.taxonomy import Taxonomy

TAGS = 24
TEMPLATES = 2000


def _records(devices: int, seed: int, tags: int) -> Iterator[dict[str, object]]:
    taxonomy = Taxonomy.default()
    templates = list(generate_population(TEMPLATES, seed, taxonomy))
    spare = list(taxonomy.tags)
    rng = random.Random(seed)
    for index in range(devices):
        record = dict(templates[index % len(templates)])
        record["id"] = make_device_id(str(record["id_type"]), rng.getrandbits(128))
        chosen = list(record["tags"])[:tags]  # type: ignore[call-overload]
        held = {item["tag"] for item in chosen}
        while len(chosen) < tags:
            tag = rng.choice(spare)
            if tag.code not in held:
                held.add(tag.code)
                extra = {"tag": tag.code, "score": rng.randint(0, 100)} if tag.scored else {}
                chosen.append(extra or {"tag": tag.code})
        record["tags"] = chosen
        yield record


def write_devices(path: Path, devices: int, seed: int = 1, tags: int = TAGS) -> None:
    """``devices`` JSON lines of ``tags`` tags each."""
    with path.open("wb") as file:
        for record in _records(devices, seed, tags):
            file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))


def csv_tags(tags: list[dict[str, object]]) -> str:
    """A JSON line's tag objects as a CSV ``tags`` cell: ``code[:score]`` items, ``|``-joined."""
    return "|".join(
        str(item["tag"]) if item.get("score") is None else f"{item['tag']}:{item['score']}"
        for item in tags
    )


def write_devices_csv(path: Path, devices: int, seed: int = 1, tags: int = TAGS) -> None:
    """The devices of ``write_devices`` as CSV rows (header first, LF line ends)."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for record in _records(devices, seed, tags):
            record["tags"] = csv_tags(record["tags"])  # type: ignore[arg-type]
            writer.writerow(
                ["" if record.get(name) is None else record[name] for name in CSV_COLUMNS]
            )


async def _used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def measure_ingest_csv_devices_per_s(redis_url: str, devices: int, workdir: Path) -> float:
    """``measure_ingest_devices_per_s`` of the same devices written as CSV."""
    return await measure_ingest_devices_per_s(redis_url, devices, workdir, "csv")


async def measure_bytes_per_device(redis_url: str, devices: int) -> float:
    """``used_memory`` growth per device over ``devices`` devices of 24 tags, ingested."""
    redis = Redis.from_url(redis_url)
    try:
        with tempfile.TemporaryDirectory(prefix="dmp-bytes-") as tmp:
            path = Path(tmp) / "devices.jsonl"
            write_devices(path, devices)
            before = await _used_memory(redis)
            report = await ingest_file(redis, path, taxonomy=Taxonomy.default(), mode="replace")
            return (await _used_memory(redis) - before) / report.loaded
    finally:
        await redis.aclose()


async def measure_ingest_devices_per_s(
    redis_url: str, devices: int, workdir: Path, file_format: str = "jsonl"
) -> float:
    """``ingest_file`` of ``devices`` JSON lines (or CSV rows, ``file_format="csv"``; 24 tags
    each), end to end, replace mode.

    The file is written to ``workdir`` first, outside the timing.
    """
    path = workdir / f"dmp-ingest-{devices}.{file_format}"
    (write_devices_csv if file_format == "csv" else write_devices)(path, devices)
    redis = Redis.from_url(redis_url)
    try:
        report = await ingest_file(redis, path, taxonomy=Taxonomy.default(), mode="replace")
        return report.devices_per_s
    finally:
        await redis.aclose()
        path.unlink(missing_ok=True)
