"""Making DMP audiences targetable by the bidder.

An expression audience is published as its expression: bidders compile it into their
targeting like any tag expression, so it follows the data as it changes. Any other audience
(an ID list, a combination, a split) is published as members: each device's membership set
(``keys.audience_memberships``, in its profile's slot) gets the audience id, and the bidder
reads the set in its one lookup. Members are the audience's devices when it is published.
"""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from dmp.audience_store import Audience
from dmp.audiences import Audiences
from infra import keys

_MEMBERS_PER_PIPELINE = 5_000
_MEMBERSHIP_TTL_S = 400 * 86400


async def publish(redis: Redis, audiences: Audiences, audience: Audience) -> int:
    """Publish one audience for bidding; returns the devices written as members (0 for an
    expression audience, which needs none)."""
    if audience.kind == "expression" and audience.expression is not None:
        entry: dict[str, object] = {"expression": audience.expression}
        written = 0
    else:
        index, mask = await audiences.members(audience.owner, audience.id)
        digests = index.digests_of(index.rows(mask))
        written = await _write_members(redis, audience.id, digests)
        entry = {"members": written}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.TARGETABLE_AUDIENCES, audience.id, orjson.dumps(entry))
        pipe.incr(keys.TARGETABLE_VERSION)
        await pipe.execute()
    return written


async def _write_members(redis: Redis, audience_id: str, digests: list[bytes]) -> int:
    for start in range(0, len(digests), _MEMBERS_PER_PIPELINE):
        async with redis.pipeline(transaction=False) as pipe:
            for digest in digests[start : start + _MEMBERS_PER_PIPELINE]:
                key = keys.audience_memberships(digest)
                pipe.sadd(key, audience_id)
                pipe.expire(key, _MEMBERSHIP_TTL_S)
            await pipe.execute()
    return len(digests)


async def unpublish(redis: Redis, audience_id: str) -> None:
    """Stop bidders targeting the audience (memberships expire or go with erasure)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(keys.TARGETABLE_AUDIENCES, audience_id)
        pipe.incr(keys.TARGETABLE_VERSION)
        await pipe.execute()
