"""Leases on budgets in Redis, the accounts a process reserves bids from, the campaign fields."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from dsp.budget.accounts import Account
from dsp.budget.leases import LeaseBook, LeaseOrder, budget_view
from dsp.campaigns.model import Billing, Pacing
from dsp.campaigns.validation import campaign_from_dict
from dsp.errors import InvalidCampaign
from infra import keys
from tests.dsp.factories import campaign

DAY = "20261122"
DAILY = 1_000_000
CAP = DAILY // 100


def order(lease: str, target: int = CAP, *, ttl_ms: int = 60_000, day: str = DAY) -> LeaseOrder:
    return LeaseOrder("c1", lease, day, target, CAP, DAILY, 3 * DAILY, ttl_ms)


async def test_a_lease_holds_at_most_one_percent_of_the_daily_budget(redis: Redis) -> None:
    book = LeaseBook(redis, keep_records_s=3600)
    grant = await book.order(order("p1@" + DAY, target=10 * CAP))
    assert (grant.granted, grant.charged, grant.lapsed) == (CAP, 0, False)
    # Asking again tops up to the cap, never beyond it.
    assert (await book.order(order("p1@" + DAY))).granted == CAP


async def test_leases_never_hold_more_than_the_budget_leaves(redis: Redis) -> None:
    book = LeaseBook(redis, keep_records_s=3600)
    await redis.set(keys.campaign_spent_day("c1", DAY), DAILY - CAP - CAP // 2)
    await redis.set(keys.campaign_spent("c1"), DAILY - CAP - CAP // 2)
    first = await book.order(order("p1@" + DAY))
    second = await book.order(order("p2@" + DAY))
    third = await book.order(order("p3@" + DAY))
    assert [first.granted, second.granted, third.granted] == [CAP, CAP // 2, 0]
    view = await budget_view(redis, "c1", DAY)
    assert view.spent_day + view.held(DAY) == DAILY


async def test_giving_back_makes_money_available_to_other_leases(redis: Redis) -> None:
    book = LeaseBook(redis, keep_records_s=3600)
    await redis.set(keys.campaign_spent_day("c1", DAY), DAILY - CAP)
    assert (await book.order(order("p1@" + DAY))).granted == CAP
    assert (await book.order(order("p2@" + DAY))).granted == 0
    assert (await book.order(order("p1@" + DAY, target=CAP // 4))).granted == CAP // 4
    assert (await book.order(order("p2@" + DAY))).granted == CAP - CAP // 4


async def test_the_total_budget_counts_leases_of_every_day(redis: Redis) -> None:
    book = LeaseBook(redis, keep_records_s=3600)
    await redis.set(keys.campaign_spent("c1"), 3 * DAILY - CAP)
    assert (await book.order(order("p1@20261121", day="20261121"))).granted == CAP
    # A new day has its whole daily budget, but the total has nothing left to lend.
    assert (await book.order(order("p1@" + DAY))).granted == 0


async def test_a_lapsed_lease_gives_its_unspent_part_back_and_is_told_so(redis: Redis) -> None:
    book = LeaseBook(redis, keep_records_s=3600)
    await redis.set(keys.campaign_spent_day("c1", DAY), DAILY - CAP)
    assert (await book.order(order("dead@" + DAY, ttl_ms=200))).granted == CAP
    assert (await book.order(order("alive@" + DAY))).granted == 0
    await asyncio.sleep(0.3)
    view = await budget_view(redis, "c1", DAY)
    assert not view.live("dead@" + DAY) and view.held(DAY) == 0
    assert (await book.order(order("alive@" + DAY))).granted == CAP
    # The lapsed lease, renewed late, does not get back what it lost.
    late = await book.order(order("dead@" + DAY))
    assert late.lapsed and late.granted == late.charged == 0


def test_an_account_reserves_only_what_it_holds_and_gives_back_on_loss() -> None:
    account = Account("c1", DAY, "p1@" + DAY, cap=CAP, daily_micros=DAILY, total_micros=DAILY)
    account.granted = 5000
    assert account.reserve(("a1", "1"), 3000, deadline=10.0)
    assert not account.reserve(("a2", "1"), 3000, deadline=10.0)
    assert account.reserve(("a1", "1"), 3000, deadline=10.0)  # the same imp: one reservation
    assert account.available == 2000
    assert account.release(("a1", "1")) and account.available == 5000
    assert not account.release(("a1", "1"))


def test_a_settled_win_books_its_price_and_a_late_one_is_told_apart() -> None:
    account = Account("c1", DAY, "p1@" + DAY, cap=CAP, daily_micros=DAILY, total_micros=DAILY)
    account.granted = 10_000
    account.reserve(("a1", "1"), 3000, deadline=1.0)
    account.reserve(("a2", "1"), 3000, deadline=2.0)
    assert account.settle(("a1", "1"), 1200)
    assert account.expire(now=2.0) == 1  # a2 timed out: counted as lost
    assert (account.reserved, account.charged, account.available) == (0, 1200, 8800)
    assert not account.settle(("a2", "1"), 2500)  # its win came after all: late
    assert account.available == 6300


def test_campaigns_say_which_notice_bills_and_how_to_pace() -> None:
    plain = campaign_from_dict(campaign("c1"))
    assert (plain.billing, plain.pacing) == (Billing.NURL, Pacing.ASAP)
    chosen = campaign_from_dict({**campaign("c1"), "billing": "burl", "pacing": "even"})
    assert (chosen.billing, chosen.pacing) == (Billing.BURL, Pacing.EVEN)
    for field, value in (("billing", "cpc"), ("pacing", "fast")):
        with pytest.raises(InvalidCampaign) as refused:
            campaign_from_dict({**campaign("c1"), field: value})
        assert refused.value.field == field
