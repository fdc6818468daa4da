"""What bidders read of the DMP's published audiences (see ``dmp.audience_targeting``)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from redis.asyncio import Redis

from infra import keys


async def targetable(redis: Redis) -> tuple[int, dict[str, str | None]]:
    """For bidders: the version, and audience id -> expression (None: target by members)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.TARGETABLE_VERSION)
        pipe.hgetall(keys.TARGETABLE_AUDIENCES)
        version, entries = await pipe.execute()
    return int(version or 0), _read(entries)


def _read(entries: Mapping[bytes, bytes]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for audience_id, raw in entries.items():
        entry = orjson.loads(raw)
        expression = entry.get("expression")
        found[audience_id.decode()] = expression if isinstance(expression, str) else None
    return found
