"""Turning a chunk of ingest lines into Redis commands: the CPU-heavy half of a load.

Runs in worker processes (one chunk at a time, so a file is parsed on every core while Redis
works) or in the loading process itself for small inputs. A chunk's lines are validated
(``dmp.ingest_format``), folded per device in file order, encoded as stored profiles (a
snapshot reference and a tag section) and written out as raw RESP ``HSET`` commands, which
the loader sends as they are: building commands in Python through a client library cost
three quarters of the time of the load this replaced.

A JSON Lines block (or a CSV block whose lines are rows) is first offered to the columnar
fast path (``dmp.ingest_columns`` or ``dmp.ingest_csv_columns``, ``dmp.ingest_tags``,
``dmp.ingest_commands``), which does the same per device with arrays at a fraction of the
cost; the lines it leaves go the per-line way. In merge mode its devices are written as new
too, and the loader (``dmp.ingest_merge``) rebuilds those it finds stored from their
entries (``FastItems``).
"""

from __future__ import annotations

import io
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dmp.ingest_columns import ColumnReader, Columns
from dmp.ingest_commands import MAX_BLOB, BulkCommands, bulk_commands
from dmp.ingest_csv_columns import CsvColumnReader, Header, Layout
from dmp.ingest_format import (
    Chunk,
    DeviceLine,
    Rejected,
    SnapshotFields,
    TagTable,
    csv_rows,
    json_chunks,
)
from dmp.ingest_tags import Ints
from dmp.profile import Snapshot, snapshot_bytes
from dmp.profile_tags import TagEncoder
from dmp.taxonomy import Taxonomy
from infra import keys

# (tag id, expiry day, score) as the tag encoder takes them.
Entry = tuple[int, int, int | None]
# What the loader needs of a device to merge it with a stored profile.
Item = tuple[tuple[bytes, ...], list[Entry], SnapshotFields]
_NO_FIELDS: SnapshotFields = (None, None, None, None, None, None)


@dataclass(slots=True)
class ChunkResult:
    """One chunk's commands, one ``HSET`` per stored field, and what was rejected.

    ``items`` and ``spans`` (each device's byte range in ``commands``) are kept in merge mode
    only, where the loader replaces the commands of devices that turn out to be stored.
    """

    lines: int
    rejected: list[Rejected]
    devices: int
    commands: bytes
    replies: int
    items: list[Item]
    spans: list[tuple[int, int, int]]  # (start, end, replies) per item
    # Merge mode: the devices of the columnar fast path, after ``items`` (their commands
    # after those of ``items``), their items made only for the few found stored.
    fast: FastItems | None = None

    def primaries(self) -> list[bytes]:
        """The primary digest of every device, ``items`` then ``fast``."""
        found = [digests[0] for digests, _, _ in self.items]
        return found + (self.fast.primaries() if self.fast is not None else [])

    def item(self, index: int) -> Item:
        """Device ``index`` in ``primaries`` order."""
        if index < len(self.items):
            return self.items[index]
        assert self.fast is not None
        return self.fast[index - len(self.items)]

    def all_spans(self) -> list[tuple[int, int, int]]:
        """(start, end, replies) of every device's commands, in ``primaries`` order."""
        return self.spans + (self.fast.spans() if self.fast is not None else [])


class FastItems:
    """Merge mode's view of a block's fast-path devices: their digests, and their tag
    entries and snapshot fields as compact arrays (cheap to send from a worker), turned
    into an ``Item`` only for a device the loader finds stored."""

    def __init__(self, columns: Columns, starts: Ints, ends: Ints, replies: Ints) -> None:
        entries = columns.entries
        self._digests = columns.digests
        self._offsets = np.searchsorted(entries.rows, np.arange(len(columns.digests) + 1)).astype(
            np.int32
        )
        self._ids = entries.tag_ids.astype(np.int32)
        self._days = entries.days.astype(np.int32)
        self._scores = entries.scores.astype(np.int16)
        self._snapshots = columns.snapshots
        self._snapshot_of = np.asarray(columns.snapshot_of, dtype=np.int32)
        self._starts, self._ends = starts.astype(np.int64), ends.astype(np.int64)
        self._replies = replies.astype(np.int32)

    def __len__(self) -> int:
        return len(self._digests)

    def primaries(self) -> list[bytes]:
        return [digests[0] for digests in self._digests]

    def __getitem__(self, index: int) -> Item:
        lo, hi = int(self._offsets[index]), int(self._offsets[index + 1])
        scores = [None if score < 0 else score for score in self._scores[lo:hi].tolist()]
        entries: list[Entry] = list(
            zip(self._ids[lo:hi].tolist(), self._days[lo:hi].tolist(), scores, strict=True)
        )
        fields = self._snapshots[int(self._snapshot_of[index])]
        return self._digests[index], entries, fields

    def spans(self) -> list[tuple[int, int, int]]:
        return list(
            zip(self._starts.tolist(), self._ends.tolist(), self._replies.tolist(), strict=True)
        )


