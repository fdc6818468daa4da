"""Failover under load: ``kill -9`` of the master holding a campaign's money.

A bidder on a 3-master, 3-replica cluster takes bid requests at a bounded rate; every bid's
win notice is sent and retried until acknowledged, as an exchange does. Two seconds in, the
master serving the campaign's slot is killed. The bidder keeps answering inside tmax (no
bids for the slots of the dead master meanwhile), comes back to bidding by itself once the
replica is promoted, and the money charged is exactly one clearing price per acknowledged
win: none lost, none doubled. Events (the stream appended after the charge) that a failover
lost are counted and printed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from dsp.app import LIVE, METRICS, TRACKING
from dsp.campaigns.store import save_campaigns
from dsp.serve import Worker, start_worker
from infra import keys
from infra.cluster import LocalCluster
from infra.embedded_redis import free_port
from infra.redis_client import redis_client
from infra.settings import Settings
from tests.cluster.exchange import CLEARING_MICROS, run_load
from tests.dsp.factories import campaign, store_profile

pytestmark = pytest.mark.cluster
SEGMENT = "interest.automotive.suv"
TMAX_MS = 100
QPS = 120


@pytest.fixture(scope="module")
def doomed_cluster() -> Iterator[LocalCluster]:
    """A cluster of its own: this test kills one of its masters."""
    cluster = LocalCluster(masters=3, replicas=1, node_timeout_ms=1000)
    with cluster:
        yield cluster


@pytest.fixture
async def redis(doomed_cluster: LocalCluster) -> AsyncIterator[Redis]:
    client = redis_client(doomed_cluster.url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


def campaign_on_another_master(cluster: LocalCluster) -> str:
    """A campaign id whose money slot is not served by the node the URL names."""
    for number in range(100):
        campaign_id = f"c{number}"
        slot = key_slot(keys.campaign_spent(campaign_id).encode())
        if cluster.master_of_slot(slot).port != cluster.nodes[0].port:
            return campaign_id
    raise AssertionError("no campaign id off the first master")


async def test_a_master_killed_under_load_costs_no_bids_beyond_its_slots_and_no_money(
    doomed_cluster: LocalCluster, redis: Redis
) -> None:
    campaign_id = campaign_on_another_master(doomed_cluster)
    money_slot = key_slot(keys.campaign_spent(campaign_id).encode())
    victim = doomed_cluster.master_of_slot(money_slot)
    ifas = [str(uuid.UUID(int=n + 1)).upper() for n in range(60)]
    for ifa in ifas:
        await store_profile(redis, ifa, tags=(SEGMENT,))
    await save_campaigns(redis, [campaign(campaign_id, tags=SEGMENT, budget_micros=1_000_000_000)])
    # The load shares this event loop: shed past 30 ms of lag, not the default 5 ms, so the
    # generator's own work does not turn the bids counted below into 204s.
    settings = Settings(
        redis_url=doomed_cluster.url, port=free_port(), signing_key=b"test-key",
        campaign_refresh_s=0.1, shed_lag_ms=30,
    )  # fmt: skip
    worker: Worker = await start_worker(settings)
    try:
        await worker.app[LIVE].refresh(redis)
        await asyncio.sleep(0.3)  # the first lease granted
        # Warm up: the cluster client's connections to every node made before the clock runs.
        warm_up = await run_load(
            settings.port, ifas, qps=200, duration_s=0.5, tmax_ms=TMAX_MS, auction_prefix="warm"
        )
        load = asyncio.create_task(
            run_load(settings.port, ifas, qps=QPS, duration_s=9.0, tmax_ms=TMAX_MS)
        )
        await asyncio.sleep(2.0)
        killed_at = time.monotonic()
        await asyncio.to_thread(doomed_cluster.kill, victim)
        await asyncio.to_thread(doomed_cluster.wait_for_slot, money_slot, victim.port, 20.0)
        failover_s = time.monotonic() - killed_at
        tally = await load
        ledger = worker.app[TRACKING].ledger
        counters = worker.app[METRICS].counters
    finally:
        await worker.stop()

    # Every request answered, inside tmax (a little slack for this shared machine's scheduler).
    answers = tally.answers
    assert len(answers) == int(QPS * 9.0)
    assert all(answer.status in (200, 204) for answer in answers)
    worst_ms = max(answer.latency_ms for answer in answers)
    assert worst_ms < TMAX_MS + 50, worst_ms
    # Bids before the kill and again after the promotion, without restarting the bidder.
    assert tally.statuses(0.5, 2.0).get(200, 0) > 0.8 * 1.5 * QPS
    after = 2.0 + failover_s + 1.0
    late = tally.statuses(after, 9.0)
    assert late.get(200, 0) > 0.8 * sum(late.values()), late

    # Money: one clearing price per acknowledged win, read through a new client (the
    # promoted replica serves the slot now).
    fresh = redis_client(doomed_cluster.url)
    try:
        spent = int(await fresh.get(keys.campaign_spent(campaign_id)) or 0)
        stream: list[tuple[bytes, dict[bytes, bytes]]] = await fresh.xrange(keys.EVENTS)  # type: ignore[assignment]
    finally:
        await fresh.aclose()
    assert tally.wins_acknowledged > 300
    assert spent == (tally.wins_acknowledged + warm_up.wins_acknowledged) * CLEARING_MICROS
    # Counted once per (auction, imp), and any doubled by a retried append shown.
    wins = [
        orjson.loads(fields[b"e"])
        for _, fields in stream
        if b'"type":"win"' in fields.get(b"e", b"")
    ]
    win_events = len({(event["auction"], event["imp"]) for event in wins})
    doubled = len(wins) - win_events
    acknowledged = tally.wins_acknowledged + warm_up.wins_acknowledged
    lost = acknowledged - win_events
    print(
        f"\nfailover {failover_s:.2f} s; answers {len(answers)}, worst {worst_ms:.1f} ms; "
        f"statuses {tally.statuses(0, 9.0)}; wins acknowledged {tally.wins_acknowledged} "
        f"(attempts {tally.win_attempts}, retried {tally.win_failures}, refused "
        f"{tally.wins_refused}); spent {spent} micros; win events {win_events} "
        f"(lost {lost}, doubled {doubled}, ledger counted {ledger.events_lost}); charges not "
        f"replicated "
        f"{counters['charges_not_replicated']}; redis errors "
        f"{counters['redis_errors']}, timeouts {counters['timeouts']}"
    )
    assert tally.wins_refused == 0
    # An event is appended after its charge: lost when the append failed (the ledger counts
    # those), when the charge was not confirmed in time (a 503: the retry finds it charged
    # and appends nothing), or when the stream's master died before replicating it (Redis
    # replicates asynchronously: the last writes before a crash, a few at this rate).
    retried = sum(tally.win_failures.values())
    # Money notices' appends wait for a replica too, but the cluster spec is plain that a
    # failover can still lose a few acknowledged writes (WAIT narrows the window, it does not
    # close it): up to 1 % of the wins here, on top of the appends counted as lost; printed.
    assert 0 <= lost <= ledger.events_lost + retried + max(5, acknowledged // 100)
    # An append is one script that marks it in the stream's slot, so the client's retry of
    # one whose reply was lost adds nothing (CI once saw 13 doubled by bare XADDs).
    assert doubled == 0
