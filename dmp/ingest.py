"""Bulk load of device tags into the DMP: ``dmp ingest FILE`` and the library calls behind it.

A file is read in chunks of lines: worker processes (``dmp.ingest_worker``, one a core) read
byte ranges of a plain file themselves (``dmp.ingest_ranges``; a gzipped one is read here and
handed on) and turn each chunk into raw Redis commands: lines validated by
``dmp.ingest_format`` (bad ones go to a reject file), folded per device, encoded as stored
profiles. This process writes the chunks' commands in file order over one raw connection
(``dmp.resp``), a chunk's replies read while the next is sent, so a device given twice ends
as the later line says and a reload stores the same bytes. Small inputs are parsed in this
process, the same way.

A JSON Lines chunk takes the columnar path (``dmp.ingest_columns``): parsed by pyarrow,
checked and encoded as arrays, its commands assembled in bulk; lines it is not sure of, and
chunks that repeat a device, go through the per-line parser, so what is stored and rejected
is the same either way. A CSV file does the same (``dmp.ingest_csv_columns``) block by block
after its header; a block it cannot take line for row (a quote other than around a whole
field on one line, a lone carriage return, bad UTF-8) is parsed here per line, reading on
into the next blocks while a quoted row is under way. In merge mode the devices a chunk
finds stored are merged here (``dmp.ingest_merge``), whichever path encoded them. In-memory
records are per line.

Modes, per device (all IDs of a line are aliases of its first):
    merge    stored tags kept, the line's added (a tag given again keeps its later expiry,
             expired ones are dropped); snapshot fields the line gives override, others kept
    replace  the line is the whole profile

Both are rerunnable: loading the same file again stores the same bytes. Aliases stored are
the MD5 and SHA1 of each raw ID's canonical text (what exchanges send); ``every_spelling``
adds the hashes of its other spellings (letter case, MAC separators, IMEI without check digit).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import itertools
import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Never, TextIO

import numpy as np
from redis.asyncio import Redis
from tqdm import tqdm

from dmp import ingest_pool
from dmp.audience_build import bump_version
from dmp.errors import IngestError
from dmp.ingest_cluster import cluster_connection, processes_for
from dmp.ingest_commands import bulk_commands
from dmp.ingest_csv_columns import Header, plain_block
from dmp.ingest_format import (
    FORMATS,
    Chunk,
    Rejected,
    TagTable,
    csv_chunks,
    csv_header,
    csv_rows,
    record_chunks,
)
from dmp.ingest_merge import Merger
from dmp.ingest_ranges import BOM, ByteRange, byte_ranges, read_range
from dmp.ingest_worker import ChunkParser, ChunkResult, Prepared, Settings, fold, split_lines
from dmp.profile import day_number
from dmp.profile_store import ProfileStore
from dmp.resp import RespConnection
from dmp.taxonomy import Taxonomy

log = logging.getLogger(__name__)

MODES = ("merge", "replace")
DEFAULT_BATCH_SIZE = 4000  # lines a chunk: a few milliseconds of a worker's time
# Below this a file is parsed here: starting worker processes costs a few tenths of a second.
POOL_MIN_BYTES = 8 << 20
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_GZIP_MAGIC = b"\x1f\x8b"
_READ_BYTES = 8 << 20
# Bytes a worker's range spans per line of ``batch_size``: about a CSV line of 24 tags.
_RANGE_LINE_BYTES = 1536


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What a load did: lines loaded and rejected, wall time, and the reject file if any."""

    loaded: int
    rejected: int
    seconds: float
    rejects_path: Path | None

    @property
    def devices_per_s(self) -> float:
        return self.loaded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, object]:
        """The one-line JSON summary ``dmp ingest`` prints."""
        return {
            "loaded": self.loaded,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "devices_per_s": round(self.devices_per_s),
            "rejects_file": None if self.rejects_path is None else str(self.rejects_path),
        }


def detect_format(path: Path, given: str | None = None) -> str:
    """``jsonl`` or ``csv``: ``given`` if set, else from the extension (under any ``.gz``)."""
    if given is not None:
        if given not in FORMATS:
            raise IngestError("format", f"expected one of {', '.join(FORMATS)}, got {given!r}")
        return given
    name = path.name.lower().removesuffix(".gz")
    found = _EXTENSIONS.get(Path(name).suffix)
    if found is None:
        raise IngestError(
            "format",
            f"cannot tell the format of {path.name!r} from its extension "
            "(.jsonl, .ndjson, .json, .csv, optionally .gz); give it with --format",
        )
    return found


