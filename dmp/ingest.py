"""Bulk load of device tags into the DMP: ``dmp ingest FILE`` and the library calls behind it.

A file is read in chunks of lines (``dmp.ingest_format`` validates them; bad lines go to a
reject file), the valid lines are gathered into batches, and each batch is written with one
pipeline. Parsing the next batch overlaps the write of the current one: the parser hands the
event loop a turn after every chunk, so the pipeline in flight keeps sending and reading
replies while Redis works on another core.

Modes, per device (all IDs of a line are aliases of its first):
    merge    stored tags kept, the line's added (a tag given again keeps its later expiry,
             expired ones are dropped); snapshot fields the line gives override, others kept
    replace  the line is the whole profile

Both are rerunnable: loading the same file again stores the same bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Never, TextIO

from redis.asyncio import Redis
from tqdm import tqdm

from dmp.errors import IngestError
from dmp.ingest_format import (
    FORMATS,
    Chunk,
    DeviceLine,
    Rejected,
    SnapshotFields,
    TagTable,
    csv_chunks,
    json_chunks,
    record_chunks,
)
from dmp.profile import ProfileFormatError, Snapshot, TagEntry, day_number, decode_entries, encode
from dmp.profile_store import ALIAS_MARK, ProfileStore
from dmp.taxonomy import Taxonomy

log = logging.getLogger(__name__)

MODES = ("merge", "replace")
DEFAULT_BATCH_SIZE = 4000
# Lines parsed between turns given to the event loop (a few milliseconds of work).
CHUNK_LINES = 500
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_SNAPSHOT_CACHE_SIZE = 100_000


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


class _Device:
    """One device's profile as the lines of a batch build it up (batch-local)."""

    __slots__ = ("digests", "snapshot", "entries")

    def __init__(
        self, digests: tuple[bytes, ...], snapshot: Snapshot, entries: list[TagEntry]
    ) -> None:
        self.digests = digests
        self.snapshot = snapshot
        self.entries = entries

    def apply(self, line: DeviceLine, snapshot: Snapshot, replace: bool) -> None:
        self.digests = tuple(dict.fromkeys(self.digests + line.digests))
        self.snapshot = snapshot
        # A new list, never extended in place: the current one may be another line's own.
        # Later entries win ties in encode(), so a tag given again takes the later score.
        self.entries = line.entries if replace else self.entries + line.entries


def _overlay(base: Snapshot, fields: SnapshotFields) -> Snapshot:
    os_, model, price_tier, country, region, city = fields
    return Snapshot(
        os=base.os if os_ is None else os_,
        model=base.model if model is None else model,
        price_tier=base.price_tier if price_tier is None else price_tier,
        country=base.country if country is None else country,
        region=base.region if region is None else region,
        city=base.city if city is None else city,
    )


