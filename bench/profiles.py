"""Group ``dmp``: bytes of Redis memory per stored device, and bulk ingest throughput (JSON
Lines and CSV)."""

from __future__ import annotations

import csv
import gc
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import uvloop
from redis.asyncio import Redis

from bench import devices
from bench.figures import Figures
from dmp.benchmarks import csv_tags, measure_bytes_per_device
from dmp.ingest import IngestReport, ingest_file
from dmp.ingest_format import CSV_COLUMNS
from dmp.taxonomy import Taxonomy
from infra.embedded_redis import EmbeddedRedis

FIGURES = (
    "dmp_bytes_per_device",
    "ingest_devices_per_s",
    "ingest_csv_devices_per_s",
    "ingest_csv_merge_devices_per_s",
)


async def _used_memory(url: str) -> int:
    redis = Redis.from_url(url)
    try:
        info = await redis.info("memory")
    finally:
        await redis.aclose()
    return int(info["used_memory"])


def measure_memory(figures: Figures, count: int, seed: int) -> None:
    """``dmp_bytes_per_device``: ``used_memory`` growth over ``count`` devices of 24 tags,
    loaded the way the product loads them (``dmp ingest``, default aliases: MD5 and SHA1)."""
    figures.say(f"dmp: storing {count:,} devices of {devices.TAGS_PER_DEVICE} tags")
    with EmbeddedRedis() as url:
        started = time.perf_counter()
        per_device = uvloop.run(measure_bytes_per_device(url, count))
        seconds = time.perf_counter() - started
    note = f"{count:,} devices in {seconds:.0f} s, bucket hashes and snapshot dictionary included"
    figures.add(FIGURES[0], per_device, "bytes", note)


async def _ingest(url: str, path: Path, taxonomy: Taxonomy, mode: str) -> IngestReport:
    redis = Redis.from_url(url)
    try:
        return await ingest_file(redis, path, taxonomy=taxonomy, mode=mode)
    finally:
        await redis.aclose()


def _write_csv(path: Path, records: Iterable[devices.Record]) -> None:
    """Records as a CSV ingest file: header, then one row each (tags ``code[:score]``)."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for record in records:
            row = {**record, "tags": csv_tags(record["tags"])}  # type: ignore[arg-type]
            writer.writerow(["" if row.get(name) is None else row[name] for name in CSV_COLUMNS])


def measure_ingest(figures: Figures, count: int, seed: int) -> None:
    """``ingest_devices_per_s`` and ``ingest_csv_devices_per_s``: ``ingest_file`` of the same
    devices as a JSON Lines file, then as a CSV file, each into a fresh Redis in replace
    mode; ``ingest_csv_merge_devices_per_s``: the CSV file in merge mode."""
    taxonomy = Taxonomy.default()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        paths = {"jsonl": Path(tmp) / "devices.jsonl", "csv": Path(tmp) / "devices.csv"}
        records = list(
            devices.clones(devices.templates(devices.TEMPLATES, seed, taxonomy), count, seed)
        )
        _write_csv(paths["csv"], records)
        devices.write_jsonl(paths["jsonl"], records)
        # The loader forks its workers: it should be the small process `dmp ingest` is, not
        # one still holding the generated records (copying its page tables cost 5 % here).
        del records
        gc.collect()
        runs = (
            (FIGURES[1], "jsonl", "replace"),
            (FIGURES[2], "csv", "replace"),
            # merge mode (dmp ingest's default) reads what is stored of every device first
            (FIGURES[3], "csv", "merge"),
        )
        for index, (name, kind, mode) in enumerate(runs):
            path = paths[kind]
            size_mb = path.stat().st_size / 1e6
            what = "JSON Lines" if kind == "jsonl" else "CSV"
            figures.say(f"dmp: ingesting {count:,} devices ({size_mb:.0f} MB of {what}, {mode})")
            with EmbeddedRedis() as url:
                report = uvloop.run(_ingest(url, path, taxonomy, mode))
            if all(later != kind for _, later, _ in runs[index + 1 :]):
                # Gone once read for the last time: left on disk, its dirty pages were written
                # back during the next runs, costing them some 5 %.
                path.unlink()
            note = f"{report.loaded:,} loaded, {report.rejected} rejected, {report.seconds:.1f} s"
            figures.add(name, report.devices_per_s, "devices/s", note)


def run_dmp(
    figures: Figures, *, stored: int = 1_000_000, ingested: int = 200_000, seed: int = 1
) -> None:
    """Figures of the ``dmp`` group."""
    measure_memory(figures, stored, seed)
    measure_ingest(figures, ingested, seed)
