"""Recording a conversion once, in one Lua script, in the ledger's style.

The script marks the conversion's dedup key (the advertiser's order id, or without one the
touch it is credited to) with SET NX, and only the first caller bumps the campaign's
counters and appends the ``conversion`` (click-through) or ``view_conversion`` event, its
``price`` the conversion's value in micros, to the event stream the aggregator counts.

On Redis Cluster those keys are in three slots (the dedup key's ``{conv:...}``, the
campaign's ``{c:ID}``, the stream's), and a script may touch one. There it takes two
steps, the once-only check first:

1. In the event stream's slot, one script: SET NX a dedup key beside the stream
   (``keys.conversion_logged``, holding what step 2 needs) and, only if it was not set,
   append the event. The event is what reports count: it is appended exactly once.
2. In the campaign's slot, one script: SET NX a marker of this conversion
   (``keys.conversion_counted``) and, only if it was not set, bump the campaign's counters.

A repeat of the conversion (the same dedup id) finds step 1 done and runs step 2 again
with what step 1 stored, which changes nothing unless the first try died between the two
steps: then the repeat finishes its count, once. Either way the repeat answers duplicate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from dsp.conversions.attribution import Touch
from infra import keys
from infra.redis_client import is_cluster

# A conversion's counters, in both scripts that count: KEYS[2] campaign stats;
# ARGV: 2 stats prefix, 3 event type, 4 value micros.
_COUNT_STATS = """
redis.call('HINCRBY', KEYS[2], ARGV[2] .. ARGV[3], 1)
if tonumber(ARGV[4]) > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. 'conversion_value', ARGV[4])
end
"""

# KEYS: 1 dedup key, 2 campaign stats, 3 events
# ARGV: 1 dedup ttl, 2 stats prefix, 3 event type, 4 value micros, 5 stream maxlen,
#       6 event JSON without type and braces
_CONVERT_LUA = (
    """
if not redis.call('SET', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[1]) then
  return 0
end
"""
    + _COUNT_STATS
    + """
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'e',
           '{"type":"' .. ARGV[3] .. '",' .. ARGV[6] .. '}')
return 1
"""
)

# Cluster step 1, the stream's slot. KEYS: 1 dedup key beside the stream, 2 events
# ARGV: 1 dedup ttl, 2 what step 2 needs (JSON), 3 event type, 4 stream maxlen,
#       5 event JSON without type and braces
# Returns {1} when counted now, else {0, what the first try stored}.
_LOG_LUA = """
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then
  return {0, redis.call('GET', KEYS[1])}
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e',
           '{"type":"' .. ARGV[3] .. '",' .. ARGV[5] .. '}')
return {1}
"""

# Cluster step 2, the campaign's slot. KEYS: 1 counted marker, 2 campaign stats
# ARGV: 1 dedup ttl, 2 stats prefix, 3 event type, 4 value micros
_COUNT_LUA = (
    """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
"""
    + _COUNT_STATS
    + """
return 1
"""
)


@dataclass(frozen=True, slots=True)
class Conversion:
    touch: Touch
    scope: str  # whose order ids these are: the advertiser (the campaign when unknown)
    order_id: str  # "" when the advertiser sent none
    value_micros: int

    @property
    def dedup_id(self) -> str:
        if self.order_id:
            return f"order:{self.order_id}"
        return f"{self.touch.kind}:{self.touch.auction_id}:{self.touch.imp_id}"


class ConversionRecorder:
    def __init__(self, redis: Redis, *, dedup_ttl_s: int, stream_maxlen: int) -> None:
        self._convert: AsyncScript = redis.register_script(_CONVERT_LUA)
        self._log: AsyncScript = redis.register_script(_LOG_LUA)
        self._count: AsyncScript = redis.register_script(_COUNT_LUA)
        self._cluster = is_cluster(redis)
        self._ttl_s = dedup_ttl_s
        self._maxlen = stream_maxlen

    async def record(self, conversion: Conversion, now: float | None = None) -> bool:
        """Count the conversion once per dedup id; False when it was counted before."""
        now = time.time() if now is None else now
        touch = conversion.touch
        event = {
            "ts": int(now * 1000), "auction": touch.auction_id, "imp": touch.imp_id,
            "campaign": touch.campaign_id, "creative": touch.creative_id,
            "device": touch.device, "tags": list(touch.tags), "price": conversion.value_micros,
            "order": conversion.order_id, "touch_ts": touch.ts_ms,
        }  # fmt: skip
        hour = time.strftime("%Y%m%d%H", time.gmtime(now))
        if self._cluster:
            return await self._record_on_cluster(conversion, f"{hour}|{touch.creative_id}|", event)
        reply = await self._convert(
            keys=[
                keys.conversion_seen(conversion.scope, conversion.dedup_id),
                keys.campaign_stats(touch.campaign_id),
                keys.EVENTS,
            ],
            args=[
                self._ttl_s, f"{hour}|{touch.creative_id}|", touch.event_type,
                conversion.value_micros, self._maxlen, orjson.dumps(event)[1:-1],
            ],
        )  # fmt: skip
        return int(reply) == 1

    async def _record_on_cluster(
        self, conversion: Conversion, prefix: str, event: dict[str, object]
    ) -> bool:
        counted_now, count = await self.log_on_cluster(conversion, prefix, event)
        await self.count_on_cluster(conversion, count)
        return counted_now

    async def log_on_cluster(
        self, conversion: Conversion, prefix: str, event: dict[str, object]
    ) -> tuple[bool, dict[str, Any]]:
        """Step 1: the once-only check and the event. Whether this call was the first, and
        what the campaign's counters need (the first call's, a repeat's touch aside)."""
        touch = conversion.touch
        count: dict[str, Any] = {
            "campaign": touch.campaign_id, "prefix": prefix, "type": touch.event_type,
            "value": conversion.value_micros,
        }  # fmt: skip
        reply = await self._log(
            keys=[keys.conversion_logged(conversion.scope, conversion.dedup_id), keys.EVENTS],
            args=[
                self._ttl_s, orjson.dumps(count), touch.event_type, self._maxlen,
                orjson.dumps(event)[1:-1],
            ],
        )  # fmt: skip
        if int(reply[0]) == 1:
            return True, count
        return False, orjson.loads(reply[1])

    async def count_on_cluster(self, conversion: Conversion, count: dict[str, Any]) -> bool:
        """Step 2: the campaign's counters, once per conversion whoever runs it."""
        campaign = str(count["campaign"])
        reply = await self._count(
            keys=[
                keys.conversion_counted(campaign, conversion.scope, conversion.dedup_id),
                keys.campaign_stats(campaign),
            ],
            args=[self._ttl_s, count["prefix"], count["type"], count["value"]],
        )
        return int(reply) == 1
