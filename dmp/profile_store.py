"""Profiles in Redis: written in batches by ingest, read in one round trip by the bidder.

Layout, chosen for bytes per device (see ``infra.keys``): a device's profile is a field of
its bucket hash named by the digest bytes the bucket number leaves out (7 bytes), holding
the blob with its snapshot as a reference (``dmp.profile_refs``). Each other form of its ID
(the SHA1 of its text, by default) is an alias: a 4-byte field in the alias digest's bucket
holding the 8-byte primary digest. Profile and alias fields differ in length, so one digest
may be both; a profile stored under a digest wins over an alias of it.

Scripts follow aliases and put snapshots back on the server, so the bidder pays one round
trip and every reader sees self-contained blobs. ``get_many`` still reports an alias as
``ALIAS_MARK`` + primary digest, as the layout before this one stored it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from dmp import profile_lookup, profile_refs, resp
from dmp.profile import ProfileFormatError
from dmp.profile_lookup import Found as Found
from dmp.profile_lookup import found_of
from dmp.profile_refs import EXPAND_LUA, INTERN_LUA
from infra import keys
from infra.redis_client import is_cluster

ALIAS_MARK = b"\x00"

# Lua helpers shared by the scripts: bucket, field and side keys of a digest, as infra.keys.
_DIGEST_LUA = f"""
local function bucket_of(digest)
  local number = string.byte(digest, 1) * 256 + string.byte(digest, 2)
  return string.format('%04x', math.floor(number / {2 ** (16 - keys.PROFILE_BUCKET_BITS)}))
end
local function bucket_key(digest)
  return 'dmp:p:{{' .. bucket_of(digest) .. '}}'
