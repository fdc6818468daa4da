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
from typing import Any, Literal

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from dsp.errors import BadNotice, UnknownAuction
from dsp.metrics import Metrics
from dsp.tracking.links import Notice
from infra import keys
from infra.redis_client import is_cluster

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


def _cluster_variant(script: str) -> str:
    """``_RECORD_LUA`` for Redis Cluster: the campaign's slot only (``{c:ID}``).

    A cluster script may touch only the keys of one slot. The device's keys (frequency
    counters, clicks, touches) and the event stream live in other slots, so this variant
    leaves them out: the event comes back in the reply (appended by ``Ledger.record``), and
    the device's writes follow in a script on its own slot (``_DEVICE_LUA``). The click rule
    judges the device's clicks read before the call (ARGV[18]). A repeated notice touches its
    seen key (a write), so a ``WAIT`` after it also covers the first, charging, call.
    KEYS 3, 6, 11 and 12 are not used (the caller repeats the stats key there).
    """
    parts = [
        ("  return {-1, 0, ''}\n", "  return {-1, 0, '', ''}\n"),
        (
            "  return {0, 0, ''}\n",
            "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n  return {0, 0, '', ''}\n",
        ),
        (
            """    local clicks = redis.call('INCR', KEYS[11])
    if clicks == 1 then redis.call('EXPIRE', KEYS[11], ARGV[15]) end
""",
            "    local clicks = tonumber(ARGV[18]) + 1\n",
        ),
        (
            """if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[6], ARGV[6], 1)
  redis.call('EXPIRE', KEYS[6], ARGV[7])
end
""",
            "",
        ),
        ("redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'e', event .. '}')\n", ""),
        (
            """if ARGV[16] ~= '' and reason == '' and (kind == 'imp' or kind == 'click') then
  redis.call('HSET', KEYS[12], ARGV[17] .. '|' .. kind, '{' .. ARGV[12] .. '}')
  redis.call('EXPIRE', KEYS[12], ARGV[16])
end
""",
            "",
        ),
        ("return {1, charged, reason}", "return {1, charged, reason, event .. '}'}"),
    ]
    for old, new in parts:
        if old not in script:
            raise AssertionError(f"record script changed: {old!r}")
        script = script.replace(old, new)
    return script


_RECORD_CLUSTER_LUA = _cluster_variant(_RECORD_LUA)

# Cluster only, after a counted notice: the device's writes, on the device's slot.
# KEYS: 1 frequency counters, 2 clicks of the window, 3 touches; ARGV: 1 cap field ('' none),
# 2 cap ttl, 3 count a click ('1' or ''), 4 window ttl, 5 touch ttl ('' none), 6 touch field,
# 7 touch JSON.
_DEVICE_LUA = """
if ARGV[1] ~= '' then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if ARGV[3] ~= '' then
  if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[6], ARGV[7])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return 1
"""


# Cluster only: a counted notice's event, appended once. redis-py's cluster client sends a
# command again when its reply was lost (a failover), and a bare XADD would then be in the
# stream twice; the mark lives in the stream's slot, as long as such a retry can come.
# KEYS: 1 the stream, 2 the mark (keys.event_appended); ARGV: 1 event, 2 maxlen, 3 mark ttl.
_APPEND_ONCE_LUA = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
  return 1