def default_rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects")


@dataclass(frozen=True, slots=True)
class _Job:
    """Consecutive lines of a file, numbered from ``first_line``; ``position``: bytes read."""

    text: bytes
    first_line: int
    position: int


def _jobs(
    stream: io.BufferedIOBase, size: int, raw: io.BufferedReader, number: int = 1
) -> Iterator[_Job]:
    """``size`` lines a job, cut from large reads of ``stream`` (newlines found by numpy:
    iterating a file's lines in Python cost the loader a good part of a core); its lines
    are numbered from ``number`` (1: the file's start, where a byte-order mark is dropped)."""
    rest = stream.read(_READ_BYTES)
    if number == 1:
        rest = rest.removeprefix(BOM)
    while rest:
        block = stream.read(_READ_BYTES)
        data = rest + block if block else rest
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        start = 0
        for last in range(size - 1, len(ends), size):
            end = int(ends[last]) + 1
            yield _Job(data[start:end], number, raw.tell())
            number += size
            start = end
        rest = data[start:]
        if not block:
            if rest:
                yield _Job(rest, number, raw.tell())
            return


class _Writer:
    """Writes chunks in order over one connection, one chunk's replies still to read."""

    __slots__ = ("_conn", "_merger", "_pending", "loaded")

    def __init__(self, conn: RespConnection, merger: Merger | None) -> None:
        self._conn = conn
        self._merger = merger
        self._pending = 0
        self.loaded = 0

    async def write(self, result: ChunkResult) -> None:
        if self._merger is None:
            commands, replies = result.commands, result.replies
        else:
            sent = self._merger.send_lookup(result)  # queued behind every earlier chunk
            await self.drain()  # the merge reads must see every earlier chunk
            commands, replies = await self._merger.commands(result, sent)
        self._conn.send(commands)
        await self.drain()  # the previous chunk's replies, while Redis works on this one
        self._pending = replies
        self.loaded += result.devices

    async def drain(self) -> None:
        pending, self._pending = self._pending, 0
        if pending:
            await self._conn.integers(pending)


async def _parse_here(
    parser: ChunkParser, store: ProfileStore, chunk: Chunk, lines: int
) -> ChunkResult:
    devices = fold(chunk.lines, parser.replace)
    missing = parser.missing(devices)
    if missing:
        parser.learn(missing, await store.refs([snapshot for _, snapshot in missing]))
    return parser.build(chunk, lines, devices)


async def _finish_here(parser: ChunkParser, store: ProfileStore, prepared: Prepared) -> ChunkResult:
    missing = parser.missing_of(prepared.snapshots())
    if missing:
        parser.learn(missing, await store.refs([snapshot for _, snapshot in missing]))
    return parser.finish(prepared)


async def _here(
    parser: ChunkParser, store: ProfileStore, jobs: Iterable[_Job]
) -> AsyncIterator[tuple[_Job | None, ChunkResult]]:
    for job in jobs:
        yield job, await _finish_here(parser, store, parser.prepare_json(job.text, job.first_line))


def _csv_header_of(first: bytes) -> Header | None:
    """The columns of a CSV header line the fast path can follow (a plain line, without
    repeated names or an ``ids`` column); None leaves the file to the per-line parser."""
    if not plain_block(first):
        return None
    try:
        header = csv_header(next(csv.reader([first.decode()]), None))
    except IngestError:
        return None  # the per-line parser raises it again
    names = [name for name, _ in header]
    return header if len(set(names)) == len(names) and "ids" not in names else None


def _csv_segments(jobs: Iterator[_Job], header: Header, table: TagTable) -> Iterator[_Job | Chunk]:
    """The blocks after a CSV header: plain ones (``plain_block``) as they are, for the fast
    path; the others parsed here by the per-line parser, which reads on into the next
    blocks while a quoted row is under way, so every block handed on starts at a row."""
    for job in jobs:
        yield job if plain_block(job.text) else _csv_here(job, jobs, header, table)


def _csv_here(job: _Job, jobs: Iterator[_Job], header: Header, table: TagTable) -> Chunk:
    pending = deque(split_lines(job.text))
    held: list[list[str]] = []

    def lines() -> Iterator[bytes]:
        while True:
            while pending:
                yield pending.popleft()
            if not held or not held[0]:
                return  # between rows: the next block is handed on
            more = next(jobs, None)
            if more is None:
                return
            pending.extend(split_lines(more.text))

    return csv_rows(lines(), header, table, job.first_line, held=held.append)


