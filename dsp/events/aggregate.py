"""The aggregator: counts and spend per campaign x creative x hour x tag, exactly once.

It reads the event stream in a consumer group (XREADGROUP), adds each batch up in columns
(bid-buffer entries are Arrow already, notices' JSON Lines are parsed by pyarrow, and the
grouping runs in C++), and applies the sums with one Lua script
that first takes the batch's entries over (XCLAIM ... JUSTID: only entries still pending
come back) and, only if every one of them was still pending, acknowledges them (XACK) and
adds the counts, in one atomic step. So a batch is counted together with its XACK or not at
all: killed at any point (``kill -9``), the aggregator, or any other consumer of the group,
finds the batch still pending and counts it once; an entry another consumer has already
counted is no longer pending, and the batch is added up again without it.

Entries pending on a consumer that died are taken over with XAUTOCLAIM once idle for
``claim_idle_s``. Counts live in one hash per campaign and hour (``keys.event_counts``),
fields ``<creative>|<tag>|<metric>``: tag ``*`` counts every event once, each matched tag
counts the event again under its id, ``-`` counts events that matched no tag.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.json as pj  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from dsp.events.schema import (
    ALL_TAGS,
    BATCH_FIELD,
    ENTRY_FIELD,
    METRIC_OF,
    NO_TAG,
    SPENDING,
    VALUED,
    decode,
    decode_table,
)
from infra import keys

log = logging.getLogger(__name__)

_SCHEMA = pa.schema(
    [
        ("type", pa.string()),
        ("ts", pa.int64()),
        ("campaign", pa.string()),
        ("creative", pa.string()),
        ("tags", pa.list_(pa.int64())),
        ("price", pa.int64()),
    ]
)
_PARSE = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
_READ = pj.ReadOptions(block_size=16 << 20)
_HOUR_MS = 3_600_000

# KEYS: 1 stream, 2 set of counted campaigns, then per campaign and hour of the batch: its
#       counts hash and the campaign's set of hours
# ARGV: 1 group, 2 consumer, 3 JSON array of the entry ids, 4 JSON array of [campaign, hour]
#       in KEYS order, 5 JSON array of triples: group index (from 0), field, increment
# Returns {1} when applied, else {0, ids still pending...}: the caller drops the others.
# JSON keeps a batch's tens of thousands of values one argument each way (packing them one
# by one costs the client more than Redis spends counting). Ids go to XCLAIM and XACK a
# thousand at a time (Lua's unpack has a limit).
_APPLY_LUA = """
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local all = cjson.decode(ARGV[3])
local n = #all
local function ids(from, to, extra)
  local t = {}
  for i = from, to do t[#t + 1] = all[i] end
  if extra then t[#t + 1] = extra end
  return t
end
local pending = {0}
for from = 1, n, 1000 do
  local got = redis.call('XCLAIM', stream, group, consumer, 0,
                         unpack(ids(from, math.min(n, from + 999), 'JUSTID')))
  for i = 1, #got do pending[#pending + 1] = got[i] end
end
if #pending - 1 ~= n then
  return pending
end
for from = 1, n, 1000 do
  redis.call('XACK', stream, group, unpack(ids(from, math.min(n, from + 999))))
end
local groups = cjson.decode(ARGV[4])
for g = 1, #groups do
  redis.call('SADD', KEYS[2], groups[g][1])
  redis.call('SADD', KEYS[2 + 2 * g], groups[g][2])
end
local adds = cjson.decode(ARGV[5])
for j = 1, #adds, 3 do
  redis.call('HINCRBY', KEYS[3 + 2 * adds[j]], adds[j + 1], string.format('%.0f', adds[j + 2]))
end
return {1}
"""

Entry = tuple[bytes, dict[bytes, bytes] | None]  # stream id, fields (None: trimmed)
Counts = dict[tuple[str, str], dict[str, int]]  # (campaign, hour) -> field -> increment


def _table(entries: Sequence[dict[bytes, bytes]]) -> pa.Table:
    payloads = [e[ENTRY_FIELD] for e in entries if ENTRY_FIELD in e]
    tables = [
        decode_table(e[BATCH_FIELD]).select(_SCHEMA.names) for e in entries if BATCH_FIELD in e
    ]
    if payloads:
        tables.append(_json_table(payloads))
    if not tables:
        return _SCHEMA.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _json_table(payloads: Sequence[bytes]) -> pa.Table:
    data = b"\n".join(payloads)
    try:
        return pj.read_json(io.BytesIO(data), read_options=_READ, parse_options=_PARSE)
    except pa.ArrowInvalid:
        # A malformed line must not block the stream: parse line by line, skip what fails.
        rows = []
        for line in data.split(b"\n"):
            try:
                rows += decode(line)
            except ValueError:
                shown = line[:200].decode(errors="replace")
                log.error("malformed event skipped", extra={"line": shown})
        names = _SCHEMA.names
        clean = [{name: row.get(name) for name in names} for row in rows if isinstance(row, dict)]
        return pa.Table.from_pylist(clean, schema=_SCHEMA)


_TYPES = list(METRIC_OF)
_TYPE_ARRAY = pa.array(_TYPES)
_SPENDS = np.array([kind in SPENDING for kind in _TYPES])
_VALUES = np.array([kind in VALUED for kind in _TYPES])  # issue 12


@dataclass(slots=True)
class Increments:
    """What one batch adds: ``values[i]`` to field ``fields[i]`` of ``groups[group[i]]``."""

    groups: list[tuple[str, str]]  # (campaign, hour)
    group: list[int]
    fields: list[str]
    values: list[int]
    events: int

    def nested(self) -> Counts:
        counts: Counts = defaultdict(dict)
        for g, name, value in zip(self.group, self.fields, self.values, strict=True):
            fields = counts[self.groups[g]]
            fields[name] = fields.get(name, 0) + value
        return dict(counts)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes of a string column (-1 for null) and the dictionary."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _sums(keys: np.ndarray, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct keys, how often each occurs and the sum of its prices (a hash aggregation)."""
    grouped = (
        pa.table({"k": keys, "p": prices})
        .group_by("k")
        .aggregate([("p", "sum"), ([], "count_all")])
    )
    return (
        grouped["k"].to_numpy(),
        grouped["count_all"].to_numpy(),
        grouped["p_sum"].to_numpy(),
    )


def _small_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` without a sort when the values (tag ids,
    -1 for none) lie in a small range, as tag ids do."""
    if len(values) == 0 or values.min() < -1 or values.max() >= 1 << 20:
        return np.unique(values, return_inverse=True)
    shifted = values + 1
    present = np.flatnonzero(np.bincount(shifted))
    code = np.zeros(int(present[-1]) + 1, np.int64)
    code[present] = np.arange(len(present))
    return present - 1, code[shifted]


def _hour_name(hour: int) -> str:
    return time.strftime("%Y%m%d%H", time.gmtime(int(hour) * 3600))


def count_events(entries: Sequence[dict[bytes, bytes]]) -> Increments:
    """The increments of a batch of stream entries, and how many events they hold.

    Every (campaign, creative, hour, type) and (..., tag, type) is packed into one integer
    key, so the grouping is a sort of integers (numpy) rather than of strings."""
    table = _table(entries)
    if table.num_rows == 0:
        return Increments([], [], [], [], 0)
    kind = pc.fill_null(pc.index_in(table["type"], value_set=_TYPE_ARRAY), -1)
    kind_code = kind.to_numpy(zero_copy_only=False).astype(np.int64)
    campaign_code, campaigns = _codes(table["campaign"])
    creative_code, creatives = _codes(pc.fill_null(table["creative"], ""))
    hours = pc.fill_null(table["ts"], 0).to_numpy(zero_copy_only=False) // _HOUR_MS
    prices = pc.fill_null(table["price"], 0).to_numpy(zero_copy_only=False).astype(np.int64)
    keep = (kind_code >= 0) & (campaign_code >= 0)
    first_hour = int(hours[keep].min()) if keep.any() else 0
    hour_code = np.where(keep, hours - first_hour, 0)
    n_types, n_creatives = len(_TYPES), max(1, len(creatives))
    n_hours = int(hour_code.max()) + 1
    cell = (campaign_code * n_creatives + creative_code) * n_hours + hour_code
    key = cell * n_types + kind_code  # campaign, creative, hour, type
    tags = pc.fill_null(table["tags"], pa.scalar([], pa.list_(pa.int64()))).combine_chunks()
    lengths = pc.list_value_length(tags).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(tags).to_numpy(zero_copy_only=False).astype(np.int64)
    untagged = np.flatnonzero(lengths == 0)
    rows = np.concatenate([np.repeat(np.arange(len(lengths)), lengths), untagged])
    tag_values = np.concatenate([flat, np.full(len(untagged), -1, np.int64)])
    tag_list, tag_code = _small_unique(tag_values)
    tag_names = [ALL_TAGS] + [NO_TAG if t < 0 else str(t) for t in tag_list.tolist()]
    n_tags = len(tag_names)
    # tag code 0 is "*" (every event once); 1.. the tags and "-"
    all_keys = np.concatenate([key[keep] * n_tags, key[rows][keep[rows]] * n_tags
                               + 1 + tag_code[keep[rows]]])  # fmt: skip
    all_prices = np.concatenate([prices[keep], prices[rows][keep[rows]]])
    unique, counts, spend = _sums(all_keys, all_prices)
    tag_of, rest = unique % n_tags, unique // n_tags
    kind_of, rest = rest % n_types, rest // n_types
    hour_of, rest = rest % n_hours, rest // n_hours
    creative_of, campaign_of = rest % n_creatives, rest // n_creatives
    group_key = campaign_of * n_hours + hour_of
    group_list, group_index = np.unique(group_key, return_inverse=True)
    groups = [
        (
            campaigns[g // n_hours],
            time.strftime("%Y%m%d%H", time.gmtime((first_hour + g % n_hours) * 3600)),
        )
        for g in group_list.tolist()
    ]
    prefix = [f"{c}|{t}|" for c in creatives or [""] for t in tag_names]
    metric = [METRIC_OF[k] for k in _TYPES]
    names = np.array([p + m for p in prefix for m in metric], dtype=object)
    field_of = (creative_of * n_tags + tag_of) * n_types + kind_of
    spent = _SPENDS[kind_of] & (spend != 0)
    spend_names = np.array([p + "spend" for p in prefix], dtype=object)
    valued = _VALUES[kind_of] & (spend != 0)  # issue 12: conversions' value
    value_names = np.array([p + "conversion_value" for p in prefix], dtype=object)
    cells = creative_of * n_tags + tag_of
    return Increments(
        groups,
        group_index.tolist() + group_index[spent].tolist() + group_index[valued].tolist(),
        names[field_of].tolist()
        + spend_names[cells[spent]].tolist()
        + value_names[cells[valued]].tolist(),
        counts.tolist() + spend[spent].tolist() + spend[valued].tolist(),
        int(keep.sum()),
    )


@dataclass(slots=True)
class Progress:
    entries: int = 0
    events: int = 0
    batches: int = 0
    skipped: int = 0  # entries already counted by another consumer
    lost: int = 0  # entries trimmed from the stream before they were counted
    seconds: float = 0.0
    per_batch: list[int] = field(default_factory=list)


def _id_text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Aggregator:
    def __init__(
        self,
        redis: Redis,
        *,
        consumer: str | None = None,
        stream: bytes = keys.EVENTS,
        group: str = keys.EVENTS_GROUP_AGGREGATOR,
        claim_idle_s: float = 30.0,
        target_events: int = 200_000,
        max_entries: int = 20_000,
    ) -> None:
        self._redis = redis
        self.consumer = consumer or default_consumer()
        self._stream = stream
        self._group = group
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self._target = target_events
        self._max_entries = max_entries
        self._events_per_entry = 1.0
        self._own_pending = True  # on start, our own unacknowledged entries come first
        self._claimed_at = -float("inf")
        self._apply: AsyncScript = redis.register_script(_APPLY_LUA)
        self.progress = Progress()

    async def ensure_group(self) -> None:
        await ensure_group(self._redis, self._stream, self._group)

    def _count(self) -> int:
        wanted = int(self._target / max(self._events_per_entry, 1.0))
        return max(1, min(self._max_entries, wanted))

    async def _read(self) -> list[Entry]:
        count = self._count()
        if self._own_pending:
            entries = await self._xreadgroup("0", count)
            if entries:
                return entries
            self._own_pending = False
        now = time.monotonic()
        if now - self._claimed_at >= self._claim_idle_ms / 4000:
            self._claimed_at = now
            entries = await self._claim(count)
            if entries:
                return entries
        entries = await self._xreadgroup(">", count)
        if entries or self._claimed_at == now:
            return entries
        self._claimed_at = now  # nothing new: a good moment to look for a dead consumer's
        return await self._claim(count)

    async def _xreadgroup(self, start: str, count: int) -> list[Entry]:
        reply = await self._redis.xreadgroup(
            self._group, self.consumer, {self._stream: start}, count=count
        )
        return entries_of(reply)

    async def _claim(self, count: int) -> list[Entry]:
        reply = await self._redis.xautoclaim(
            self._stream, self._group, self.consumer, self._claim_idle_ms, "0-0", count=count
        )
        claimed = reply[1] if len(reply) > 1 else []
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            self.progress.lost += len(deleted)
            log.error("pending events trimmed before counted", extra={"entries": len(deleted)})
        return [(entry_id, data or None) for entry_id, data in claimed]

    async def step(self) -> int:
        """Read and count one batch; how many entries it held (0: nothing to read)."""
        entries = await self._read()
        if not entries:
            return 0
        await self.apply(entries)
        return len(entries)

    async def apply(self, entries: Sequence[Entry]) -> None:
        batch = list(entries)
        while batch:
            ids = [_id_text(entry_id) for entry_id, _ in batch]
            payloads = [data for _, data in batch if data]
            lost = len(batch) - len(payloads)
            added = count_events(payloads)
            events = added.events
            counted_keys: list[bytes | str] = [self._stream, keys.event_campaigns()]
            for campaign, hour in added.groups:
                counted_keys += [keys.event_counts(campaign, hour), keys.event_hours(campaign)]
            triples = zip(added.group, added.fields, added.values, strict=True)
            flat = list(chain.from_iterable(triples))
            args: list[bytes | str] = [
                self._group, self.consumer, orjson.dumps(ids), orjson.dumps(added.groups),
                orjson.dumps(flat),
            ]  # fmt: skip
            reply = await self._apply(keys=counted_keys, args=args)
            if int(reply[0]) == 1:
                self.progress.entries += len(batch)
                self.progress.events += events
                self.progress.batches += 1
                self.progress.lost += lost
                if payloads:
                    self._events_per_entry = max(1.0, events / len(payloads))
                return
            still = {_id_text(entry_id) for entry_id in reply[1:]}
            kept = [(entry_id, data) for entry_id, data in batch if _id_text(entry_id) in still]
            if len(kept) == len(batch):  # cannot happen: Redis said some were not pending
                raise RuntimeError("aggregator: pending entries changed under the batch")
            self.progress.skipped += len(batch) - len(kept)
            batch = kept

    async def catch_up(self, on_batch: Callable[[int], object] | None = None) -> Progress:
        """Count everything in the stream now (and idle entries of dead consumers)."""
        await self.ensure_group()
        started = time.perf_counter()
        while True:
            before = self.progress.events
            read = await self.step()
            if not read:
                break
            if on_batch is not None:
                on_batch(self.progress.events - before)
        self.progress.seconds += time.perf_counter() - started
        return self.progress

    async def run(self, idle_s: float = 0.2, stop: asyncio.Event | None = None) -> None:
        """Count as events arrive, until ``stop`` is set (or the task is cancelled)."""
        await self.ensure_group()
        while stop is None or not stop.is_set():
            if not await self.step():
                await asyncio.sleep(idle_s)


def entries_of(reply: object) -> list[Entry]:
    """Entries of an XREADGROUP reply over one stream (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
    else:
        streams = [stream[1] for stream in reply]  # type: ignore[attr-defined]
    found: list[Entry] = []
    for stream_entries in streams:
        for entry_id, data in stream_entries:
            found.append((entry_id, data or None))
    return found


async def ensure_group(redis: Redis, stream: bytes, group: str) -> None:
    """Create the consumer group at the start of the stream (and the stream) if missing."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
