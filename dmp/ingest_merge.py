"""Merge mode, loader side: devices of a chunk that are already stored get merged here.

Workers encode every device as if new. Before a chunk is written, the loader reads what is
stored under its devices' digests (one script call, on the same connection as the writes,
so it sees every earlier chunk) and re-encodes only the devices found, keeping the workers'
commands for the rest: a first load pays one read per chunk, a reload the merges.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from dmp import resp
from dmp.ingest_commands import bulk_commands
from dmp.ingest_format import SnapshotFields
from dmp.ingest_tags import Entries, encode_sections
from dmp.ingest_worker import ChunkResult, Entry, Item, device_commands, overlay, snapshot_of
from dmp.profile import ProfileFormatError, decode_live_entries, snapshot_bytes
from dmp.profile_store import ALIAS_MARK, ProfileStore
from dmp.profile_tags import TagEncoder, header_bits
from infra import keys

log = logging.getLogger(__name__)
_ENCODER = TagEncoder()
_ABSENT = [None, None]  # a presence reply when neither field is there

Stored = tuple[bytes, bytes | None]  # (digest the profile lives under, its blob)


class Merger:
    """Reads the stored side of a chunk and rebuilds the commands of devices found."""

    def __init__(self, conn: resp.RespConnection, store: ProfileStore, today: int) -> None:
        self._conn = conn
        self._store = store
        self._today = today

    async def _get(self, digests: Sequence[bytes]) -> list[bytes | None]:
        found = await self._conn.execute(self._store.get_many_command(digests), 1)
        values = found[0]
        assert isinstance(values, list)
        return [v if isinstance(v, bytes) else None for v in values]

    def send_lookup(self, result: ChunkResult) -> list[bytes] | None:
        """Queue the read of the chunk's devices now, behind the previous chunk's writes (a
        server runs one connection's commands in order, so the read sees them), for
        ``commands(result, sent)`` to take its reply once those writes' replies are in: the
        read no longer waits for them to come back before it is even sent. None where reads
        cannot be queued so (a cluster, read slot by slot)."""
        if not isinstance(self._conn, resp.RespConnection):
            return None
        primaries = result.primaries()
        if primaries:
            self._conn.send(_presence_commands(primaries))
        return primaries

    async def _stored(self, primaries: list[bytes]) -> dict[bytes, Stored]:
        """Each primary -> where its profile lives (aliases followed) and the blob, if any."""
        found: dict[bytes, Stored] = {}
        aliases: dict[bytes, bytes] = {}
        for key, value in zip(primaries, await self._get(primaries), strict=True):
            if value is not None and value[:1] == ALIAS_MARK:
                aliases[key] = value[1:]
            elif value is not None:
                found[key] = (key, value)
        if aliases:
            targets = list(dict.fromkeys(aliases.values()))
            blobs = dict(zip(targets, await self._get(targets), strict=True))
            for key, target in aliases.items():
                blob = blobs[target]
                if blob is not None and blob[:1] != ALIAS_MARK:
                    found[key] = (target, blob)
        return found

    async def commands(
        self, result: ChunkResult, sent: list[bytes] | None = None
    ) -> tuple[bytes, int]:
        """The chunk's commands with stored devices merged; and how many replies they get.
        ``sent``: the primaries ``send_lookup`` queued the read of (its reply next)."""
        primaries = result.primaries() if sent is None else sent
        if not primaries:
            return result.commands, result.replies
        if sent is not None:
            # Only the devices with anything under their digest are read in full (the
            # script that follows aliases costs Redis several times a plain HMGET).
            present = await self._conn.replies(len(primaries))
            candidates = [
                key for key, fields in zip(primaries, present, strict=True) if fields != _ABSENT
            ]
            stored = await self._stored(candidates) if candidates else {}
        else:
            stored = await self._stored(primaries)
        if not stored:
            return result.commands, result.replies
        found = [index for index, key in enumerate(primaries) if key in stored]
        merged = self._merge(result, found, stored)
        devices = {index: item for index, item in merged.items() if item is not None}
        encoded = dict(zip(devices, await self._encode(list(devices.values())), strict=True))
        parts: list[bytes] = []
        replies = 0
        for index, (start, end, count) in enumerate(result.all_spans()):
            if index not in merged:
                parts.append(result.commands[start:end])
                replies += count
                continue
            if index in encoded:
                commands, count = encoded[index]
                parts.append(commands)
                replies += count
        return b"".join(parts), replies

    def _merge(
        self, result: ChunkResult, found: list[int], stored: dict[bytes, Stored]
    ) -> dict[int, Item | None]:
        """Device index -> the merged device written in its place (None: folded into
        another). Only devices found stored take part: one not found is written as new, and
        no found device's profile lives under it (an alias points at a stored profile)."""
        merged: dict[int, Item | None] = {}
        first_of: dict[bytes, int] = {}
        for index in found:
            item = result.item(index)
            home, blob = stored[item[0][0]]
            first = first_of.get(home)
            if first is None:
                first_of[home] = index
                merged[index] = self._start(home, blob, item)
                continue
            # Another primary of the same device (one is stored as an alias of the other):
            # applied after the first, in file order.
            every, kept, fields = merged[first] or result.item(first)
            merged[first] = (
                tuple(dict.fromkeys(every + item[0])),
                kept + item[1],
                overlay(fields, item[2]),
            )
            merged[index] = None
        return merged

    def _start(self, home: bytes, blob: bytes | None, item: Item) -> Item:
        digests, entries, fields = item
        if home != digests[0]:
            digests = tuple(dict.fromkeys((home, *digests)))
        if blob is None:
            return digests, entries, fields
        try:
            snapshot, kept = decode_live_entries(blob, self._today)
        except ProfileFormatError as exc:
            log.warning("unreadable stored profile replaced", extra={"reason": str(exc)})
            return digests, entries, fields
        base: SnapshotFields = (
            snapshot.os,
            snapshot.model,
            snapshot.price_tier,
            snapshot.country,
            snapshot.region,
            snapshot.city,
        )
        return digests, kept + entries, overlay(base, fields)

    async def _encode(self, devices: list[Item]) -> list[tuple[bytes, int]]:
        """The commands of merged devices, and how many replies each gets; their tag
        sections encoded in one batch (``dmp.ingest_tags``), a reload merging every device."""
        snapshots = [snapshot_bytes(snapshot_of(fields)) for _, _, fields in devices]
        refs = await self._store.refs(snapshots)
        sections = _sections([entries for _, entries, _ in devices])
        return [
            device_commands(digests, (ref or b"\x02" + snapshot) + section)
            for (digests, _, _), ref, snapshot, section in zip(
                devices, refs, snapshots, sections, strict=True
            )
        ]


def _sections(devices: list[list[Entry]]) -> list[bytes]:
    """Each device's tag section, as ``TagEncoder`` writes it; by the batch encoder when the
    batch allows (tag ids and expiry days within its bounds), else one by one."""
    flat = [entry for entries in devices for entry in entries]
    rows = np.repeat(np.arange(len(devices), dtype=np.int64), [len(e) for e in devices])
    batch = Entries(
        rows,
        np.array([entry[0] for entry in flat], dtype=np.int64),
        np.array([entry[1] for entry in flat], dtype=np.int64),
        np.array([-1 if entry[2] is None else entry[2] for entry in flat], dtype=np.int64),
    )
    found = encode_sections(batch, len(devices), header_bits)
    if found is not None:
        return found
    return [_ENCODER.encode(entries) for entries in devices]


def _presence_commands(primaries: list[bytes]) -> bytes:
    """``HMGET bucket profile-field alias-field`` of each primary: what, if anything, is
    stored under it (one reply each, two values); assembled by ``BulkCommands``."""
    bulk = bulk_commands()
    if bulk.usable:
        return bulk.presence(b"".join(primaries))
    return b"".join(
        resp.command(b"HMGET", keys.profile_bucket(d), keys.profile_field(d), keys.alias_field(d))
        for d in primaries
    )
