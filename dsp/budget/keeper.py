"""The budget keeper of one bidder process: leases, reservations, settlements and pacing.

The bid path calls ``reserve`` only: a dict lookup, a random draw for pacing and a few
integer operations, no I/O. Everything that talks to Redis runs off the bid path: the
refresher's ``refresh`` (one pipeline: spend, settlements, lease renewals and top-ups), and
``run``, a background task that tops up an account running low before the next refresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from dsp.budget.accounts import Account
from dsp.budget.days import budget_day, max_cost_micros, seconds_into_day
from dsp.budget.leases import LeaseBook, LeaseOrder, grant_of, lease_name
from dsp.budget.pacing import PacingController
from dsp.campaigns.model import Campaign, Pacing
from dsp.campaigns.schedule import may_bid_at
from dsp.metrics import Metrics
from infra import keys
from infra.redis_client import is_cluster, queue_script
from infra.settings import Settings
from infra.tasks import cancel_requested

log = logging.getLogger(__name__)

_DRAIN: Final = 10_000  # settlements taken per lease per pipeline
# KEYS: the settlement lists of every lease drained; ARGV: 1 at most this many from each.
# Replies one list per key (empty when none), in KEYS order.
_DRAIN_LUA: Final = """
local taken = {}
for i, key in ipairs(KEYS) do
  taken[i] = redis.call('LPOP', key, ARGV[1]) or {}
