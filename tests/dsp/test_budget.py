"""The money path in one bidder process: reservations, notices, billing modes, time zones."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import zoneinfo
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import BUDGET, LIVE, METRICS, create_app
from dsp.budget.keeper import BudgetKeeper
from dsp.budget.leases import budget_view
from dsp.campaigns.store import save_campaigns
from dsp.campaigns.validation import campaign_from_dict
from dsp.tracking.links import LinkSigner, Notice
from infra import keys
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.factories import bid_request, campaign, store_profile

Client = TestClient[Request, Application]


@asynccontextmanager
async def bidder(redis_url: str, **settings: Any) -> AsyncIterator[Client]:
    """The bidder on a loopback port with its own settings (the refresher is driven by hand)."""
    port = free_port()
    config = Settings(
        redis_url=redis_url, port=port, signing_key=b"test-key", campaign_refresh_s=3600,
        **settings,
    )  # fmt: skip
    client = TestClient(TestServer(create_app(config), host="127.0.0.1", port=port))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def seed(client: Client, redis: Redis, *campaigns: dict[str, Any]) -> None:
    await save_campaigns(redis, campaigns)
    await client.app[LIVE].refresh(redis)
    await store_profile(redis)


async def bid(client: Client, auction: str = "auction-1") -> dict[str, Any] | None:
    response = await client.post("/openrtb2/bid", data=orjson.dumps(bid_request(id=auction)))
    if response.status == 204:
        return None
    assert response.status == 200
    answer: dict[str, Any] = (await response.json())["seatbid"][0]["bid"][0]
    return answer


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def day_of(placed: dict[str, Any]) -> str:
    """The budget day a bid's links name."""
    return dict(parse_qsl(urlsplit(str(placed["nurl"])).query))["y"]


def local(url: str, price: str = "2.50") -> str:
    parts = urlsplit(url.replace("${AUCTION_PRICE}", price).replace("${AUCTION_LOSS}", "102"))
    return f"{parts.path}?{parts.query}"


async def notice(client: Client, url: str) -> dict[str, Any]:
    response = await client.get(local(url))
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def spent(redis: Redis, campaign_id: str = "c1") -> int:
    return int(await redis.get(keys.campaign_spent(campaign_id)) or 0)


async def test_a_bid_reserves_its_highest_cost_and_a_settled_win_books_its_price(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url) as client:
        await seed(client, redis, campaign("c1", cpm_micros=4_000_000))
        placed = await bid(client)
        assert placed is not None
        account = client.app[BUDGET].account("c1")
        assert account is not None and account.reserved == 4000
        assert (await notice(client, placed["nurl"]))["charged_micros"] == 2500
        await client.app[LIVE].refresh(redis)  # the settlement reaches the bidding process
        assert (account.reserved, account.charged) == (0, 2500)


async def test_bids_stop_when_the_money_set_aside_is_used_and_resume_on_loss_notices(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url) as client:
        # A lease holds 1 % of the daily budget: 10,000 micros, two bids at 4,000 each.
        await seed(client, redis, campaign("c1", cpm_micros=4_000_000, budget_micros=1_000_000))
        placed = [await bid(client, f"a{i}") for i in range(4)]
        assert [b is not None for b in placed] == [True, True, False, False]
        first = placed[0]
        assert first is not None and "${AUCTION_LOSS}" in first["lurl"]
        response = await client.get(local(first["lurl"]))
        assert response.status == 204
        assert await bid(client, "a5") is not None
        assert await spent(redis) == 0


async def test_the_same_billing_notice_charges_once_and_the_win_notice_never(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url) as client:
        await seed(client, redis, {**campaign("c1", cpm_micros=4_000_000), "billing": "burl"})
        placed = await bid(client)
        assert placed is not None
        wins = [await notice(client, placed["nurl"]) for _ in range(10)]
        assert [w["charged_micros"] for w in wins] == [0] * 10
        assert [w["duplicate"] for w in wins] == [False] + [True] * 9
        assert await spent(redis) == 0
        bills = [await notice(client, placed["burl"]) for _ in range(10)]
        assert [b["charged_micros"] for b in bills] == [2500] + [0] * 9
        assert await spent(redis) == 2500
        metrics = client.app[METRICS].counters
        assert (metrics["wins"], metrics["bills"], metrics["duplicate_bills"]) == (1, 1, 9)


