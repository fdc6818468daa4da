"""Profiles in Redis: written in batches by ingest, read in one round trip by the bidder.

A device is stored once, under its primary digest; each other form of its ID (SHA1, the
hash of another letter case) is an alias field holding a zero byte and the primary digest,
which the lookup script follows on the server so the bidder still pays one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from infra import keys

ALIAS_MARK = b"\x00"

_LOOKUP_LUA = """
for i = 1, #KEYS do
  local value = redis.call('HGET', KEYS[i], ARGV[i])
  if value then
    if string.byte(value, 1) ~= 0 then
      return value
    end
    local primary = string.sub(value, 2)
    local bucket = string.format('dmp:p:{%04x}', string.byte(primary, 1) * 256
      + string.byte(primary, 2))
    local target = redis.call('HGET', bucket, primary)
    if target then
      return target
    end
  end
end
return false
"""


class ProfileStore:
    """Reads and writes profile blobs; the codec lives in ``dmp.profile``."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._lookup: AsyncScript = redis.register_script(_LOOKUP_LUA)

    async def warm_up(self) -> None:
        """Load the lookup script now, so the first bid does not pay for it."""
        await self._redis.script_load(_LOOKUP_LUA)

    async def lookup(self, digests: Sequence[bytes]) -> bytes | None:
        """The blob of the first digest that names a stored device, in one round trip."""
        if not digests:
            return None
        found = await self._lookup(keys=[keys.profile_bucket(d) for d in digests], args=digests)
        return found if isinstance(found, bytes) else None

    async def get_many(self, primaries: Sequence[bytes]) -> list[bytes | None]:
        """Blobs stored under primary digests (aliases are not followed), one pipeline."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest in primaries:
                pipe.hget(keys.profile_bucket(digest), digest)
            found = await pipe.execute()
        return [value if isinstance(value, bytes) else None for value in found]

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