async def _csv_results(
    load: _Load,
    pool: ProcessPoolExecutor | None,
    segments: Iterable[_Job | Chunk],
    header: Header,
    depth: int,
) -> AsyncIterator[tuple[_Job | None, ChunkResult]]:
    parser, store = load.parser, load.store
    loop = asyncio.get_running_loop()
    window: deque[tuple[_Job | None, asyncio.Future[ChunkResult]]] = deque()
    try:
        for segment in segments:
            if isinstance(segment, Chunk) or pool is None:
                if isinstance(segment, Chunk):
                    job, result = None, await _parse_here(parser, store, segment, 0)
                else:
                    prepared = parser.prepare_csv(segment.text, segment.first_line, header)
                    job, result = segment, await _finish_here(parser, store, prepared)
                future: asyncio.Future[ChunkResult] = loop.create_future()
                future.set_result(result)
                window.append((job, future))
            else:
                submitted = pool.submit(
                    ingest_pool.parse_csv, segment.text, segment.first_line, header
                )
                window.append((segment, asyncio.wrap_future(submitted)))
            while window and (len(window) >= depth or window[0][1].done()):
                done, pending = window.popleft()
                yield done, await pending
        while window:
            done, pending = window.popleft()
            yield done, await pending
    finally:
        for _, left in window:
            left.cancel()


async def _in_workers(
    pool: ProcessPoolExecutor, jobs: Iterable[_Job], depth: int
) -> AsyncIterator[tuple[_Job | None, ChunkResult]]:
    window: deque[tuple[_Job, asyncio.Future[ChunkResult]]] = deque()
    try:
        for job in jobs:
            submitted = pool.submit(ingest_pool.parse_json, job.text, job.first_line)
            window.append((job, asyncio.wrap_future(submitted)))
            if len(window) >= depth:
                done, result = window.popleft()
                yield done, await result
        while window:
            done, result = window.popleft()
            yield done, await result
    finally:
        for _, pending in window:
            pending.cancel()


def _line_count(text: bytes) -> int:
    return text.count(b"\n") + (not text.endswith(b"\n") and bool(text))


def _renumbered(result: ChunkResult, first_line: int) -> ChunkResult:
    if first_line != 1 and result.rejected:
        shift = first_line - 1
        result.rejected = [
            Rejected(r.line_number + shift, r.reason, r.text) for r in result.rejected
        ]
    return result


def _read_on(
    raw: io.BufferedReader,
    spans: list[ByteRange],
    index: int,
    header: Header,
    line: int,
    table: TagTable,
) -> tuple[Chunk, int, int]:
    """Range ``index`` parsed here per line from line number ``line``, reading on through the
    next ranges while a quoted row is under way: the chunk, the last range read and the
    number of lines read."""
    taken = [index]

    def more() -> Iterator[_Job]:
        for following in range(index + 1, len(spans)):
            taken.append(following)
            yield _Job(read_range(raw, spans[following]), 0, spans[following].end)

    chunk = _csv_here(_Job(read_range(raw, spans[index]), line, 0), more(), header, table)
    lines = sum(_line_count(read_range(raw, spans[i])) for i in taken)
    return chunk, taken[-1], lines


async def _range_results(
    load: _Load,
    pool: ProcessPoolExecutor,
    raw: io.BufferedReader,
    spans: list[ByteRange],
    header: Header | None,
    depth: int,
) -> AsyncIterator[tuple[_Job | None, ChunkResult]]:
    """Results of the ranges in file order (each with a text-less job: its first line and end
    offset), lines renumbered.

    A CSV range whose lines are not one row each comes back as None: it is parsed here per
    line (``_csv_here``), reading on through the next ranges while a quoted row is under
    way; the workers' results for the ranges so read are dropped.
    """
    path = str(raw.name)
    window: deque[tuple[int, asyncio.Future[ChunkResult | None]]] = deque()
    submitted = skip_to = 0
    line = 1 if header is None else 2
    try:
        while submitted < len(spans) or window:
            while submitted < len(spans) and len(window) < depth:
                future: Future[ChunkResult | None]
                if header is None:
                    future = pool.submit(ingest_pool.parse_json_range, path, spans[submitted])
                else:
                    future = pool.submit(
                        ingest_pool.parse_csv_range, path, spans[submitted], header
                    )
                window.append((submitted, asyncio.wrap_future(future)))
                submitted += 1
            index, pending = window.popleft()
            result = await pending
            if index < skip_to:
                continue
            if result is not None:
                yield _Job(b"", line, spans[index].end), _renumbered(result, line)
                line += result.lines
                continue
            assert header is not None  # only a CSV range comes back unparsed
            chunk, last, lines = _read_on(raw, spans, index, header, line, load.parser.table)
            skip_to = last + 1
            result = await _parse_here(load.parser, load.store, chunk, lines)
            yield _Job(b"", line, spans[last].end), result
            line += lines
    finally:
        for _, left in window:
            left.cancel()