@dataclass(frozen=True, slots=True)
class Settings:
    taxonomy: Taxonomy
    today: int
    replace: bool
    every_spelling: bool


def overlay(base: SnapshotFields, given: SnapshotFields) -> SnapshotFields:
    """``given`` over ``base``: a field a line leaves out (None) keeps its earlier value."""
    if given == _NO_FIELDS:
        return base
    os_, model, price_tier, country, region, city = given
    return (
        base[0] if os_ is None else os_,
        base[1] if model is None else model,
        base[2] if price_tier is None else price_tier,
        base[3] if country is None else country,
        base[4] if region is None else region,
        base[5] if city is None else city,
    )


def snapshot_of(fields: SnapshotFields) -> Snapshot:
    os_, model, price_tier, country, region, city = fields
    return Snapshot(
        os_ or "", model or "", price_tier or 0, country or "", region or "", city or ""
    )


def fold(lines: Sequence[DeviceLine], replace: bool) -> dict[bytes, Item]:
    """One item per primary digest, its lines applied in file order."""
    devices: dict[bytes, Item] = {}
    for digests, entries, fields in lines:
        key = digests[0]
        found = devices.get(key)
        mine = [(e.tag_id, e.expires_day, e.score) for e in entries]
        if found is None:
            devices[key] = (digests, mine, fields)
            continue
        every = tuple(dict.fromkeys(found[0] + digests))
        if replace:
            devices[key] = (every, mine, fields)
        else:
            devices[key] = (every, found[1] + mine, overlay(found[2], fields))
    return devices


# HSET bucket field value, as ``resp.command`` spells it: one format instead of a join.
_HSET = b"*4\r\n$4\r\nHSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"


def hset(bucket: bytes, name: bytes, value: bytes) -> bytes:
    return _HSET % (len(bucket), bucket, len(name), name, len(value), value)


def device_commands(
    digests: Sequence[bytes], blob: bytes, buckets: dict[bytes, bytes] | None = None
) -> tuple[bytes, int]:
    """The ``HSET`` commands storing ``blob`` under ``digests[0]`` and its aliases.

    ``buckets``: a cache of bucket names by digest head, for callers that make many.
    """
    primary = digests[0]
    cache = {} if buckets is None else buckets
    parts = [hset(_bucket(primary, cache), keys.profile_field(primary), blob)]
    for alias in digests[1:]:
        if alias != primary:
            parts.append(hset(_bucket(alias, cache), keys.alias_field(alias), primary))
    return b"".join(parts), len(parts)


def _bucket(digest: bytes, cache: dict[bytes, bytes]) -> bytes:
    # The bucket depends on the first two bytes only (keys.PROFILE_BUCKET_BITS <= 16).
    head = digest[:2]
    name = cache.get(head)
    if name is None:
        name = cache[head] = keys.profile_bucket(digest)
    return name


