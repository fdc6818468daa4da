"""Profiles in Redis: written in batches by ingest, read in one round trip by the bidder.

A device is stored once, under its primary digest; each other form of its ID (SHA1, the
hash of another letter case) is an alias field holding a zero byte and the primary digest,
which the lookup script follows on the server so the bidder still pays one round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from infra import keys

ALIAS_MARK = b"\x00"

_LOOKUP_LUA = """
local function bucket_of(digest)
  return string.format('%04x', string.byte(digest, 1) * 256 + string.byte(digest, 2))
end
local function hex_of(digest)
  return (digest:gsub('.', function(c) return string.format('%02x', string.byte(c)) end))
end
local function scenes_of(digest)
  return redis.call('GET', 'dmp:s:{' .. bucket_of(digest) .. '}:' .. hex_of(digest)) or ''
end
local function counters_of(digest)
  return redis.call('HGETALL', 'dsp:f:{' .. bucket_of(digest) .. '}:' .. hex_of(digest))
end
for i = 1, #KEYS do
  local value = redis.call('HGET', KEYS[i], ARGV[i])
  if value then
    local primary = ARGV[i]
    if string.byte(value, 1) == 0 then
      primary = string.sub(value, 2)
      value = redis.call('HGET', 'dmp:p:{' .. bucket_of(primary) .. '}', primary)
    end
    if value then
      return {value, scenes_of(primary), primary, counters_of(primary)}
    end
  end
end
local scenes = scenes_of(ARGV[1])
local counters = counters_of(ARGV[1])
if scenes ~= '' or #counters > 0 then
  return {'', scenes, ARGV[1], counters}
end
return false
"""


@dataclass(frozen=True, slots=True)
class Found:
    """What one lookup brings back for a device, all from the same Redis slot."""

    profile: bytes | None  # None: the device has scene tags or counters but no profile
    scenes: bytes | None
    primary: bytes = b""  # the digest the device is stored under (aliases followed)
    # The DSP's frequency counters of the device (``keys.frequency_counters``).
    counters: dict[str, int] = field(default_factory=dict)


class ProfileStore:
    """Reads and writes profile blobs; the codec lives in ``dmp.profile``."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._lookup: AsyncScript = redis.register_script(_LOOKUP_LUA)

    async def warm_up(self) -> None:
        """Load the lookup script now, so the first bid does not pay for it."""
        await self._redis.script_load(_LOOKUP_LUA)

    async def lookup(self, digests: Sequence[bytes]) -> Found | None:
        """Profile and scene tags of the first digest naming a known device, one round trip."""
        if not digests:
            return None
        found = await self._lookup(keys=[keys.profile_bucket(d) for d in digests], args=digests)
        if not isinstance(found, list):
            return None
        profile, scenes, primary, flat = found
        counters = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return Found(profile or None, scenes or None, primary, counters)

    async def scan(self, batch: int = 256) -> AsyncIterator[tuple[bytes, bytes]]:
        """Every stored ``(primary digest, profile blob)``, aliases skipped, bucket by bucket."""
        async for content in self.scan_buckets(batch):
            for digest, blob in content.items():
                if not blob.startswith(ALIAS_MARK):
                    yield digest, blob

    async def scan_buckets(self, batch: int = 256) -> AsyncIterator[dict[bytes, bytes]]:
        """The content of every existing profile bucket (profiles and aliases)."""
        pending: list[bytes] = []
        async for bucket in self._redis.scan_iter(match=keys.PROFILE_BUCKET_PATTERN, count=1000):
            pending.append(bucket)
            if len(pending) >= batch:
                for content in await self._read_buckets(pending):
                    yield content
                pending = []
        for content in await self._read_buckets(pending):
            yield content

    async def _read_buckets(self, buckets: Sequence[bytes]) -> list[dict[bytes, bytes]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.hgetall(bucket)
            contents: list[dict[bytes, bytes]] = await pipe.execute()
        return contents

    async def get_many(self, primaries: Sequence[bytes]) -> list[bytes | None]:
        """Blobs stored under primary digests (aliases are not followed), one pipeline."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest in primaries:
                pipe.hget(keys.profile_bucket(digest), digest)
            found = await pipe.execute()
        return [value if isinstance(value, bytes) else None for value in found]

    async def primary_of(self, digests: Sequence[bytes]) -> bytes | None:
        """The primary digest of the first of ``digests`` the DMP knows (following aliases)."""
        for digest, value in zip(digests, await self.get_many(digests), strict=True):
            if value is not None:
                return value[1:] if value.startswith(ALIAS_MARK) else digest
        return None

    async def put_many(self, items: Iterable[tuple[Sequence[bytes], bytes]]) -> int:
        """Store ``(digests, blob)`` pairs: the blob under ``digests[0]``, aliases for the rest."""
        count = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for digests, blob in items:
                primary = digests[0]
                pipe.hset(keys.profile_bucket(primary), primary, blob)
                for alias in digests[1:]:
                    pipe.hset(keys.profile_bucket(alias), alias, ALIAS_MARK + primary)
                count += 1
            await pipe.execute()
        return count

    async def delete(self, digests: Sequence[bytes]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.hdel(keys.profile_bucket(digest), digest)
            await pipe.execute()