class _Loader:
    """Turns batches of lines into profile writes, one pipeline a batch, one batch in flight."""

    __slots__ = (
        "_store",
        "_replace",
        "_today",
        "_pending",
        "_pending_lines",
        "_empty",
        "_snapshots",
        "loaded",
    )

    def __init__(self, store: ProfileStore, mode: str, today: int) -> None:
        if mode not in MODES:
            raise IngestError("mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
        self._store = store
        self._replace = mode == "replace"
        self._today = today
        self._pending: asyncio.Task[int] | None = None
        self._pending_lines = 0
        self._empty = Snapshot()
        # Snapshots of new devices, shared: a file repeats few (model, place) combinations,
        # and building a frozen dataclass costs more than a dict lookup.
        self._snapshots: dict[SnapshotFields, Snapshot] = {}
        self.loaded = 0

    @property
    def busy(self) -> bool:
        return self._pending is not None

    async def add(self, lines: list[DeviceLine]) -> None:
        # The previous write must land first: this batch's merge reads may need it.
        await self.drain()
        stored = {} if self._replace else await self._stored(lines)
        devices = self._fold(lines, stored)
        items = [(d.digests, encode(d.snapshot, d.entries)) for d in devices.values()]
        self._pending = asyncio.create_task(self._store.put_many(items))
        self._pending_lines = len(lines)
        await asyncio.sleep(0)  # let the write start sending before parsing resumes

    async def drain(self) -> None:
        task, self._pending = self._pending, None
        if task is not None:
            await task
            self.loaded += self._pending_lines

    async def abort(self) -> None:
        task, self._pending = self._pending, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _stored(self, lines: list[DeviceLine]) -> dict[bytes, tuple[bytes, bytes | None]]:
        """Each line's primary digest -> (the digest its profile lives under, the stored blob).

        A primary that is already stored as an alias of another device's digest (loaded
        earlier with another first ID) is followed, so the device keeps one profile.
        """
        keys = list(dict.fromkeys(line.digests[0] for line in lines))
        found: dict[bytes, tuple[bytes, bytes | None]] = {}
        aliases: dict[bytes, bytes] = {}
        for key, blob in zip(keys, await self._store.get_many(keys), strict=True):
            if blob is not None and blob[:1] == ALIAS_MARK:
                aliases[key] = blob[1:]
            else:
                found[key] = (key, blob)
        if aliases:
            targets = list(dict.fromkeys(aliases.values()))
            blobs = dict(zip(targets, await self._store.get_many(targets), strict=True))
            for key, target in aliases.items():
                blob = blobs[target]
                live = blob is not None and blob[:1] != ALIAS_MARK
                found[key] = (target, blob) if live else (key, None)
        return found

    def _fold(
        self, lines: list[DeviceLine], stored: dict[bytes, tuple[bytes, bytes | None]]
    ) -> dict[bytes, _Device]:
        # Lines of one device in one batch are applied in file order, as if loaded one by one.
        devices: dict[bytes, _Device] = {}
        replace = self._replace
        for line in lines:
            key = line.digests[0]
            home, blob = stored[key] if key in stored else (key, None)
            device = devices.get(home)
            if device is None:
                devices[home] = self._start(home, blob, line)
            else:
                base = self._empty if replace else device.snapshot
                device.apply(line, self._snapshot(base, line.fields), replace)
        return devices

    def _start(self, home: bytes, blob: bytes | None, line: DeviceLine) -> _Device:
        digests = line.digests
        if home != digests[0]:
            digests = tuple(dict.fromkeys((home, *digests)))
        if blob is not None:
            try:
                snapshot, entries = decode_entries(blob)
            except ProfileFormatError as exc:
                log.warning("unreadable stored profile replaced", extra={"reason": str(exc)})
            else:
                today = self._today
                kept = [e for e in entries if e.expires_day >= today]
                return _Device(digests, _overlay(snapshot, line.fields), kept + line.entries)
        return _Device(digests, self._snapshot(self._empty, line.fields), line.entries)

    def _snapshot(self, base: Snapshot, fields: SnapshotFields) -> Snapshot:
        if base is not self._empty:
            return _overlay(base, fields)
        found = self._snapshots.get(fields)
        if found is None:
            if len(self._snapshots) >= _SNAPSHOT_CACHE_SIZE:
                self._snapshots.clear()
            found = self._snapshots[fields] = _overlay(base, fields)
        return found


async def _load(
    chunks: Iterator[Chunk],
    loader: _Loader,
    batch_size: int,
    on_chunk: Callable[[Chunk], None],
) -> int:
    batch: list[DeviceLine] = []
    try:
        for chunk in chunks:
            on_chunk(chunk)
            batch += chunk.lines
            if len(batch) >= batch_size:
                await loader.add(batch)
                batch = []
            elif loader.busy:
                await asyncio.sleep(0)  # a turn for the write in flight
        if batch:
            await loader.add(batch)
        await loader.drain()
    finally:
        await loader.abort()
    return loader.loaded


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


def _open_lines(raw: io.BufferedReader, stack: ExitStack) -> Iterator[bytes]:
    """The file's lines, gunzipped if it is gzip (by its magic bytes), without a leading BOM."""
    stream: io.BufferedIOBase = raw
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    first = stream.readline()
    return itertools.chain((first.removeprefix(_BOM),), stream)


def _today(now: float | None) -> int:
    return day_number(time.time() if now is None else now)


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
) -> IngestReport:
    """Load a JSON Lines or CSV file (optionally gzipped) of device tags.

    Bad lines go to ``rejects_path`` (default ``<path>.rejects``) and the rest still load.
    Raises ``OSError`` when the file cannot be read and ``IngestError`` for a problem with
    the whole file (unknown format, CSV header without ``id_type``/``id``).
    """
    file_format = detect_format(path, file_format)
    rejects_path = rejects_path or default_rejects_path(path)
    if rejects_path.resolve() == path.resolve():
        raise IngestError("rejects", "the reject file must not be the input file")
    started = time.perf_counter()
    table = TagTable(taxonomy, _today(now))
    loader = _Loader(ProfileStore(redis), mode, table.today)
    parse = csv_chunks if file_format == "csv" else json_chunks
    with ExitStack() as stack:
        raw = stack.enter_context(path.open("rb"))
        rejects = stack.enter_context(_RejectFile(rejects_path))
        bar = stack.enter_context(_progress_bar(path, progress))

        def on_chunk(chunk: Chunk) -> None:
            rejects.write(chunk.rejected)
            bar.update(raw.tell() - bar.n)

        chunks = parse(_open_lines(raw, stack), table, CHUNK_LINES)
        await _load(chunks, loader, max(1, batch_size), on_chunk)
    report = IngestReport(
        loader.loaded,
        rejects.count,
        time.perf_counter() - started,
        rejects_path if rejects.count else None,
    )
    log.info("ingest finished", extra={"path": str(path), **report.summary()})
    return report


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
) -> int:
    """Load in-memory records, each shaped like a JSON line; returns how many loaded.

    Invalid records are skipped and logged, as a file's bad lines are rejected.
    """
    table = TagTable(taxonomy, _today(now))
    loader = _Loader(ProfileStore(redis), mode, table.today)

    def on_chunk(chunk: Chunk) -> None:
        for rejected in chunk.rejected:
            log.warning(
                "record rejected",
                extra={"record": rejected.line_number, "reason": rejected.reason},
            )

    chunks = record_chunks(records, table, CHUNK_LINES)
    return await _load(chunks, loader, max(1, batch_size), on_chunk)
