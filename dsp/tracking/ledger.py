"""Counting and charging notices exactly once, atomically, in one Lua script per notice.

The script marks the notice as seen (SET NX with a time to live), and only the first
caller goes on to move money, bump the report counters and append the event: a notice
fired ten times charges once, and a crash between those steps cannot happen inside Redis.

A money notice (win or billing) names the budget lease its bid was reserved from. The script
refuses a lease that was never granted (no bid of ours, an unknown auction), charges the
lease, never charges the campaign beyond its daily or total budget (a win arriving after its
lease lapsed is recorded as overdelivery instead), and queues the settlement for the process
that owns the lease, so it can end the bid's reservation.

The event the script appends carries everything the reports count by (campaign, creative,
device, matched tags, the price charged). A click is judged in the same script, after the
once-only check: it is invalid when its user agent is a known bot's, when its impression was
never counted, or when its device has clicked more than ``click_rate_max`` times in the
current window; an invalid click is logged as ``invalid_click`` with its reason, out of CTR.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Literal

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from dsp.errors import BadNotice, UnknownAuction
from dsp.tracking.links import Notice
from infra import keys

EventKind = Literal["win", "bill", "imp", "click"]

# KEYS: 1 seen, 2 stats, 3 events, 4 spent total, 5 spent on the budget day, 6 frequency
#       counters, 7 leases, 8 the lease's settlements, 9 overdelivery of the budget day,
#       10 the impression's seen key (clicks), 11 the device's clicks in this window,
#       12 the device's touches (issue 12)
# ARGV: 1 seen ttl, 2 stats prefix, 3 kind, 4 amount, 5 stream maxlen, 6 cap field, 7 cap ttl,
#       8 lease ('' = not a money notice), 9 settlement ('' = none), 10 settlements ttl,
#       11 late ('1' or ''), 12 event JSON without type, price and closing brace,
#       13 bot ('1' or ''), 14 clicks allowed per window ('' = no device), 15 window ttl,
#       16 issue 12: ttl of the device's touches ('' = keep none), 17 the campaign
_RECORD_LUA = """
local function int(n) return string.format('%d', n) end
local lease = ARGV[8]
if lease ~= '' and redis.call('HEXISTS', KEYS[7], lease .. '|granted') == 0 then
  return {-1, 0, ''}
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {0, 0, ''}
end
local kind, reason = ARGV[3], ''
if kind == 'click' then
  if ARGV[13] ~= '' then
    reason = 'bot'
  elseif redis.call('EXISTS', KEYS[10]) == 0 then
    reason = 'no_impression'
  end
  if ARGV[14] ~= '' then
    local clicks = redis.call('INCR', KEYS[11])
    if clicks == 1 then redis.call('EXPIRE', KEYS[11], ARGV[15]) end
    if reason == '' and clicks > tonumber(ARGV[14]) then reason = 'click_rate' end
  end
  if reason ~= '' then kind = 'invalid_click' end
end
redis.call('HINCRBY', KEYS[2], ARGV[2] .. kind, 1)
if ARGV[11] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. 'late', 1)
end
local amount, charged = tonumber(ARGV[4]), 0
if amount > 0 then
  charged = amount
  if lease ~= '' then
    redis.call('HINCRBY', KEYS[7], lease .. '|charged', amount)
    local daily = tonumber(redis.call('HGET', KEYS[7], 'budget|daily') or '0')
    local total = tonumber(redis.call('HGET', KEYS[7], 'budget|total') or '0')
    local room = math.min(daily - tonumber(redis.call('GET', KEYS[5]) or '0'),
                          total - tonumber(redis.call('GET', KEYS[4]) or '0'))
    charged = math.max(math.min(amount, room), 0)
  end
  if charged > 0 then
    redis.call('HINCRBY', KEYS[2], ARGV[2] .. 'spend', charged)
    redis.call('INCRBY', KEYS[4], charged)
    redis.call('INCRBY', KEYS[5], charged)
    redis.call('EXPIRE', KEYS[5], 8 * 86400)
  end
  if charged < amount then
    redis.call('INCRBY', KEYS[9], amount - charged)
    redis.call('EXPIRE', KEYS[9], 8 * 86400)
  end
end
if ARGV[9] ~= '' then
  redis.call('RPUSH', KEYS[8], int(amount) .. '\\31' .. ARGV[9])
  redis.call('EXPIRE', KEYS[8], ARGV[10])
end
if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[6], ARGV[6], 1)
  redis.call('EXPIRE', KEYS[6], ARGV[7])
end
local event = '{"type":"' .. kind .. '",' .. ARGV[12] .. ',"price":' .. int(charged)
if reason ~= '' then event = event .. ',"reason":"' .. reason .. '"' end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'e', event .. '}')
if ARGV[16] ~= '' and reason == '' and (kind == 'imp' or kind == 'click') then
  redis.call('HSET', KEYS[12], ARGV[17] .. '|' .. kind, '{' .. ARGV[12] .. '}')
  redis.call('EXPIRE', KEYS[12], ARGV[16])