Intern = Callable[[list[bytes]], list[bytes]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A block of JSON Lines parsed, before snapshot references are known.

    ``columns``: the devices the columnar fast path encoded (replace mode), if it took the
    block; ``chunk`` and ``devices``: the lines the per-line parser read, and their devices.
    """

    lines: int
    chunk: Chunk
    devices: dict[bytes, Item]
    columns: Columns | None

    def snapshots(self) -> Iterable[SnapshotFields]:
        yield from (fields for _, _, fields in self.devices.values())
        if self.columns is not None:
            yield from self.columns.snapshots


_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)


class ChunkParser:
    """Per process: the tag table, tag encoder and snapshot references of one load."""

    def __init__(self, settings: Settings) -> None:
        self._table = TagTable(
            settings.taxonomy, settings.today, every_spelling=settings.every_spelling
        )
        self._replace = settings.replace
        self._encoder = TagEncoder()
        self._refs: dict[SnapshotFields, bytes] = {}
        self._columns = ColumnReader(self._table)
        self._csv = CsvColumnReader(self._table)
        self._buckets: dict[bytes, bytes] = {}
        self._bulk: BulkCommands | None = None  # on first use (the loader makes it before forking)

    @property
    def table(self) -> TagTable:
        return self._table

    @property
    def replace(self) -> bool:
        return self._replace

    def missing(self, devices: dict[bytes, Item]) -> list[tuple[SnapshotFields, bytes]]:
        """Snapshots of ``devices`` without a known reference, with their bytes."""
        return self.missing_of(fields for _, _, fields in devices.values())

    def missing_of(self, snapshots: Iterable[SnapshotFields]) -> list[tuple[SnapshotFields, bytes]]:
        refs = self._refs
        new = {fields for fields in snapshots if fields not in refs}
        return [(fields, snapshot_bytes(snapshot_of(fields))) for fields in new]

    def learn(self, missing: list[tuple[SnapshotFields, bytes]], refs: list[bytes]) -> None:
        for (fields, snapshot), ref in zip(missing, refs, strict=True):
            # A full dictionary ('') leaves the snapshot inline, as a version-2 blob.
            self._refs[fields] = ref or b"\x02" + snapshot

    def build(self, chunk: Chunk, lines: int, devices: dict[bytes, Item]) -> ChunkResult:
        """Commands for ``devices`` (``missing`` snapshots learnt first)."""
        parts: list[bytes] = []
        spans: list[tuple[int, int, int]] = []
        replies = size = 0
        refs, encode = self._refs, self._encoder.encode
        for digests, entries, fields in devices.values():
            commands, count = device_commands(
                digests, refs[fields] + encode(entries), self._buckets
            )
            parts.append(commands)
            if not self._replace:
                spans.append((size, size + len(commands), count))
                size += len(commands)
            replies += count
        items = [] if self._replace else list(devices.values())
        commands = b"".join(parts)
        return ChunkResult(lines, chunk.rejected, len(chunk.lines), commands, replies, items, spans)

    def parse(self, chunk: Chunk, lines: int, intern: Intern) -> ChunkResult:
        devices = fold(chunk.lines, self._replace)
        missing = self.missing(devices)
        if missing:
            self.learn(missing, intern([snapshot for _, snapshot in missing]))
        return self.build(chunk, lines, devices)

    def prepare_json(self, text: bytes, first_line: int) -> Prepared:
        """Consecutive JSON Lines numbered from ``first_line``, parsed (``finish`` them once
        the references of ``missing_of(prepared.snapshots())`` are learnt)."""
        columns = self._columns.read(text) if text else None
        if columns is not None:
            prepared = self._with_columns(text, first_line, columns)
            if prepared is not None:
                return prepared
        raw = text.splitlines(keepends=True)
        chunk = next(json_chunks(raw, self._table, len(raw) + 1, first_line), None) or Chunk([], [])
        return Prepared(len(raw), chunk, fold(chunk.lines, self._replace), None)

    def prepare_csv(
        self, text: bytes, first_line: int, header: Header, layout: Layout | None = None
    ) -> Prepared:
        """Consecutive CSV lines numbered from ``first_line``, starting at a row, each a row
        (``dmp.ingest_csv_columns.plain_layout``, whose ``layout`` of ``text`` may be given),
        parsed as ``prepare_json`` does."""
        columns = self._csv.read_csv(text, header, layout) if text else None

        def per_line(raw: list[bytes], number: int) -> Chunk:
            return csv_rows(raw, header, self._table, number)

        if columns is not None:
            prepared = self._with_columns(text, first_line, columns, per_line)
            if prepared is not None:
                return prepared
        raw = split_lines(text)
        chunk = per_line(raw, first_line)
        return Prepared(len(raw), chunk, fold(chunk.lines, self._replace), None)

    def _with_columns(
        self,
        text: bytes,
        first_line: int,
        columns: Columns,
        per_line: Callable[[list[bytes], int], Chunk] | None = None,
    ) -> Prepared | None:
        lines: list[DeviceLine] = []
        rejected: list[Rejected] = []
        raw = (
            (split_lines(text) if per_line else text.splitlines(keepends=True))
            if columns.others
            else []
        )
        for index in columns.others:
            if per_line is not None:
                chunks: Iterable[Chunk] = (per_line(raw[index : index + 1], first_line + index),)
            else:
                chunks = json_chunks(raw[index : index + 1], self._table, 1, first_line + index)
            for chunk in chunks:
                lines += chunk.lines
                rejected += chunk.rejected
        devices = fold(lines, self._replace)
        primaries = {digests[0] for digests in columns.digests}
        if len(primaries) < len(columns.digests) or not primaries.isdisjoint(devices):
            return None  # a device given twice: the per-line path folds it
        count = len(columns.digests) + len(columns.others)
        return Prepared(count, Chunk(lines, rejected), devices, columns)

    def finish(self, prepared: Prepared) -> ChunkResult:
        """The commands of a prepared block (its snapshots' references learnt)."""
        result = self.build(prepared.chunk, prepared.lines, prepared.devices)
        columns = prepared.columns
        if columns is None:
            return result
        if not self._replace:
            return self._finish_merge(result, columns)
        parts: list[bytes] = [result.commands]
        refs = self._refs
        if self._bulk is None:
            self._bulk = bulk_commands()
        every = columns.digests
        heads = [refs[fields] for fields in columns.snapshots]
        if len(columns.sections) != len(columns.snapshot_of):
            raise ValueError("a section and a snapshot for every device")
        # map() over C callables: these run per device, a few hundred thousand a second.
        blobs = list(
            map(operator.add, map(heads.__getitem__, columns.snapshot_of), columns.sections)
        )
        if (
            self._bulk.usable
            and (not blobs or max(map(len, blobs)) <= MAX_BLOB)
            and set(map(len, every)) <= {2}
        ):  # the usual block: every device one ID with its two aliases, all in bulk
            firsts = list(map(_FIRST, every))
            seconds = list(map(_SECOND, every))
            if not any(map(operator.eq, firsts, seconds)):
                parts.append(self._bulk.build(b"".join(firsts), b"".join(seconds), blobs))
                result.replies += 2 * len(blobs)
                result.commands = b"".join(parts)
                result.devices += len(every)
                return result
        return self._finish_mixed(result, columns, parts)

    def _finish_merge(self, result: ChunkResult, columns: Columns) -> ChunkResult:
        """Merge mode: the fast path's devices written as new, each one's commands a span
        the loader can swap for a merged device's (``FastItems``)."""
        heads = [self._refs[fields] for fields in columns.snapshots]
        blobs = list(
            map(operator.add, map(heads.__getitem__, columns.snapshot_of), columns.sections)
        )
        every = columns.digests
        if self._bulk is None:
            self._bulk = bulk_commands()
        firsts = list(map(_FIRST, every)) if set(map(len, every)) <= {2} else []
        if (
            self._bulk.usable
            and len(firsts) == len(every)
            and (not blobs or max(map(len, blobs)) <= MAX_BLOB)
            and not any(map(operator.eq, firsts, map(_SECOND, every)))
        ):
            data, lengths = self._bulk.build_with_lengths(
                b"".join(firsts), b"".join(map(_SECOND, every)), blobs
            )
            replies = np.full(len(every), 2, dtype=np.int64)
        else:
            made = [
                device_commands(digests, blob, self._buckets)
                for digests, blob in zip(every, blobs, strict=True)
            ]
            data = b"".join(commands for commands, _ in made)
            lengths = np.array([len(commands) for commands, _ in made], dtype=np.int64)
            replies = np.array([count for _, count in made], dtype=np.int64)
        ends = len(result.commands) + np.cumsum(lengths)
        result.fast = FastItems(columns, ends - lengths, ends, replies)
        result.commands += data
        result.replies += int(replies.sum())
        result.devices += len(every)
        return result

    def _finish_mixed(
        self, result: ChunkResult, columns: Columns, parts: list[bytes]
    ) -> ChunkResult:
        cache = self._buckets
        heads = [self._refs[fields] for fields in columns.snapshots]
        primaries: list[bytes] = []
        aliases: list[bytes] = []
        blobs: list[bytes] = []
        replies = 0
        for digests, section, index in zip(
            columns.digests, columns.sections, columns.snapshot_of, strict=True
        ):
            blob = heads[index] + section
            if len(digests) == 2 and digests[0] != digests[1] and len(blob) <= MAX_BLOB:
                primaries.append(digests[0])
                aliases.append(digests[1])
                blobs.append(blob)
                continue
            commands, count = device_commands(digests, blob, cache)
            parts.append(commands)
            replies += count
        if self._bulk is None:
            self._bulk = bulk_commands()
        if self._bulk.usable:
            parts.append(self._bulk.build(b"".join(primaries), b"".join(aliases), blobs))
        else:
            for pair in zip(primaries, aliases, blobs, strict=True):
                parts.append(device_commands(pair[:2], pair[2], cache)[0])
        replies += 2 * len(blobs)
        result.replies += replies
        result.commands = b"".join(parts)
        result.devices += len(columns.digests)
        return result

    def parse_csv(
        self,
        text: bytes,
        first_line: int,
        header: Header,
        intern: Intern,
        layout: Layout | None = None,
    ) -> ChunkResult:
        return self._parse(self.prepare_csv(text, first_line, header, layout), intern)

    def parse_json(self, text: bytes, first_line: int, intern: Intern) -> ChunkResult:
        return self._parse(self.prepare_json(text, first_line), intern)

    def _parse(self, prepared: Prepared, intern: Intern) -> ChunkResult:
        missing = self.missing_of(prepared.snapshots())
        if missing:
            self.learn(missing, intern([snapshot for _, snapshot in missing]))
        return self.finish(prepared)


def split_lines(text: bytes) -> list[bytes]:
    """Lines ending at newlines only, as a binary file's lines are (``bytes.splitlines`` also
    ends one at a carriage return)."""
    return list(io.BytesIO(text))
