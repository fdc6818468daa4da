"""The DMP's two benchmark figures, for ``make bench``: bytes per device and ingest speed.

Devices are the exchange simulator's own records (``adx_mock.population``: handsets, places,
tag mixes) cloned under fresh IDs, each with exactly ``TAGS`` tags (the record's, cut or
topped up with random taxonomy tags, scored ones with a score), written as JSON Lines and
loaded through ``ingest_file`` in replace mode, so both figures measure what a real load
stores and does, aliases included.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import orjson
from redis.asyncio import Redis

from adx_mock.devices import make_device_id
from adx_mock.population import generate_population
from dmp.ingest import ingest_file
from dmp.taxonomy import Taxonomy

TAGS = 24
TEMPLATES = 2000


def write_devices(path: Path, devices: int, seed: int = 1, tags: int = TAGS) -> None:
    """``devices`` JSON lines of ``tags`` tags each."""
    taxonomy = Taxonomy.default()
    templates = list(generate_population(TEMPLATES, seed, taxonomy))
    spare = list(taxonomy.tags)
    rng = random.Random(seed)
    with path.open("wb") as file:
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
            file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))


async def _used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


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


async def measure_ingest_devices_per_s(redis_url: str, devices: int, workdir: Path) -> float:
    """``ingest_file`` of ``devices`` JSON lines (24 tags each), end to end, replace mode.

    The file is written to ``workdir`` first, outside the timing.
    """
    path = workdir / f"dmp-ingest-{devices}.jsonl"
    write_devices(path, devices)
    redis = Redis.from_url(redis_url)
    try:
        report = await ingest_file(redis, path, taxonomy=Taxonomy.default(), mode="replace")
        return report.devices_per_s
    finally:
        await redis.aclose()
        path.unlink(missing_ok=True)
