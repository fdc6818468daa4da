"""Leases on a campaign's budget, granted and taken back atomically in Redis.

A lease is ``<keeper id>@<day>``: one bidder process's share of one day's budget. Its record
(``granted``, ``charged``, ``day``) lives in the campaign's lease hash for as long as notices
of its bids may arrive (``keep_records_s``); its expiry, in a sorted set, says whether its
unspent part (``granted - charged``) still counts as taken. Expiry is Redis's own clock, so
processes on hosts whose clocks disagree still agree on which leases are live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from infra import keys
from infra.redis_client import queue_script

# One call both renews a lease and sets what it holds unspent: up to ``target`` (a top-up, or
# a give-back when the target is lower), within the lease cap and within what the daily and
# total budgets leave after the charges and the unspent parts of the other live leases.
_LEASE_LUA = """
local function int(n) return string.format('%d', n) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease, day = ARGV[1], ARGV[2]
local target, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local daily, total = tonumber(ARGV[5]), tonumber(ARGV[6])
local function num(field) return tonumber(redis.call('HGET', KEYS[1], field) or '0') end
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[8]))) do
  redis.call('HDEL', KEYS[1], name .. '|granted', name .. '|charged', name .. '|day')
  redis.call('ZREM', KEYS[2], name)
end
local day_out, all_out = 0, 0
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')) do
  if name ~= lease then
    local out = math.max(num(name .. '|granted') - num(name .. '|charged'), 0)
    all_out = all_out + out
    if redis.call('HGET', KEYS[1], name .. '|day') == day then day_out = day_out + out end
  end
end
local granted, charged, lapsed = num(lease .. '|granted'), num(lease .. '|charged'), 0
local expiry = redis.call('ZSCORE', KEYS[2], lease)
if expiry and tonumber(expiry) <= now and granted > charged then
  -- Lapsed: what it left unspent went back to the budget and may be granted elsewhere.
  granted, lapsed = charged, 1
end
local spent_all = tonumber(redis.call('GET', KEYS[3]) or '0')
local spent_day = tonumber(redis.call('GET', KEYS[4]) or '0')
local hold = math.min(target, cap, daily - spent_day - day_out, total - spent_all - all_out)
granted = charged + math.max(hold, 0)
redis.call('HSET', KEYS[1], lease .. '|granted', int(granted), lease .. '|charged', int(charged),
  lease .. '|day', day, 'budget|daily', ARGV[5], 'budget|total', ARGV[6])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), lease)
return {granted, charged, lapsed}
"""


def lease_name(keeper_id: str, day: str) -> str:
    return f"{keeper_id}@{day}"


@dataclass(frozen=True, slots=True)
class LeaseOrder:
    """Renew ``lease`` for ``ttl_ms`` and make it hold ``target`` micros unspent, if allowed."""

    campaign_id: str
    lease: str
    day: str
    target: int
    cap: int
    daily_micros: int
    total_micros: int
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A lease after an order: ``granted - charged`` is what it may still spend."""

    granted: int
    charged: int
    lapsed: bool  # it had expired: its unspent part had gone back to the budget


@dataclass(frozen=True, slots=True)
class LeaseState:
    granted: int
    charged: int
    day: str
    expires_ms: int

    @property
    def unspent(self) -> int:
        return max(self.granted - self.charged, 0)


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One campaign's money as Redis sees it at ``now_ms`` (Redis time)."""

    now_ms: int
    spent_total: int
    spent_day: int
    leases: Mapping[str, LeaseState]

    def live(self, lease: str) -> bool:
        state = self.leases.get(lease)
        return state is not None and state.expires_ms > self.now_ms

    def held(self, day: str | None = None) -> int:
        """Unspent parts of the live leases (of one day, or of all days)."""
        return sum(
            state.unspent
            for name, state in self.leases.items()
            if self.live(name) and (day is None or state.day == day)
        )


class LeaseBook:
    """The lease script, queued into the caller's pipelines."""

    def __init__(self, redis: Redis, *, keep_records_s: int) -> None:
        self._redis = redis
        self._script: AsyncScript = redis.register_script(_LEASE_LUA)
        self._keep_ms = keep_records_s * 1000

    async def warm_up(self) -> None:
        await self._redis.script_load(_LEASE_LUA)

    async def queue(self, pipe: Pipeline, order: LeaseOrder) -> None:
        await queue_script(pipe, self._script, self._keys(order), self._args(order))

    async def order(self, order: LeaseOrder) -> LeaseGrant:
        """Run one order on its own (tools and tests; processes batch them)."""
        return grant_of(await self._script(keys=self._keys(order), args=self._args(order)))

    def _keys(self, order: LeaseOrder) -> list[str]:
        campaign_id = order.campaign_id
        return [
            keys.campaign_leases(campaign_id),
            keys.campaign_lease_expiry(campaign_id),
            keys.campaign_spent(campaign_id),
            keys.campaign_spent_day(campaign_id, order.day),
        ]

    def _args(self, order: LeaseOrder) -> list[str | int]:
        return [
            order.lease, order.day, order.target, order.cap, order.daily_micros,
            order.total_micros, order.ttl_ms, self._keep_ms,
        ]  # fmt: skip


def grant_of(reply: object) -> LeaseGrant:
    if not isinstance(reply, list) or len(reply) != 3:
        raise ValueError(f"unexpected lease script reply {reply!r}")
    granted, charged, lapsed = (int(value) for value in reply)
    return LeaseGrant(granted, charged, bool(lapsed))


async def budget_view(redis: Redis, campaign_id: str, day: str) -> BudgetView:
    """Charges and leases of one campaign, in one round trip (operators and tests)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.time()
        pipe.get(keys.campaign_spent(campaign_id))
        pipe.get(keys.campaign_spent_day(campaign_id, day))
        pipe.hgetall(keys.campaign_leases(campaign_id))
        pipe.zrange(keys.campaign_lease_expiry(campaign_id), 0, -1, withscores=True)
        (seconds, micros), total, today, fields, expiries = await pipe.execute()
    record = {key.decode(): value.decode() for key, value in fields.items()}
    leases = {
        name.decode(): LeaseState(
            int(record.get(f"{name.decode()}|granted", 0)),
            int(record.get(f"{name.decode()}|charged", 0)),
            record.get(f"{name.decode()}|day", ""),
            int(score),
        )
        for name, score in expiries
    }
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return BudgetView(now_ms, int(total or 0), int(today or 0), leases)
