"""Writing scene tags: events matched against the library, merged into each device's value.

A device's scenes sit beside its profile under its primary digest (``keys.scene_tags``),
where the bidder's lookup script reads them in the same round trip as the profile. An
event naming the device by an alias (another hash of its ID) is first resolved to the
primary through the profile store; a device the DMP does not know keeps its own digest,
which is where the bidder looks for the scenes of an unknown device.

The merge runs in a Lua script, so two events for one device arriving at two writers
cannot overwrite each other's scenes; the key expires with its longest-lived scene. The
merge is idempotent: writing an event twice (a stream redelivery) changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from dmp.profile_store import ProfileStore
from dmp.scene_codec import encode_scenes, merge_scenes
from dmp.scene_events import SceneEvent, parse_event
from dmp.scene_rules import SceneLibrary
from dmp.taxonomy import Taxonomy
from infra import keys
from infra.redis_client import queue_script

log = logging.getLogger(__name__)

# KEYS[1]: a device's scene key. ARGV[1]: the current minute; ARGV[2]: new scenes in the
# layout of dmp.scene_codec (<u16 tag, u8 score, u32 expiry minute>). Keeps the live stored
# scenes, lets a new scene replace a stored one of the same tag unless it expires sooner,
# and expires the key with its last scene. Returns that expiry minute (0: nothing left).
_MERGE_LUA = """
local now = tonumber(ARGV[1])
local order, scenes = {}, {}
local function add(blob)
  for pos = 1, #blob - 6, 7 do
    local tag, score, expiry = struct.unpack('<HBI4', blob, pos)
    local kept = scenes[tag]
    if expiry > now and (kept == nil or expiry >= kept[2]) then
      if kept == nil then order[#order + 1] = tag end
      scenes[tag] = {score, expiry}
    end
  end
end
add(redis.call('GET', KEYS[1]) or '')
add(ARGV[2])
local parts, last = {}, 0
for i, tag in ipairs(order) do
  local scene = scenes[tag]
  parts[i] = struct.pack('<HBI4', tag, scene[1], scene[2])
  if scene[2] > last then last = scene[2] end
end
if last == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], table.concat(parts))
  redis.call('EXPIREAT', KEYS[1], last * 60)
end
return last
"""


class SceneWriter:
    """Turns events into scene tags on their devices; one instance per process."""

    def __init__(self, redis: Redis, library: SceneLibrary, taxonomy: Taxonomy) -> None:
        self._redis = redis
        self.library = library
        # Resolved now, so a library naming a tag the taxonomy lacks fails at start-up.
        self._tag_ids = {code: taxonomy.tag(code).id for code in library.tags()}
        self._profiles = ProfileStore(redis)
        self._merge: AsyncScript = redis.register_script(_MERGE_LUA)

    async def warm_up(self) -> None:
        """Load the merge script now, so the first event does not pay for it."""
        await self._redis.script_load(_MERGE_LUA)

    def scenes(self, event: SceneEvent, now: float) -> dict[str, tuple[int, int, int]]:
        """``{tag code: (tag id, score, expiry minute)}`` the event applies, live at ``now``."""
        found: dict[str, tuple[int, int, int]] = {}
        start, now_minute = event.ts // 60, int(now // 60)
        for rule in self.library.match(event):
            expiry = start + rule.ttl_minutes
            kept = found.get(rule.tag)
            if expiry > now_minute and (kept is None or (expiry, rule.score) > (kept[2], kept[1])):
                found[rule.tag] = (self._tag_ids[rule.tag], rule.score, expiry)
        return found

    async def handle(
        self, event: SceneEvent | Mapping[str, object], *, now: float | None = None
    ) -> list[str]:
        """Apply one event (validated, or a decoded JSON object); the tag codes applied.

        Raises `SceneEventError` for an invalid event.
        """
        now = time.time() if now is None else now
        if not isinstance(event, SceneEvent):
            event = parse_event(event, now)
        return (await self.handle_many([event], now=now))[0]

    async def handle_many(
        self, events: Sequence[SceneEvent], *, now: float | None = None
    ) -> list[list[str]]:
        """Apply a batch of events in a few round trips, whatever its size; tags per event."""
        now = time.time() if now is None else now
        applied = [self.scenes(event, now) for event in events]
        touched = [(e.device.key, s) for e, s in zip(events, applied, strict=True) if s]
        if touched:
            primaries = await self.primaries(list(dict.fromkeys(key for key, _ in touched)))
            per_device: dict[bytes, list[tuple[int, int, int]]] = {}
            for key, scenes in touched:
                per_device.setdefault(primaries[key], []).extend(scenes.values())
            await self._write(per_device, int(now // 60))
        return [list(scenes) for scenes in applied]

    async def primaries(self, digests: Sequence[bytes]) -> dict[bytes, bytes]:
        """Each digest's primary digest: the one its alias names, else the digest itself."""
        return await self._profiles.resolve(digests)

    async def _write(
        self, per_device: Mapping[bytes, Sequence[tuple[int, int, int]]], now_minute: int
    ) -> None:
        calls: list[tuple[list[bytes], list[int | bytes]]] = [
            (
                [keys.scene_tags(primary)],
                [now_minute, encode_scenes(merge_scenes({}, new, now_minute))],
            )
            for primary, new in per_device.items()
        ]
        if len(calls) == 1:  # one round trip; a pipeline first checks that the script exists
            await self._merge(*calls[0])
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for script_keys, args in calls:
                await queue_script(pipe, self._merge, script_keys, args)  # cluster-safe
            await pipe.execute()
