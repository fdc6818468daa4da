"""The single-server tests of the money and tracking paths, run again on the cluster.

The same assertions hold on both: a win charged once, a clearing price above the bid cut to
the bid, forged notices refused, impressions and clicks counted once (the device's side in
its own slot: frequency caps, the click-rate rule), events carrying what reports count by,
budget leases, reservations settled by win and loss notices, billing notices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import create_app
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp import test_budget, test_tracking

pytestmark = pytest.mark.cluster
Client = TestClient[Request, Application]
TRACKING: list[Callable[[Client, Redis], Awaitable[None]]] = [
    test_tracking.test_the_same_win_notice_charges_once,
    test_tracking.test_a_clearing_price_above_our_bid_is_charged_at_our_bid,
    test_tracking.test_notices_without_price_or_with_a_forged_field_charge_nothing,
    test_tracking.test_impression_pixel_counts_once,
    test_tracking.test_click_redirects_once_counted_and_a_tampered_click_is_refused,
    test_tracking.test_impressions_count_against_the_frequency_cap,
    test_tracking.test_win_imp_and_click_events_carry_what_reports_count_by,
    test_tracking.test_clicks_without_impression_from_bots_or_too_often_are_invalid,
    test_tracking.test_loss_notices_reach_the_stream_in_a_batch,
]
BUDGET: list[Callable[[Redis, str], Awaitable[None]]] = [
    test_budget.test_a_bid_reserves_its_highest_cost_and_a_settled_win_books_its_price,
    test_budget.test_bids_stop_when_the_money_set_aside_is_used_and_resume_on_loss_notices,
    test_budget.test_the_same_billing_notice_charges_once_and_the_win_notice_never,
    test_budget.test_a_signed_notice_naming_a_bid_never_reserved_is_refused,
]


@pytest.fixture
async def cluster_dsp_client(cluster_redis: Redis, cluster_url: str) -> AsyncIterator[Client]:
    port = free_port()
    settings = Settings(
        redis_url=cluster_url, port=port, signing_key=b"test-key", campaign_refresh_s=0.05
    )
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1", port=port))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize("test", TRACKING, ids=lambda test: test.__name__)
async def test_tracking_on_a_cluster(
    test: Callable[[Client, Redis], Awaitable[None]],
    cluster_dsp_client: Client,
    cluster_redis: Redis,
) -> None:
    await test(cluster_dsp_client, cluster_redis)


@pytest.mark.parametrize("test", BUDGET, ids=lambda test: test.__name__)
async def test_budget_on_a_cluster(
    test: Callable[[Redis, str], Awaitable[Any]], cluster_redis: Redis, cluster_url: str
) -> None:
    await test(cluster_redis, cluster_url)
