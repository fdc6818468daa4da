"""Turning a chunk of ingest lines into Redis commands: the CPU-heavy half of a load.

Runs in worker processes (one chunk at a time, so a file is parsed on every core while Redis
works) or in the loading process itself for small inputs. A chunk's lines are validated
(``dmp.ingest_format``), folded per device in file order, encoded as stored profiles (a
snapshot reference and a tag section) and written out as raw RESP ``HSET`` commands, which
the loader sends as they are: building commands in Python through a client library cost
three quarters of the time of the load this replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dmp import resp
from dmp.ingest_format import Chunk, DeviceLine, Rejected, SnapshotFields, TagTable, json_chunks
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


def hset(bucket: bytes, name: bytes, value: bytes) -> bytes:
    return resp.command(b"HSET", bucket, name, value)


def device_commands(digests: Sequence[bytes], blob: bytes) -> tuple[bytes, int]:
    """The ``HSET`` commands storing ``blob`` under ``digests[0]`` and its aliases."""
    primary = digests[0]
    parts = [hset(keys.profile_bucket(primary), keys.profile_field(primary), blob)]
    for alias in digests[1:]:
        if alias != primary:
            parts.append(hset(keys.profile_bucket(alias), keys.alias_field(alias), primary))
    return b"".join(parts), len(parts)


Intern = Callable[[list[bytes]], list[bytes]]


class ChunkParser:
    """Per process: the tag table, tag encoder and snapshot references of one load."""

    def __init__(self, settings: Settings) -> None:
        self._table = TagTable(
            settings.taxonomy, settings.today, every_spelling=settings.every_spelling
        )
        self._replace = settings.replace
        self._encoder = TagEncoder()
        self._refs: dict[SnapshotFields, bytes] = {}

    @property
    def table(self) -> TagTable:
        return self._table

    @property
    def replace(self) -> bool:
        return self._replace

    def missing(self, devices: dict[bytes, Item]) -> list[tuple[SnapshotFields, bytes]]:
        """Snapshots of ``devices`` without a known reference, with their bytes."""
        new = {fields for _, _, fields in devices.values() if fields not in self._refs}
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
            commands, count = device_commands(digests, refs[fields] + encode(entries))
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

    def parse_json(self, text: bytes, first_line: int, intern: Intern) -> ChunkResult:
        raw = text.splitlines(keepends=True)
        chunk = next(json_chunks(raw, self._table, len(raw) + 1, first_line), None)
        return self.parse(chunk or Chunk([], []), len(raw), intern)