end
return 0
"""
_APPENDED_TTL_S = 300


class NotReplicated(RedisError):
    """A charge made on a cluster master that no replica confirmed in time: the notice is
    answered 503 and the exchange retries it (charged once: the retry finds it seen)."""


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
        replica_wait_ms: int = 200,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis = redis
        # Redis Cluster: the campaign's script, then the device's and the event apart; a
        # money notice acknowledged only once a replica has it (``WAIT``), when there are.
        self._cluster = is_cluster(redis)
        self._replica_wait_ms = replica_wait_ms
        self.wait_replicas = 0  # set by warm_up on a cluster whose masters have replicas
        self.events_lost = 0  # cluster: counted notices whose event could not be appended
        self._metrics = metrics or Metrics()  # events_lost, charges_not_replicated
        self._click_rate_max = click_rate_max
        self._click_window_s = max(1, click_rate_window_s)
        self._record: AsyncScript = redis.register_script(_RECORD_LUA)
        self._loss: AsyncScript = redis.register_script(_LOSS_LUA)
        self._record_cluster: AsyncScript = redis.register_script(_RECORD_CLUSTER_LUA)
        self._device: AsyncScript = redis.register_script(_DEVICE_LUA)
        self._append_once: AsyncScript = redis.register_script(_APPEND_ONCE_LUA)
        self._ttl_s = ttl_s
        self._maxlen = stream_maxlen
        self._settlements_ttl_s = settlements_ttl_s

    @property
    def redis(self) -> Redis:
        return self._redis

    async def warm_up(self) -> None:
        if self._cluster:
            await self._redis.script_load(_RECORD_CLUSTER_LUA)
            await self._redis.script_load(_DEVICE_LUA)
            await self._redis.script_load(_LOSS_LUA)
            self.wait_replicas = min(1, await replicas_per_master(self._redis))
            return
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
        if self._cluster:
            return await self._on_cluster(
                kind, notice, event, amount_micros=amount_micros, ttl_s=ttl_s, hour=hour,
                cap=cap, settles=settles, late=late, bot=bot, touch_ttl_s=touch_ttl_s,
                window=window, rate_rule=rate_rule,
            )  # fmt: skip
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

    async def _on_cluster(self, *args: Any, **kwargs: Any) -> Recorded:
        try:
            return await self._record_on_cluster(*args, **kwargs)
        except AttributeError as error:  # redis-py 8.1: a connection torn down mid-send
            raise RedisConnectionError(f"cluster connection lost: {error}") from error

    async def _record_on_cluster(
        self,
        kind: EventKind,
        notice: Notice,
        event: dict[str, object],
        *,
        amount_micros: int,
        ttl_s: int | None,
        hour: str,
        cap: CapCount | None,
        settles: bool,
        late: bool,
        bot: bool,
        touch_ttl_s: int,
        window: int,
        rate_rule: bool,
    ) -> Recorded:
        """``record`` on a Redis Cluster: the campaign's slot atomically (once-only check,
        money, counters, settlement), then the event stream, then the device's slot.

        Only the first step decides and charges; a crash after it loses the device's
        counters or the event of a charged notice, never money (``events_lost`` counts
        the appends that failed). A money notice waits until a replica has the charge.
        """
        campaign = notice.campaign_id
        money = kind in ("win", "bill")
        device = bytes.fromhex(notice.device)
        clicks_key = keys.device_clicks(device, window)
        clicks_before = int(await self._redis.get(clicks_key) or 0) if rate_rule else 0
        stats = keys.campaign_stats(campaign)
        seen = keys.notice_seen(kind, campaign, notice.auction_id, notice.imp_id)
        script_keys = [
            seen, stats, stats, keys.campaign_spent(campaign),
            keys.campaign_spent_day(campaign, notice.day), stats,
            keys.campaign_leases(campaign), keys.lease_resolved(campaign, notice.lease),
            keys.campaign_overdelivery(campaign, notice.day),
            keys.notice_seen("imp", campaign, notice.auction_id, notice.imp_id), stats, stats,
        ]  # fmt: skip
        args: list[Any] = [
            ttl_s or self._ttl_s, f"{hour}|{notice.creative_id}|", kind, amount_micros,
            self._maxlen, "", 0, notice.lease if money else "",
            settlement(notice) if settles else "", self._settlements_ttl_s,
            "1" if late else "", orjson.dumps(event)[1:-1], "1" if bot else "",
            self._click_rate_max if rate_rule else "", self._click_window_s, "", campaign,
            clicks_before,
        ]  # fmt: skip
        reply: list[Any]
        if money and self.wait_replicas:
            reply = await self._charged_and_replicated(seen, script_keys, args)
        else:
            reply = await self._record_cluster(keys=script_keys, args=args)
        status, charged, reason, appended = int(reply[0]), int(reply[1]), reply[2], reply[3]
        if status < 0:
            raise UnknownAuction(notice.auction_id, notice.imp_id)
        if status == 0:
            return Recorded(counted=False)
        invalid = reason.decode() if isinstance(reason, bytes) else str(reason)
        capped = cap is not None and bool(notice.device)
        touch = bool(touch_ttl_s and notice.device) and not invalid and kind in ("imp", "click")
        once = keys.event_appended(seen)
        try:
            if money and self.wait_replicas:
                await self._appended_and_replicated(appended, once)
            else:
                await self._append_once(
                    keys=[keys.EVENTS, once], args=[appended, self._maxlen, _APPENDED_TTL_S]
                )
        except RedisError:
            self.events_lost += 1
            self._metrics.count("events_lost")
            raise
        # The device's counters last: a failover of their shard fails the notice here, after
        # its event is in the stream, and the exchange's retry is found already counted.
        if capped or rate_rule or touch:
            await self._device(
                keys=[keys.frequency_counters(device), clicks_key, keys.device_touches(device)],
                args=[
                    cap.field if cap is not None and capped else "", cap.ttl_s if cap else 0,
                    "1" if rate_rule else "", self._click_window_s,
                    touch_ttl_s if touch else "", f"{campaign}|{kind}",
                    b"{" + orjson.dumps(event)[1:-1] + b"}",
                ],
            )  # fmt: skip
        return Recorded(True, charged, amount_micros - charged, invalid)

    async def _appended_and_replicated(self, appended: bytes, once: str) -> None:
        """A money notice's event, then ``WAIT`` on the stream's master as for its charge: an
        append no replica confirmed is one a failover may lose, so it is counted as lost
        (``events_lost``) now rather than missed later. The charge stands either way."""
        cluster = self._redis
        node = cluster.get_node_from_key(keys.EVENTS)  # type: ignore[attr-defined]
        async with cluster.pipeline(transaction=False) as pipe:
            pipe.execute_command(
                "EVAL", _APPEND_ONCE_LUA, 2, keys.EVENTS, once,
                appended, self._maxlen, _APPENDED_TTL_S,
            )  # fmt: skip
            pipe.execute_command(
                "WAIT", self.wait_replicas, self._replica_wait_ms, target_nodes=node
            )
            _, replicas = await pipe.execute()
        if int(replicas) < self.wait_replicas:
            self.events_lost += 1
            self._metrics.count("events_lost")

    async def _charged_and_replicated(
        self, seen: str, script_keys: list[str], args: list[Any]
    ) -> list[Any]:
        """The record script and ``WAIT 1`` on one connection to the campaign's master: the
        notice is acknowledged only once a replica has its charge (``NotReplicated``, a 503
        the exchange retries, otherwise). Redis replicates asynchronously; this is the
        documented way to narrow what a failover can lose to writes not yet acknowledged."""
        cluster = self._redis
        node = cluster.get_node_from_key(seen)  # type: ignore[attr-defined]
        # One node, one connection: redis-py's cluster pipeline sends a node's commands
        # together, so the WAIT follows the script on the connection that wrote.
        async with cluster.pipeline(transaction=False) as pipe:
            pipe.execute_command("EVAL", _RECORD_CLUSTER_LUA, len(script_keys), *script_keys, *args)
            pipe.execute_command(
                "WAIT", self.wait_replicas, self._replica_wait_ms, target_nodes=node
            )
            reply, replicas = await pipe.execute()
        assert isinstance(reply, list)
        if int(reply[0]) >= 0 and int(replicas) < self.wait_replicas:  # an unknown lease: 400
            self._metrics.count("charges_not_replicated")
            waited = self._replica_wait_ms
            raise NotReplicated(f"no replica confirmed the charge within {waited} ms")
        return reply

    async def loss(self, notice: Notice) -> None:
        """Queue a lost bid's settlement (no charge) for the process owning its lease."""
        await self._loss(
            keys=[keys.lease_resolved(notice.campaign_id, notice.lease)],
            args=[settlement(notice), self._settlements_ttl_s],
        )


async def replicas_per_master(redis: Redis) -> int:
    """The fewest replicas any master of a cluster has (``CLUSTER SLOTS``)."""
    shards = await redis.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
    if not shards:
        return 0
    return min(len(shard) - 3 for shard in shards)