end
return {1, charged, reason}
"""

# A loss notice: the bid's reservation can end now rather than at its timeout.
_LOSS_LUA = """
redis.call('RPUSH', KEYS[1], '0\\31' .. ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
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
    charged_micros: int = 0  # what the campaign was charged (a win within its budget: all)
    overdelivered_micros: int = 0  # won beyond the budget: recorded, not charged
    invalid: str = ""  # a click kept out of CTR: why ("bot", "no_impression", "click_rate")


def settlement(notice: Notice) -> str:
    """How a lease's owner finds the bid a settlement ends: imp id, then auction id."""
    return f"{notice.imp_id}\x1f{notice.auction_id}"


class Ledger:
    def __init__(
        self,
        redis: Redis,
        *,
        ttl_s: int,
        stream_maxlen: int,
        settlements_ttl_s: int = 600,
        click_rate_max: int = 5,
        click_rate_window_s: int = 3600,
    ) -> None:
        self._redis = redis
        self._click_rate_max = click_rate_max
        self._click_window_s = max(1, click_rate_window_s)
        self._record: AsyncScript = redis.register_script(_RECORD_LUA)
        self._loss: AsyncScript = redis.register_script(_LOSS_LUA)
        self._ttl_s = ttl_s
        self._maxlen = stream_maxlen
        self._settlements_ttl_s = settlements_ttl_s

    @property
    def redis(self) -> Redis:
        return self._redis

    async def warm_up(self) -> None:
        await self._redis.script_load(_RECORD_LUA)
        await self._redis.script_load(_LOSS_LUA)

    async def record(
        self,
        kind: EventKind,
        notice: Notice,
        *,
        amount_micros: int = 0,
        ttl_s: int | None = None,
        now: float | None = None,
        cap: CapCount | None = None,
        settles: bool = False,
        late: bool = False,
        bot: bool = False,
        touch_ttl_s: int = 0,
    ) -> Recorded:
        """Count a notice once per auction and imp (and charge ``amount_micros`` if a win).

        Win and billing notices must name a lease that was granted (``UnknownAuction``
        otherwise); ``settles`` tells the lease's owner that the bid's reservation is over.
        issue 12: with ``touch_ttl_s``, a counted impression or valid click of a known device
        is kept as the device's last touch of the campaign (view-through attribution).
        """
        now = time.time() if now is None else now
        hour = time.strftime("%Y%m%d%H", time.gmtime(now))
        campaign = notice.campaign_id
        money = kind in ("win", "bill")
        device = bytes.fromhex(notice.device)
        event: dict[str, object] = {
            "ts": int(now * 1000), "auction": notice.auction_id, "imp": notice.imp_id,
            "campaign": campaign, "creative": notice.creative_id, "device": notice.device,
            "tags": list(notice.tags),
        }  # fmt: skip
        if late:
            event["late"] = True
        window = int(now) // self._click_window_s
        rate_rule = kind == "click" and bool(notice.device)
        reply = await self._record(
            keys=[
                keys.notice_seen(kind, campaign, notice.auction_id, notice.imp_id),
                keys.campaign_stats(campaign),
                keys.EVENTS,
                keys.campaign_spent(campaign),
                keys.campaign_spent_day(campaign, notice.day),
                keys.frequency_counters(device),
                keys.campaign_leases(campaign),
                keys.lease_resolved(campaign, notice.lease),
                keys.campaign_overdelivery(campaign, notice.day),
                keys.notice_seen("imp", campaign, notice.auction_id, notice.imp_id),
                keys.device_clicks(device, window),
                keys.device_touches(device),
            ],
            args=[
                ttl_s or self._ttl_s, f"{hour}|{notice.creative_id}|", kind, amount_micros,
                self._maxlen, cap.field if cap and notice.device else "",
                cap.ttl_s if cap else 0, notice.lease if money else "",
                settlement(notice) if settles else "", self._settlements_ttl_s,
                "1" if late else "", orjson.dumps(event)[1:-1], "1" if bot else "",
                self._click_rate_max if rate_rule else "", self._click_window_s,
                touch_ttl_s if touch_ttl_s and notice.device else "", campaign,
            ],
        )  # fmt: skip
        status, charged, reason = int(reply[0]), int(reply[1]), reply[2]
        if status < 0:
            raise UnknownAuction(notice.auction_id, notice.imp_id)
        if status == 0:
            return Recorded(counted=False)
        invalid = reason.decode() if isinstance(reason, bytes) else str(reason)
        return Recorded(True, charged, amount_micros - charged, invalid)

    async def loss(self, notice: Notice) -> None:
        """Queue a lost bid's settlement (no charge) for the process owning its lease."""
        await self._loss(
            keys=[keys.lease_resolved(notice.campaign_id, notice.lease)],
            args=[settlement(notice), self._settlements_ttl_s],
        )
