"""Recording a conversion once, in one Lua script, in the ledger's style.

The script marks the conversion's dedup key (the advertiser's order id, or without one the
touch it is credited to) with SET NX, and only the first caller bumps the campaign's
counters and appends the ``conversion`` (click-through) or ``view_conversion`` event, its
``price`` the conversion's value in micros, to the event stream the aggregator counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from dsp.conversions.attribution import Touch
from infra import keys

# KEYS: 1 dedup key, 2 campaign stats, 3 events
# ARGV: 1 dedup ttl, 2 stats prefix, 3 event type, 4 value micros, 5 stream maxlen,
#       6 event JSON without type and braces
_CONVERT_LUA = """
if not redis.call('SET', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[2] .. ARGV[3], 1)
if tonumber(ARGV[4]) > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. 'conversion_value', ARGV[4])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'e',
           '{"type":"' .. ARGV[3] .. '",' .. ARGV[6] .. '}')
return 1
"""


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