end
return taken
"""
_TOP_UP_GAP_S: Final = 0.02  # least time between two urgent top-ups: Redis never sees a busy loop


def renewal_spread(campaign_id: str) -> float:
    """A campaign's own share, in [0.5, 1), of the longest time between lease renewals.

    Leases opened together (every campaign, when a process starts) would otherwise all be
    renewed by the same refresh: at a thousand campaigns a pipeline of a thousand lease
    scripts, whose replies held the event loop for over 10 ms every quarter of a lease's life.
    Spread, each refresh renews a few. From the id, not a random draw: the pacing draws of a
    seeded keeper stay as they were."""
    return 0.5 + zlib.crc32(campaign_id.encode()) / 2**33


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Reservation:
    """Money set aside for one bid: what its tracking links must name to be charged."""

    keeper_id: Final[str]
    day: Final[str]
    amount_micros: Final[int]

    def __init__(self, keeper_id: str, day: str, amount_micros: int) -> None:
        self.keeper_id = keeper_id
        self.day = day
        self.amount_micros = amount_micros


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Spent:
    """Micros charged to a campaign: over its life, and on its current day."""

    total: Final[int]
    today: Final[int]

    def __init__(self, total: int, today: int) -> None:
        self.total = total
        self.today = today


def new_keeper_id() -> str:
    """Unique per process start; the pid in it tells operators which process holds a lease."""
    return f"{os.getpid()}-{secrets.token_hex(3)}"


class BudgetKeeper:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        keeper_id: str | None = None,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keeper_id = keeper_id or new_keeper_id()
        self._redis = redis
        self._book = LeaseBook(redis, keep_records_s=settings.notice_ttl_s)
        self._drain = redis.register_script(_DRAIN_LUA)
        self._cluster = is_cluster(redis)  # scripts and MGET per campaign: one slot each
        self._lease_bp = settings.budget_lease_bp
        self._ttl_ms = round(settings.budget_lease_ttl_s * 1000)
        self._renew_every_s = settings.budget_lease_ttl_s / 4
        # Past this long without a renewal the lease may have lapsed in Redis (this process
        # cut off from it): its money may be someone else's, so no more bids on it.
        self._trust_s = settings.budget_lease_ttl_s * 0.75
        self._timeout_s = settings.notice_timeout_s
        self._metrics = metrics or Metrics()
        self._random = (rng or random.Random()).random
        self._clock = clock
        self._accounts: dict[str, Account] = {}  # campaign id -> its account for today
        self._winding: dict[tuple[str, str], Account] = {}  # older days, stopped campaigns
        self._pacers: dict[str, PacingController] = {}
        self._probability: dict[str, float] = {}
        self._spent: dict[str, Spent] = {}  # as the last refresh read it
        self._low = asyncio.Event()
        self._lock = asyncio.Lock()

    async def warm_up(self) -> None:
        await self._book.warm_up()
        await self._redis.script_load(_DRAIN_LUA)

    # The bid path: synchronous, no I/O.

    def reserve(
        self, campaign: Campaign, auction_id: str, imp_id: str, price_micros: int
    ) -> Reservation | None:
        """Set aside the most a bid at ``price_micros`` CPM can cost, or None: no bid."""
        account = self._accounts.get(campaign.id)
        if account is None:
            return None
        probability = self._probability.get(campaign.id)
        if probability is not None and probability < 1.0 and self._random() >= probability:
            self._metrics.count("paced_out")
            return None
        amount, now = max_cost_micros(price_micros), self._clock()
        if now - account.renewed_at > self._trust_s:
            return None
        if not account.reserve((auction_id, imp_id), amount, now + self._timeout_s):
            self._metrics.count("budget_refusals")
            self._low.set()
            return None
        if account.available < account.cap // 2:
            self._low.set()
        return Reservation(self.keeper_id, account.day, amount)

    def release(
        self, keeper_id: str, day: str, campaign_id: str, auction_id: str, imp_id: str
    ) -> bool:
        """A loss notice for one of this process's bids; False if the bid is not ours."""
        if keeper_id != self.keeper_id:
            return False
        account = self._account(campaign_id, lease_name(keeper_id, day))
        if account is not None:
            account.release((auction_id, imp_id))
        return True

    def probability(self, campaign_id: str) -> float:
        return self._probability.get(campaign_id, 1.0)

    def account(self, campaign_id: str) -> Account | None:
        """Today's account of a campaign (read-only use: tests, metrics)."""
        return self._accounts.get(campaign_id)

    def _account(self, campaign_id: str, lease: str) -> Account | None:
        account = self._accounts.get(campaign_id)
        if account is not None and account.lease == lease:
            return account
        return self._winding.get((campaign_id, lease))

    # The refresher: one pipeline per refresh.

    async def refresh(self, campaigns: Sequence[Campaign], now: float) -> dict[str, Spent]:
        """Read spend, drain settlements, renew and top up leases, update pacing."""
        async with self._lock:
            mono = self._clock()
            self._expire(mono)
            fresh = self._open_accounts(campaigns, now)
            # The loop answers bids between the steps: at a thousand campaigns each takes
            # about a millisecond, and in one piece they held it past a bid's p99.
            await asyncio.sleep(0)
            orders = self._orders(campaigns, mono, now)
            draining = [*self._accounts.values(), *self._winding.values()]
            spend_keys = []
            for campaign in campaigns:
                day = self._accounts[campaign.id].day  # opened above for today
                spend_keys.append(keys.campaign_spent(campaign.id))
                spend_keys.append(keys.campaign_spent_day(campaign.id, day))
            await asyncio.sleep(0)
            # One MGET and one drain script, not commands per campaign: at a thousand
            # campaigns, per-command client work was a fifth of the bidder's core.
            async with self._redis.pipeline(transaction=False) as pipe:
                if spend_keys and self._cluster:  # an MGET per campaign: one slot each
                    for at in range(0, len(spend_keys), 2):
                        pipe.execute_command("MGET", *spend_keys[at : at + 2])
                elif spend_keys:
                    pipe.mget(spend_keys)
                await self._queue(pipe, draining, fresh, orders)
                replies = await pipe.execute()
            if spend_keys and self._cluster:
                values = [value for pair in replies[: len(campaigns)] for value in pair]
                replies = [values, *replies[len(campaigns) :]]
            values = replies[0] if spend_keys else []
            spent = {
                campaign.id: Spent(int(values[2 * i] or 0), int(values[2 * i + 1] or 0))
                for i, campaign in enumerate(campaigns)
            }
            self._absorb(draining, fresh, orders, replies[1 if spend_keys else 0 :], mono)
            self._spent = spent
            await asyncio.sleep(0)
            self._pace(campaigns, spent, now)
            self._forget()
        return spent

    async def top_up(self) -> None:
        """Drain and top up the accounts running low, without waiting for the refresher."""
        async with self._lock:
            mono = self._clock()
            low = [a for a in self._accounts.values() if a.spending and a.available < a.cap // 2]
            if not low:
                return
            orders = [self._order(account, account.cap) for account in low]
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._queue(pipe, low, [], orders)
                replies = await pipe.execute()
            self._absorb(low, [], orders, replies, mono)

    async def run(self, interval_s: float) -> None:
        """Top up accounts as soon as the bid path finds them low; until cancelled."""
        while not cancel_requested():
            try:
                async with asyncio.timeout(interval_s):
                    await self._low.wait()
            except TimeoutError:
                continue
            self._low.clear()
            try:
                await self.top_up()
            except RedisError as error:
                log.warning("budget top-up failed", extra={"error": str(error)})
            await asyncio.sleep(_TOP_UP_GAP_S)

    async def close(self) -> None:
        """Give back every lease's unreserved money (shutdown); bids in flight keep theirs
        until the lease lapses."""
        async with self._lock:
            accounts = [*self._accounts.values(), *self._winding.values()]
            for account in accounts:
                account.spending = False
            orders = [self._order(account, account.reserved) for account in accounts]
            if not orders:
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._queue(pipe, [], [], orders)
                replies = await pipe.execute()
            self._absorb([], [], orders, replies, self._clock())

    # Bookkeeping behind refresh and top_up.

    def _expire(self, mono: float) -> None:
        ended = sum(account.expire(mono) for account in self._accounts.values())
        ended += sum(account.expire(mono) for account in self._winding.values())
        if ended:
            self._metrics.count("reservations_expired", ended)

    def _cap(self, campaign: Campaign) -> int:
        return campaign.budget_daily_micros * self._lease_bp // 10_000

    def _open_accounts(self, campaigns: Sequence[Campaign], now: float) -> list[Account]:
        """Open today's account of every campaign that has none; wind down the others."""
        fresh = []
        current = {campaign.id for campaign in campaigns}
        for campaign_id in [c for c in self._accounts if c not in current]:
            self._wind_down(self._accounts.pop(campaign_id))
        days: dict[str, str] = {}  # by time zone: campaigns share a few
        for campaign in campaigns:
            day = days.get(campaign.timezone)
            if day is None:
                day = days[campaign.timezone] = budget_day(campaign, now)
            account = self._accounts.get(campaign.id)
            if account is not None and account.day != day:
                self._wind_down(account)
                account = None
            if account is None:
                lease = lease_name(self.keeper_id, day)
                account = self._winding.pop((campaign.id, lease), None)
                if account is None:
                    account = Account(campaign.id, day, lease, 0, 0, 0)
                    account.renew_every_s = self._renew_every_s * renewal_spread(campaign.id)
                    fresh.append(account)
                account.renewed_at = min(account.renewed_at, 0.0)
                self._accounts[campaign.id] = account
            account.cap = self._cap(campaign)
            account.daily_micros = campaign.budget_daily_micros
            account.total_micros = campaign.budget_total_micros
        return fresh

    def _wind_down(self, account: Account) -> None:
        account.spending = False
        self._winding[(account.campaign_id, account.lease)] = account

    def _orders(self, campaigns: Sequence[Campaign], mono: float, now: float) -> list[LeaseOrder]:
        orders = []
        for campaign in campaigns:
            account = self._accounts[campaign.id]
            account.spending = self._may_spend(campaign, now)
            target = account.cap if account.spending else account.reserved
            if self._due(account, target, mono):
                orders.append(self._order(account, target))
        for account in self._winding.values():
            if not account.reserved:
                orders.append(self._order(account, 0, ttl_ms=0))  # nothing in flight: let go
            elif self._due(account, account.reserved, mono):
                orders.append(self._order(account, account.reserved))
        return orders

    def _may_spend(self, campaign: Campaign, now: float) -> bool:
        spent = self._spent.get(campaign.id)
        if spent is not None and (
            spent.today >= campaign.budget_daily_micros
            or spent.total >= campaign.budget_total_micros
        ):
            return False
        return may_bid_at(campaign, now) and self._probability.get(campaign.id, 1.0) > 0

    def _due(self, account: Account, target: int, mono: float) -> bool:
        """Whether the lease needs an order now: to top up, to give back, or to be renewed."""
        if mono - account.renewed_at >= account.renew_every_s:
            return True
        if account.spending:
            return account.available < account.cap // 2
        return account.granted - account.charged > target

    def _order(self, account: Account, target: int, ttl_ms: int | None = None) -> LeaseOrder:
        return LeaseOrder(
            account.campaign_id, account.lease, account.day, target, account.cap,
            account.daily_micros, account.total_micros,
            self._ttl_ms if ttl_ms is None else ttl_ms,
        )  # fmt: skip

    async def _queue(
        self,
        pipe: Pipeline,
        draining: Iterable[Account],
        fresh: Iterable[Account],
        orders: Iterable[LeaseOrder],
    ) -> None:
        draining = list(draining)
        if draining and self._cluster:  # a drain per lease: one slot each
            for account in draining:
                key = keys.lease_resolved(account.campaign_id, account.lease)
                await queue_script(pipe, self._drain, [key], [_DRAIN])
        elif draining:
            await self._drain(
                keys=[keys.lease_resolved(a.campaign_id, a.lease) for a in draining],
                args=[_DRAIN],
                client=pipe,
            )
        for account in fresh:
            # A new account starts from the lease's charges in Redis: nothing to drain twice.
            pipe.delete(keys.lease_resolved(account.campaign_id, account.lease))
        for order in orders:
            await self._book.queue(pipe, order)

    def _absorb(
        self,
        draining: Sequence[Account],
        fresh: Sequence[Account],
        orders: Sequence[LeaseOrder],
        replies: Sequence[object],
        mono: float,
    ) -> None:
        if draining and self._cluster:  # one reply per drained lease, each a list of one
            taken = [
                reply[0] if isinstance(reply, list) else [] for reply in replies[: len(draining)]
            ]
            replies = [taken, *replies[len(draining) :]]
        if draining:
            drained = replies[0]
            assert isinstance(drained, list)
            for account, settled in zip(draining, drained, strict=True):
                self._settle(account, settled)
        fresh_leases = {(account.campaign_id, account.lease) for account in fresh}
        grants = replies[bool(draining) + len(fresh) :]
        for order, reply in zip(orders, grants, strict=True):
            owner = self._account(order.campaign_id, order.lease)
            if owner is None:
                continue
            grant = grant_of(reply)
            owner.granted = grant.granted
            if (order.campaign_id, order.lease) in fresh_leases:
                owner.charged = grant.charged
            owner.renewed_at = mono if order.ttl_ms else float("inf")
            if grant.lapsed:
                self._metrics.count("lease_lapses")
                log.warning("budget lease lapsed", extra={"lease": order.lease})

    def _settle(self, account: Account, settled: object) -> None:
        if not isinstance(settled, list):
            return
        late = 0
        for entry in settled:
            text = entry.decode() if isinstance(entry, bytes) else str(entry)
            amount, imp_id, auction_id = text.split("\x1f", 2)
            if not account.settle((auction_id, imp_id), int(amount)) and int(amount):
                late += 1
        if late:
            self._metrics.count("late_settlements", late)

    def _pace(self, campaigns: Sequence[Campaign], spent: dict[str, Spent], now: float) -> None:
        for campaign in campaigns:
            if campaign.pacing is not Pacing.EVEN:
                self._probability.pop(campaign.id, None)
                continue
            controller = self._pacers.setdefault(campaign.id, PacingController())
            money = spent[campaign.id]
            budget = min(
                campaign.budget_daily_micros,
                campaign.budget_total_micros - (money.total - money.today),
            )
            self._probability[campaign.id] = controller.update(
                seconds_into_day(campaign, now), money.today, budget
            )

    def _forget(self) -> None:
        """Drop wound-down accounts whose lease has been let go."""
        for key in [k for k, a in self._winding.items() if a.renewed_at == float("inf")]:
            del self._winding[key]
        for campaign_id in [c for c in self._pacers if c not in self._accounts]:
            del self._pacers[campaign_id]
            self._probability.pop(campaign_id, None)
