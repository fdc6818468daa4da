"""Erasing a device on request: its profile, every alias, its scene tags, its frequency
counters and its memberships of ID-list audiences.

Given the raw ID, every alias digest is known and the erasure is a handful of deletes
(``DeviceId.digests`` covers every spelling, more than ingest stores by default).
Given only a hash, the other aliases cannot be derived from it, so the buckets are
scanned for aliases that point at the device: slow (a pass over the DMP) but complete,
and erasure requests are rare.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from dmp.audience_store import forget_device
from dmp.ids import DeviceId, IdForm
from dmp.profile_store import ProfileStore
from infra import keys


@dataclass(frozen=True, slots=True)
class Erased:
    found: bool  # False: the DMP held nothing under this ID
    fields_removed: int
    audiences_left: int = 0  # ID-list audiences the device was taken out of


async def _aliases_by_scan(store: ProfileStore, primary: bytes) -> list[tuple[bytes, bytes]]:
    # Alias fields keep only part of their digest, so they are removed by (bucket, field).
    return [
        (bucket, name)
        async for bucket, content in store.scan_buckets()
        for name, value in content.items()
        if len(name) == keys.ALIAS_FIELD_BYTES and value == primary
    ]


async def erase_device(redis: Redis, device: DeviceId) -> Erased:
    """Remove everything the DMP holds about ``device``."""
    store = ProfileStore(redis)
    primary = await store.primary_of(device.digests())
    if primary is None:
        return Erased(found=False, fields_removed=0)
    removed = await store.delete(list({primary, *device.digests()}))
    if device.form is not IdForm.RAW:
        aliases = await _aliases_by_scan(store, primary)
        async with redis.pipeline(transaction=False) as pipe:
            for bucket, name in aliases:
                pipe.hdel(bucket, name)
            removed += sum(int(n) for n in await pipe.execute())
    await redis.delete(
        keys.scene_tags(primary),
        keys.frequency_counters(primary),
        keys.audience_memberships(primary),
    )
    left = await forget_device(redis, primary)  # also bumps the DMP version for indexes
    return Erased(found=True, fields_removed=removed, audiences_left=left)
