"""Erasing a device on request: its profile, every alias, its scene tags.

Given the raw ID, every alias digest is known and the erasure is a handful of deletes.
Given only a hash, the other aliases cannot be derived from it, so the buckets are
scanned for aliases that point at the device: slow (a pass over the DMP) but complete,
and erasure requests are rare.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from dmp.ids import DeviceId, IdForm
from dmp.profile_store import ALIAS_MARK, ProfileStore
from infra import keys


@dataclass(frozen=True, slots=True)
class Erased:
    found: bool  # False: the DMP held nothing under this ID
    fields_removed: int


async def _aliases_by_scan(store: ProfileStore, primary: bytes) -> list[bytes]:
    target = ALIAS_MARK + primary
    return [
        field
        async for content in store.scan_buckets()
        for field, value in content.items()
        if value == target
    ]


async def erase_device(redis: Redis, device: DeviceId) -> Erased:
    """Remove everything the DMP holds about ``device``."""
    store = ProfileStore(redis)
    primary = await store.primary_of(device.digests())
    if primary is None:
        return Erased(found=False, fields_removed=0)
    digests = {primary, *device.digests()}
    if device.form is not IdForm.RAW:
        digests.update(await _aliases_by_scan(store, primary))
    async with redis.pipeline(transaction=False) as pipe:
        for digest in digests:
            pipe.hdel(keys.profile_bucket(digest), digest)
        pipe.delete(keys.scene_tags(primary))
        removed = await pipe.execute()
    return Erased(found=True, fields_removed=sum(int(n) for n in removed[:-1]))
