"""Counting and charging notices exactly once, atomically, in one Lua script per notice.

The script marks the notice as seen (SET NX with a time to live), and only the first
caller goes on to move money, bump the report counters and append the event: a notice
fired ten times charges once, and a crash between those steps cannot happen inside Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Literal

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from dsp.errors import BadNotice
from dsp.tracking.links import Notice
from infra import keys

EventKind = Literal["win", "imp", "click"]

_RECORD_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[2] .. ARGV[3], 1)
local amount = tonumber(ARGV[4])
if amount > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. 'spend', amount)
  redis.call('INCRBY', KEYS[4], amount)
  redis.call('INCRBY', KEYS[5], amount)
  redis.call('EXPIRE', KEYS[5], 8 * 86400)
end
if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[6], ARGV[6], 1)
  redis.call('EXPIRE', KEYS[6], ARGV[7])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 8))
return 1
"""


def charge_micros(price: str, currency_rate: Decimal, bid_micros: int) -> int:
    """USD micros for one impression cleared at ``price`` (a CPM in the notice's currency).

    Capped at our own bid: an exchange reporting a clearing price above the bid made an
    error the advertiser must not pay for.
    """
    try:
        cpm = Decimal(price)
    except InvalidOperation:
        raise BadNotice("p", f"not a price: {price!r}") from None
    if not cpm.is_finite() or cpm < 0:
        raise BadNotice("p", f"not a price: {price!r}")
    cpm_micros = min(cpm * 1_000_000 / currency_rate, Decimal(bid_micros))
    return int((cpm_micros / 1000).to_integral_value(ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class CapCount:
    """The frequency counter an impression adds one to: the device's field of a campaign."""

    field: str
    ttl_s: int


@dataclass(frozen=True, slots=True)
class Recorded:
    counted: bool  # False: this notice was seen before and changed nothing


class Ledger:
    def __init__(self, redis: Redis, *, ttl_s: int, stream_maxlen: int) -> None:
        self._redis = redis
        self._record: AsyncScript = redis.register_script(_RECORD_LUA)
        self._ttl_s = ttl_s
        self._maxlen = stream_maxlen

    async def warm_up(self) -> None:
        await self._redis.script_load(_RECORD_LUA)

    async def record(
        self,
        kind: EventKind,
        notice: Notice,
        *,
        amount_micros: int = 0,
        ttl_s: int | None = None,
        now: float | None = None,
        cap: CapCount | None = None,
    ) -> Recorded:
        """Count a notice once per auction and imp (and charge ``amount_micros`` if a win)."""
        now = time.time() if now is None else now
        utc = time.gmtime(now)
        hour, day = time.strftime("%Y%m%d%H", utc), time.strftime("%Y%m%d", utc)
        campaign = notice.campaign_id
        event = [
            "type", kind, "ts", f"{now:.3f}", "auction", notice.auction_id, "imp",
            notice.imp_id, "campaign", campaign, "creative", notice.creative_id, "device",
            notice.device, "price_micros", str(amount_micros),
        ]  # fmt: skip
        counted = await self._record(
            keys=[
                keys.notice_seen(kind, campaign, notice.auction_id, notice.imp_id),
                keys.campaign_stats(campaign),
                keys.EVENTS,
                keys.campaign_spent(campaign),
                keys.campaign_spent_day(campaign, day),
                keys.frequency_counters(bytes.fromhex(notice.device)),
            ],
            args=[
                ttl_s or self._ttl_s, f"{hour}|{notice.creative_id}|", kind, amount_micros,
                self._maxlen, cap.field if cap and notice.device else "",
                cap.ttl_s if cap else 0, *event,
            ],
        )  # fmt: skip
        return Recorded(counted=bool(counted))