def _pool(
    settings: Settings,
    redis: Redis,
    workers: int,
    sample: bytes = b"",
    header: Header | None = None,
) -> ProcessPoolExecutor:
    """Worker processes; ``sample``: whole lines from the start of a plain file (CSV rows
    under ``header``, else JSON Lines) to warm the parsing up on before forking."""
    # Forked where possible: a spawned worker re-imports the caller's main module (which
    # may not guard its top level) and its imports cost a few tenths of a second. Workers
    # use nothing of the parent's but the settings: their Redis client is their own.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        bulk_commands()  # built once here, inherited by every worker
        if sample:
            ingest_pool.warm_up(settings, sample, header)
    options = ingest_pool.redis_options(redis.connection_pool.connection_kwargs)
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=ingest_pool.start,
        initargs=(settings, options),
    )


_SAMPLE_BYTES = 32 * 1024


def _sample(raw: io.BufferedReader, start: int) -> bytes:
    """Whole lines from ``start`` of the file, about ``_SAMPLE_BYTES`` (``_pool``'s sample)."""
    data = os.pread(raw.fileno(), _SAMPLE_BYTES, start)
    return data[: data.rfind(b"\n") + 1]


def _workers(given: int | None, path: Path) -> int:
    if given is not None:
        return max(1, given)
    return min(4, os.cpu_count() or 1) if path.stat().st_size >= POOL_MIN_BYTES else 1