end
local function profile_field(digest)
  return string.sub(digest, {keys.PROFILE_BUCKET_BITS // 8 + 1})
end
local function alias_field(digest)
  return string.sub(digest, -{keys.ALIAS_FIELD_BYTES})
end
{EXPAND_LUA.replace("'dmp:snapshots'", repr(keys.SNAPSHOTS.decode()))}
"""

# Per digest: its profile, else the profile its alias names. Returns the value found (or
# false) and the primary digest, the profile self-contained.
_FIND_LUA = """
local function find(bucket, digest)
  local value = redis.call('HGET', bucket, profile_field(digest))
  if value then
    return expand(value), digest
  end
  local primary = redis.call('HGET', bucket, alias_field(digest))
  if primary then
    value = redis.call('HGET', bucket_key(primary), profile_field(primary))
    if value then
      return expand(value), primary
    end
  end
  return false, digest
end
"""

_LOOKUP_LUA = (
    _DIGEST_LUA
    + _FIND_LUA
    + """
-- The part of a device's side keys after their prefix, made once: per-byte gsub took 4 us.
local function side_of(digest)
  local hex = string.format(string.rep('%02x', #digest), string.byte(digest, 1, -1))
  return ':{' .. bucket_of(digest) .. '}:' .. hex
end
for i = 1, #KEYS do
  local value, primary = find(KEYS[i], ARGV[i])
  if value then
    local side = side_of(primary)
    return {value, redis.call('GET', 'dmp:s' .. side) or '', primary,
            redis.call('HGETALL', 'dsp:f' .. side), redis.call('SMEMBERS', 'dmp:m' .. side)}
  end
end
local side = side_of(ARGV[1])
local scenes = redis.call('GET', 'dmp:s' .. side) or ''
local counters = redis.call('HGETALL', 'dsp:f' .. side)
if scenes ~= '' or #counters > 0 then
  return {'', scenes, ARGV[1], counters, {}}
end
return false
"""
)

# Per digest, without following aliases: the profile, or the alias mark and primary, or false.
_GET_LUA = (
    _DIGEST_LUA
    + """
local found = {}
for i = 1, #KEYS do
  local value = redis.call('HGET', KEYS[i], profile_field(ARGV[i]))
  if value then
    found[i] = expand(value)
  else
    local primary = redis.call('HGET', KEYS[i], alias_field(ARGV[i]))
    found[i] = primary and ('\\0' .. primary) or false
  end
end
return found
"""
)


# Redis Cluster: a script may only touch the keys it declares, all in one slot. One call per
# candidate digest reads its bucket and side keys (one slot: ``{bucket}``) and returns the
# stored value as it is (its snapshot reference expanded in Python, from a copy of the small
# snapshot dictionary) or the primary its alias names, which lives in another slot.
# KEYS: bucket, scene tags, frequency counters, audience memberships; ARGV: profile field,
# alias field. Returns {value or '', primary of the alias or '', scenes, counters, members}.
_CLUSTER_LOOKUP_LUA = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
local primary = ''
if not value then
  value = ''
  primary = redis.call('HGET', KEYS[1], ARGV[2]) or ''
end
return {value, primary, redis.call('GET', KEYS[2]) or '', redis.call('HGETALL', KEYS[3]),
        redis.call('SMEMBERS', KEYS[4])}
"""


class ProfileStore:
    """Reads and writes profile blobs; the codec lives in ``dmp.profile``."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._lookup: AsyncScript = redis.register_script(_LOOKUP_LUA)
        self._get: AsyncScript = redis.register_script(_GET_LUA)
        self._intern: AsyncScript = redis.register_script(INTERN_LUA)
        self._refs: dict[bytes, bytes] = {}  # snapshot bytes -> reference ('' : none left)
        # On a cluster, lookups and reads go slot by slot (``ClusterLookup``).
        self.cluster = ClusterLookup(redis) if is_cluster(redis) else None

    async def warm_up(self) -> None:
        """Load the lookup script now, so the first bid does not pay for it."""
        if self.cluster is not None:
            await self.cluster.warm_up()
            return
        await self._redis.script_load(_LOOKUP_LUA)

    def cluster_lookup(self) -> ClusterLookup:
        """The cluster lookup (a store on a cluster client only)."""
        if self.cluster is None:
            raise RuntimeError("not a cluster client: lookups go through lookup_command")
        return self.cluster

    async def lookup(self, digests: Sequence[bytes]) -> Found | None:
        """Profile and scene tags of the first digest naming a known device, one round trip
        (on a cluster: one per candidate digest, in parallel, and one more for an alias)."""
        if not digests:
            return None
        if self.cluster is not None:
            return found_of(await self.cluster.reply(digests))
        found = await self._lookup(keys=[keys.profile_bucket(d) for d in digests], args=digests)
        return found_of(found)

    async def scan(self, batch: int = 256) -> AsyncIterator[tuple[bytes, bytes]]:
        """Every stored ``(primary digest, profile blob)``, aliases skipped, bucket by bucket."""
        snapshots: dict[bytes, bytes] = {}
        async for bucket, content in self.scan_buckets(batch):
            for name, value in content.items():
                if len(name) == keys.ALIAS_FIELD_BYTES:
                    continue
                blob = profile_refs.expand(value, snapshots)
                if blob is None:  # a reference made since the dictionary was read
                    snapshots = await self._snapshots()
                    blob = profile_refs.expand(value, snapshots) or value
                yield keys.profile_digest(bucket, name), blob

    async def _snapshots(self) -> dict[bytes, bytes]:
        found = await self._redis.hgetall(keys.SNAPSHOTS)
        return {bytes(ref): bytes(snapshot) for ref, snapshot in found.items()}  # type: ignore[arg-type]

    async def scan_buckets(
        self, batch: int = 256
    ) -> AsyncIterator[tuple[bytes, dict[bytes, bytes]]]:
        """``(bucket key, raw fields)`` of every profile bucket, profiles and aliases."""
        pending: list[bytes] = []
        async for bucket in self._redis.scan_iter(match=keys.PROFILE_BUCKET_PATTERN, count=1000):
            pending.append(bucket)
            if len(pending) >= batch:
                for pair in zip(pending, await self._read_buckets(pending), strict=True):
                    yield pair
                pending = []
        for pair in zip(pending, await self._read_buckets(pending), strict=True):
            yield pair

    async def _read_buckets(self, buckets: Sequence[bytes]) -> list[dict[bytes, bytes]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.hgetall(bucket)
            contents: list[dict[bytes, bytes]] = await pipe.execute()
        return contents

    async def get_many(self, primaries: Sequence[bytes]) -> list[bytes | None]:
        """Per digest, its blob, or ``ALIAS_MARK`` + primary for an alias (not followed)."""
        if not primaries:
            return []
        if self.cluster is not None:
            return await self.cluster.get_many(primaries)
        found = await self._get(keys=[keys.profile_bucket(d) for d in primaries], args=primaries)
        return [value if isinstance(value, bytes) else None for value in found]

    async def load_scripts(self) -> None:
        """Load the scripts that raw connections call by SHA (``get_many_command``)."""
        if self.cluster is not None:  # no raw connections to a cluster
            return
        await self._redis.script_load(_GET_LUA)
        await self._redis.script_load(INTERN_LUA)

    def get_many_command(self, digests: Sequence[bytes]) -> bytes:
        """``get_many`` as one raw command, for a ``dmp.resp`` connection; one reply."""
        buckets = [keys.profile_bucket(d) for d in digests]
        count = str(len(digests)).encode()
        return resp.command(b"EVALSHA", self._get.sha.encode(), count, *buckets, *digests)

    async def primary_of(self, digests: Sequence[bytes]) -> bytes | None:
        """The primary digest of the first of ``digests`` the DMP knows (following aliases)."""
        for digest, value in zip(digests, await self.get_many(digests), strict=True):
            if value is not None:
                return value[1:] if value.startswith(ALIAS_MARK) else digest
        return None

    async def resolve(self, digests: Sequence[bytes]) -> dict[bytes, bytes]:
        """Each digest's primary digest: the one its alias names, else the digest itself."""
        found = await self.get_many(digests)
        return {
            digest: value[1:] if value is not None and value.startswith(ALIAS_MARK) else digest
            for digest, value in zip(digests, found, strict=True)
        }

    async def refs(self, snapshots: Sequence[bytes]) -> list[bytes]:
        """The reference of each snapshot (b'' when the dictionary is full), one round trip."""
        missing = [s for s in dict.fromkeys(snapshots) if s not in self._refs]
        if missing:
            made = await self._intern(keys=[keys.SNAPSHOTS, keys.SNAPSHOT_REFS], args=missing)
            self._refs.update(zip(missing, made, strict=True))
        return [self._refs[s] for s in snapshots]

    async def _stored_form(self, blobs: Sequence[bytes]) -> list[bytes]:
        # Self-contained v2 blobs get their snapshot as a reference; anything else is kept.
        split: dict[int, tuple[bytes, bytes]] = {}
        for index, blob in enumerate(blobs):
            try:
                split[index] = profile_refs.split(blob)
            except ProfileFormatError:
                continue
        refs = await self.refs([snapshot for snapshot, _ in split.values()])
        stored = list(blobs)
        for (index, (_, tags)), ref in zip(split.items(), refs, strict=True):
            if ref:
                stored[index] = ref + tags
        return stored

    async def put_many(self, items: Iterable[tuple[Sequence[bytes], bytes]]) -> int:
        """Store ``(digests, blob)`` pairs: the blob under ``digests[0]``, aliases for the rest."""
        pairs = list(items)
        stored = await self._stored_form([blob for _, blob in pairs])
        async with self._redis.pipeline(transaction=False) as pipe:
            for (digests, _), blob in zip(pairs, stored, strict=True):
                primary = digests[0]
                pipe.hset(keys.profile_bucket(primary), keys.profile_field(primary), blob)
                for alias in digests[1:]:
                    if alias != primary:
                        pipe.hset(keys.profile_bucket(alias), keys.alias_field(alias), primary)
            await pipe.execute()
        return len(pairs)

    async def delete(self, digests: Sequence[bytes]) -> int:
        """Remove profiles and aliases stored under ``digests``; returns the fields removed."""
        if not digests:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.hdel(
                    keys.profile_bucket(digest),
                    keys.profile_field(digest),
                    keys.alias_field(digest),
                )
            removed = await pipe.execute()
        return sum(int(n) for n in removed)


class ClusterLookup:
    """The bid lookup on a Redis Cluster, where one script call reaches one slot only.

    Every candidate digest of a request (the IFA, hashed IDs) has its own bucket, so its
    own slot: one script call each, sent together (``asyncio.gather``: redis-py sends each
    to its slot's node, so the calls overlap and the wait is one round trip). A digest that
    is an alias (SHA1 forms, by default) names a primary in another slot: a second round
    trip reads it (``alias_hops`` counts them). Snapshot references are expanded here from
    a copy of the snapshot dictionary, read again when a reference is not in it (references
    never change, so a copy is never wrong, only short).
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script: AsyncScript = redis.register_script(_CLUSTER_LOOKUP_LUA)
        self._snapshots: dict[bytes, bytes] = {}
        self.alias_hops = 0  # lookups that needed a second round trip to follow an alias

    async def warm_up(self) -> None:
        await self._redis.script_load(_CLUSTER_LOOKUP_LUA)
        await self.refresh_snapshots()

    async def refresh_snapshots(self) -> None:
        found = await self._redis.hgetall(keys.SNAPSHOTS)
        self._snapshots = {bytes(r): bytes(s) for r, s in found.items()}  # type: ignore[arg-type]

    @staticmethod
    def _keys(digest: bytes) -> list[bytes]:
        return [
            keys.profile_bucket(digest),
            keys.scene_tags(digest),
            keys.frequency_counters(digest),
            keys.audience_memberships(digest),
        ]

    async def _one(self, digest: bytes) -> list[object]:
        reply = await self._script(
            keys=self._keys(digest), args=[keys.profile_field(digest), keys.alias_field(digest)]
        )
        assert isinstance(reply, list)
        return reply

    async def _expand(self, value: bytes) -> bytes:
        blob = profile_refs.expand(value, self._snapshots)
        if blob is None:  # a snapshot interned since the copy was read
            await self.refresh_snapshots()
            blob = profile_refs.expand(value, self._snapshots)
        return value if blob is None else blob

    async def reply(self, digests: Sequence[bytes]) -> list[object] | None:
        """What the single-server lookup script replies for ``digests`` (``found_of``)."""
        if len(digests) == 1:
            replies = [await self._one(digests[0])]
        else:
            replies = list(await asyncio.gather(*(self._one(d) for d in digests)))
        for digest, (value, primary, scenes, counters, members) in zip(
            digests, replies, strict=True
        ):
            if value:
                assert isinstance(value, bytes)
                return [await self._expand(value), scenes, digest, counters, members]
            if primary:
                assert isinstance(primary, bytes)
                self.alias_hops += 1
                value, _, scenes, counters, members = await self._one(primary)
                if value:
                    assert isinstance(value, bytes)
                    return [await self._expand(value), scenes, primary, counters, members]
        _, _, scenes, counters, _ = replies[0]
        if scenes or counters:
            return [b"", scenes, digests[0], counters, []]
        return None

    async def get_many(self, digests: Sequence[bytes]) -> list[bytes | None]:
        """``ProfileStore.get_many`` slot by slot: per digest, its blob, or the alias mark
        and primary, or None."""
        replies: list[list[object]] = []
        for at in range(0, len(digests), 1000):  # a cluster pipeline: one trip per node
            async with self._redis.pipeline(transaction=False) as pipe:
                for digest in digests[at : at + 1000]:
                    pipe.execute_command(
                        "EVAL", _CLUSTER_LOOKUP_LUA, 4, *self._keys(digest),
                        keys.profile_field(digest), keys.alias_field(digest),
                    )  # fmt: skip
                replies += await pipe.execute()
        found: list[bytes | None] = []
        for value, primary, *_ in replies:
            if value:
                assert isinstance(value, bytes)
                found.append(await self._expand(value))
            elif primary:
                assert isinstance(primary, bytes)
                found.append(ALIAS_MARK + primary)
            else:
                found.append(None)
        return found


LOOKUP_SHA = hashlib.sha1(_LOOKUP_LUA.encode()).hexdigest().encode()
LOAD_LOOKUP = resp.command(b"SCRIPT", b"LOAD", _LOOKUP_LUA.encode())


def lookup_command(digests: Sequence[bytes]) -> bytes:
    """``ProfileStore.lookup`` as raw RESP (an ``EVALSHA``), for a pipelined connection that
    sent ``LOAD_LOOKUP`` first; its reply goes to ``found_of``."""
    return profile_lookup.lookup_command(LOOKUP_SHA, digests)