async def test_a_signed_notice_naming_a_bid_never_reserved_is_refused(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url) as client:
        await seed(client, redis, campaign("c1", cpm_micros=4_000_000))
        placed = await bid(client)
        assert placed is not None
        fields = dict(parse_qsl(urlsplit(placed["nurl"]).query))
        signer = LinkSigner(b"test-key", str(client.make_url("")))
        for keeper, day in (("no-such-process", fields["y"]), (fields["k"], "20000101")):
            forged = Notice(
                "auction-9", "1", "c1", "cr1", "", 4_000_000, "USD", int(time.time() * 1000),
                keeper, day, "nurl",
            )  # fmt: skip
            response = await client.get(local(signer.links(forged).win))
            assert response.status == 400
            assert (await response.json())["field"] == "k"
        assert await spent(redis) == 0
        assert await redis.xlen(keys.EVENTS) == 0


async def test_a_win_after_the_reservation_expired_is_charged_and_reported_late(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url, notice_timeout_s=0.2, budget_lease_ttl_s=5) as client:
        await seed(client, redis, campaign("c1", cpm_micros=4_000_000))
        placed = await bid(client)
        assert placed is not None
        account = client.app[BUDGET].account("c1")
        assert account is not None and account.reserved == 4000
        await asyncio.sleep(0.3)
        await client.app[LIVE].refresh(redis)
        assert account.reserved == 0  # timed out: counted as lost, the money is free again
        answer = await notice(client, placed["nurl"])
        assert (answer["charged_micros"], answer["late"]) == (2500, True)
        assert await spent(redis) == 2500
        await client.app[LIVE].refresh(redis)
        assert account.charged == 2500
        assert client.app[METRICS].counters["late_settlements"] == 1
        stats = await redis.hgetall(keys.campaign_stats("c1"))
        late = [v for k, v in stats.items() if text(k).endswith("|late")]
        assert late == [b"1"]


async def test_a_loss_for_another_process_s_bid_is_queued_for_it(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url) as one, bidder(redis_url) as other:
        await seed(one, redis, campaign("c1", cpm_micros=4_000_000))
        await other.app[LIVE].refresh(redis)
        placed = await bid(one)
        assert placed is not None
        assert (await other.get(local(placed["lurl"]))).status == 204
        account = one.app[BUDGET].account("c1")
        assert account is not None and account.reserved == 4000
        await one.app[LIVE].refresh(redis)
        assert account.reserved == 0


async def test_one_process_never_charges_beyond_the_budget(redis: Redis, redis_url: str) -> None:
    budget = 50_000
    async with bidder(redis_url, budget_lease_bp=1000) as client:
        await seed(client, redis, campaign("c1", cpm_micros=1_000_000, budget_micros=budget))
        day = ""
        refused = 0  # in a row: once the lease is used, the refresher settles and tops up
        for auction in range(200):
            placed = await bid(client, f"a{auction}")
            if placed is None:
                refused += 1
                if refused > 2:
                    break
                await client.app[LIVE].refresh(redis)
                continue
            refused, day = 0, day_of(placed)
            # Every win is charged at our full bid: the worst case for the budget.
            assert (await notice(client, local(placed["nurl"], "1.00")))["charged_micros"] == 1000
        assert await spent(redis) == budget
        view = await budget_view(redis, "c1", day)
        assert view.spent_day == budget and view.held() == 0


async def test_a_win_beyond_the_budget_is_recorded_as_overdelivery_not_charged(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url) as client:
        await seed(client, redis, campaign("c1", cpm_micros=4_000_000, budget_micros=1_000_000))
        placed = await bid(client)
        assert placed is not None
        day = day_of(placed)
        # As if the bid's lease had lapsed and its money been spent elsewhere meanwhile.
        await redis.set(keys.campaign_spent_day("c1", day), 999_000)
        answer = await notice(client, placed["nurl"])
        assert (answer["charged_micros"], answer["overdelivered_micros"]) == (1000, 1500)
        assert int(await redis.get(keys.campaign_spent_day("c1", day)) or 0) == 1_000_000
        assert await redis.get(keys.campaign_overdelivery("c1", day)) == b"1500"


async def test_the_daily_budget_is_spent_on_the_advertiser_s_day(
    redis: Redis, redis_url: str
) -> None:
    async with bidder(redis_url) as client:
        east = {**campaign("c1", cpm_micros=4_000_000), "timezone": "Pacific/Kiritimati"}
        await seed(client, redis, east)
        placed = await bid(client)
        assert placed is not None
        await notice(client, placed["nurl"])
        day = dt.datetime.now(zoneinfo.ZoneInfo("Pacific/Kiritimati")).strftime("%Y%m%d")
        assert int(await redis.get(keys.campaign_spent_day("c1", day)) or 0) == 2500