class _RejectFile:
    """Rejected lines as ``number<TAB>reason<TAB>line``.

    Created at the first reject, and a stale one from an earlier run removed at the start, so
    the file exists exactly when the last run rejected something.
    """

    __slots__ = ("path", "count", "_file")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: TextIO | None = None

    def __enter__(self) -> _RejectFile:
        self.path.unlink(missing_ok=True)
        return self

    def write(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        self._file.writelines(f"{r.line_number}\t{r.reason}\t{r.text}\n" for r in rejected)
        self.count += len(rejected)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()


def _open(raw: io.BufferedReader, stack: ExitStack) -> io.BufferedIOBase:
    """The file's bytes, gunzipped if it is gzip (by its magic bytes)."""
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def _today(now: float | None) -> int:
    return day_number(time.time() if now is None else now)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise IngestError("mode", f"expected one of {', '.join(MODES)}, got {mode!r}")


_Results = AsyncIterator[tuple["_Job | None", ChunkResult]]
_OnResult = Callable[["_Job | None", ChunkResult], None]


class _Load:
    """One load's store, parser and writer connection."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.store = ProfileStore(redis)
        self.parser = ChunkParser(settings)

    async def run(self, results: _Results, on_result: _OnResult) -> int:
        await self.store.load_scripts()
        connection = cluster_connection(self.redis, self.store) or RespConnection(self.redis)
        async with connection as conn:
            settings = self.settings
            merger = None if settings.replace else Merger(conn, self.store, settings.today)
            writer = _Writer(conn, merger)
            async for job, result in results:
                on_result(job, result)
                await writer.write(result)
            await writer.drain()
        return writer.loaded


async def ingest_file(
    redis: Redis,
    path: Path,
    *,
    taxonomy: Taxonomy,
    mode: str = "merge",
    rejects_path: Path | None = None,
    progress: bool = False,
    now: float | None = None,
    file_format: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    every_spelling: bool = False,
) -> IngestReport:
    """Load a JSON Lines or CSV file (optionally gzipped) of device tags.

    Bad lines go to ``rejects_path`` (default ``<path>.rejects``) and the rest still load.
    The file is parsed by ``workers`` processes (default: one a core, at most four, for files
    of 8 MB or more; 1 parses here). Raises ``OSError`` when
    the file cannot be read and ``IngestError`` for a problem with the whole file (unknown
    format, CSV header without ``id_type``/``id``).
    """
    _check_mode(mode)
    file_format = detect_format(path, file_format)
    rejects_path = rejects_path or default_rejects_path(path)
    if rejects_path.resolve() == path.resolve():
        raise IngestError("rejects", "the reject file must not be the input file")
    started = time.perf_counter()
    settings = Settings(taxonomy, _today(now), mode == "replace", every_spelling)
    load = _Load(redis, settings)
    processes = processes_for(redis, _workers(workers, path))
    with ExitStack() as stack:
        raw = stack.enter_context(path.open("rb"))
        rejects = stack.enter_context(_RejectFile(rejects_path))
        bar = stack.enter_context(_progress_bar(path, progress))

        def on_result(job: _Job | None, result: ChunkResult) -> None:
            rejects.write(result.rejected)
            bar.update((job.position if job else raw.tell()) - bar.n)

        size = os.fstat(raw.fileno()).st_size
        compressed = raw.peek(2)[:2] == _GZIP_MAGIC
        if file_format == "csv":
            stream = _open(raw, stack)
            head = stream.readline()
            first = head.removeprefix(BOM)
            header = _csv_header_of(first)
            if header is None:
                lines = itertools.chain((first,), stream)
                results = _chunks_here(load, csv_chunks(lines, load.parser.table, batch_size))
            else:
                sample = b"" if compressed else _sample(raw, len(head))
                pool = (
                    stack.enter_context(_pool(settings, redis, processes, sample, header))
                    if processes > 1
                    else None
                )
                if pool is not None and not compressed:
                    spans = list(byte_ranges(len(head), size, batch_size * _RANGE_LINE_BYTES))
                    results = _range_results(load, pool, raw, spans, header, 2 * processes)
                else:
                    jobs = _jobs(stream, batch_size, raw, 2)
                    segments = _csv_segments(jobs, header, load.parser.table)
                    results = _csv_results(load, pool, segments, header, 2 * processes)
        elif processes > 1:
            sample = b"" if compressed else _sample(raw, 0).removeprefix(BOM)
            pool = stack.enter_context(_pool(settings, redis, processes, sample))
            if compressed:
                jobs = _jobs(_open(raw, stack), batch_size, raw)
                results = _in_workers(pool, jobs, 2 * processes)
            else:
                spans = list(byte_ranges(0, size, batch_size * _RANGE_LINE_BYTES))
                results = _range_results(load, pool, raw, spans, None, 2 * processes)
        else:
            results = _here(load.parser, load.store, _jobs(_open(raw, stack), batch_size, raw))
        loaded = await load.run(results, on_result)
    if loaded:
        await bump_version(redis)  # audience indexes and sizes move on with the data
    report = IngestReport(
        loaded,
        rejects.count,
        time.perf_counter() - started,
        rejects_path if rejects.count else None,
    )
    log.info("ingest finished", extra={"path": str(path), **report.summary()})
    return report


async def _chunks_here(
    load: _Load, chunks: Iterable[Chunk]
) -> AsyncIterator[tuple[_Job | None, ChunkResult]]:
    for chunk in chunks:
        yield None, await _parse_here(load.parser, load.store, chunk, 0)


def _progress_bar(path: Path, enabled: bool) -> tqdm[Never]:
    # Over bytes of the file as stored (compressed, for .gz): the only total known upfront.
    return tqdm(
        total=path.stat().st_size,
        desc=path.name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
    )


async def ingest_records(
    redis: Redis,
    records: Iterable[object],
    *,
    taxonomy: Taxonomy,
    mode: str = "merge",
    now: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    every_spelling: bool = False,
) -> int:
    """Load in-memory records, each shaped like a JSON line; returns how many loaded.

    Invalid records are skipped and logged, as a file's bad lines are rejected.
    """
    _check_mode(mode)
    load = _Load(redis, Settings(taxonomy, _today(now), mode == "replace", every_spelling))

    def on_result(job: _Job | None, result: ChunkResult) -> None:
        for rejected in result.rejected:
            log.warning(
                "record rejected",
                extra={"record": rejected.line_number, "reason": rejected.reason},
            )

    chunks = record_chunks(records, load.parser.table, max(1, batch_size))
    loaded = await load.run(_chunks_here(load, chunks), on_result)
    if loaded:
        await bump_version(redis)
    return loaded