async def test_an_even_paced_campaign_far_ahead_of_plan_gives_way(
    redis: Redis, redis_url: str
) -> None:
    # A fixed seed: the 20 pacing draws below are the same every run, so the test is exact.
    async with bidder(redis_url, pacing_seed=7) as client:
        paced = {**campaign("even", cpm_micros=4_000_000), "pacing": "even"}
        await seed(client, redis, paced, campaign("asap", cpm_micros=2_000_000))
        live = client.app[LIVE]
        # The refresher's clock is set to noon UTC, so the plan has half a day still to go.
        noon = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        now, day = noon.timestamp(), noon.strftime("%Y%m%d")
        # The day before, late: the next refresh then starts a new day for the pacer whatever
        # the real time of the refreshes ``seed`` made (after midnight UTC their hour came
        # before noon, and the pacer took 11:59 as the same day continuing).
        await live.refresh(redis, now=now - 13 * 3600)
        # Sixty seconds in which "even" spent a quarter of its daily budget: far too fast.
        await live.refresh(redis, now=now - 60)
        await redis.incrby(keys.campaign_spent_day("even", day), 25_000_000)
        await live.refresh(redis, now=now)
        assert client.app[BUDGET].probability("even") < 0.01
        assert client.app[BUDGET].probability("asap") == 1.0
        winners = [await bid(client, f"a{i}") for i in range(20)]
        assert {w["cid"] for w in winners if w is not None} == {"asap"}


async def test_a_process_cut_off_from_redis_stops_bidding_before_its_lease_can_lapse(
    redis: Redis,
) -> None:
    clock = [100.0]
    settings = Settings(budget_lease_ttl_s=4, notice_timeout_s=1)
    keeper = BudgetKeeper(redis, settings, clock=lambda: clock[0])
    ours = campaign_from_dict(campaign("c1"))
    await keeper.refresh([ours], time.time())
    assert keeper.reserve(ours, "a1", "1", 2_000_000) is not None
    clock[0] += 2.9
    assert keeper.reserve(ours, "a2", "1", 2_000_000) is not None
    clock[0] += 0.2  # three quarters of the lease's life without a renewal: stop
    assert keeper.reserve(ours, "a3", "1", 2_000_000) is None
    await keeper.refresh([ours], time.time())
    assert keeper.reserve(ours, "a3", "1", 2_000_000) is not None


async def test_shutting_down_gives_back_all_but_the_money_of_bids_in_flight(
    redis: Redis,
) -> None:
    keeper = BudgetKeeper(redis, Settings())
    ours = campaign_from_dict(campaign("c1", budget_micros=10_000_000))
    await keeper.refresh([ours], time.time())
    reservation = keeper.reserve(ours, "a1", "1", 2_000_000)
    assert reservation is not None
    view = await budget_view(redis, "c1", reservation.day)
    assert view.held() == 100_000  # 1 % of the daily budget
    await keeper.close()
    view = await budget_view(redis, "c1", reservation.day)
    assert view.held() == reservation.amount_micros == 2000


async def test_leases_opened_together_are_renewed_over_several_refreshes(redis: Redis) -> None:
    clock = [100.0]
    settings = Settings(budget_lease_ttl_s=40, notice_timeout_s=1)  # renewed within 5-10 s
    keeper = BudgetKeeper(redis, settings, clock=lambda: clock[0])
    ours = [campaign_from_dict(campaign(f"c{i}")) for i in range(40)]
    await keeper.refresh(ours, time.time())

    async def expiries() -> list[float]:
        scores = [
            await redis.zscore(keys.campaign_lease_expiry(c.id), _lease(keeper, c.id)) for c in ours
        ]
        return [float(score or 0) for score in scores]

    def renewed(before: list[float], after: list[float]) -> int:
        return sum(b > a for a, b in zip(before, after, strict=True))

    opened = await expiries()
    clock[0] += 4.9  # under half the longest gap: nothing is due
    await asyncio.sleep(0.005)  # lease expiries are in Redis milliseconds
    await keeper.refresh(ours, time.time())
    assert renewed(opened, early := await expiries()) == 0
    clock[0] += 2.6  # 7.5 s: in the middle of the spread, some are due, not all
    await asyncio.sleep(0.005)
    await keeper.refresh(ours, time.time())
    middle = await expiries()
    assert 5 <= renewed(early, middle) <= 35
    clock[0] += 2.6  # past the longest gap: every lease has been renewed
    await asyncio.sleep(0.005)
    await keeper.refresh(ours, time.time())
    assert renewed(opened, await expiries()) == len(ours)


def _lease(keeper: BudgetKeeper, campaign_id: str) -> str:
    account = keeper.account(campaign_id)
    assert account is not None
    return account.lease
