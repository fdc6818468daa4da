"""Four bidder processes on one Redis, saturated by the exchange simulator, one killed midway:
no campaign is charged beyond its budget, and what the dead process held comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from adx_mock.population import generate_population
from adx_mock.runner import RunConfig, run
from dmp.ingest import ingest_records
from dmp.taxonomy import Taxonomy
from dsp.budget.leases import BudgetView, LeaseBook, LeaseOrder, budget_view
from dsp.campaigns.store import save_campaigns
from infra import keys
from infra.embedded_redis import free_port
from tests.dsp.factories import banner_creative, campaign

LEASE_TTL_S = 3.0
WORKERS = 4
# (id, CPM, daily budget): a few seconds of saturation use them up.
BUDGETS = (("big", 2_500_000, 1_000_000), ("small", 2_200_000, 600_000))


def campaigns() -> list[dict[str, Any]]:
    creatives = [banner_creative("b1", 300, 250), banner_creative("b2", 320, 50)]
    payloads = []
    for campaign_id, cpm, daily in BUDGETS:
        payload = campaign(campaign_id, cpm_micros=cpm, creatives=creatives)
        payload["budget"] = {"total_micros": 2 * daily, "daily_micros": daily}
        payloads.append(payload)
    return payloads


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def workers_of(supervisor: int) -> list[int]:
    """The bidder processes a ``dsp serve --workers N`` started (not the resource tracker)."""
    return [
        pid
        for pid in children(supervisor)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


@contextmanager
def serve(redis_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DSP_BUDGET_LEASE_TTL_S": str(LEASE_TTL_S),
        "DSP_NOTICE_TIMEOUT_S": "2",
        "DSP_CAMPAIGN_REFRESH_S": "0.05",
        "LOG_LEVEL": "ERROR",
    }
    command = [sys.executable, "-m", "dsp.cli", "serve", "--port", str(port)]
    command += ["--workers", str(WORKERS), "--redis-url", redis_url]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        yield server
    finally:
        with suppress(FileNotFoundError):
            workers = workers_of(server.pid)
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def today() -> str:
    return time.strftime("%Y%m%d", time.gmtime())  # the campaigns' zone is UTC


async def views(redis: Redis) -> dict[str, BudgetView]:
    return {c: await budget_view(redis, c, today()) for c, *_ in BUDGETS}


async def wait_for_leases(redis: Redis, count: int, timeout_s: float = 60.0) -> None:
    """Until every worker holds a lease on every campaign: all of them are serving."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(len(v.leases) >= count for v in (await views(redis)).values()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the bidder processes did not all start")


async def kill_one_midway(
    server: subprocess.Popen[bytes], redis: Redis, after_s: float
) -> dict[str, int]:
    """SIGKILL one worker; what its leases held unspent at that moment, per campaign."""
    await asyncio.sleep(after_s)
    victim = workers_of(server.pid)[0]
    os.kill(victim, signal.SIGKILL)
    held = {}
    for campaign_id, view in (await views(redis)).items():
        (lease,) = [name for name in view.leases if name.startswith(f"{victim}-")]
        assert view.live(lease)
        held[campaign_id] = view.leases[lease].unspent
    return {"pid": victim, **held}


def used_up(views: dict[str, BudgetView]) -> bool:
    """Every budget charged or held by a lease, to within one bid."""
    return all(
        views[campaign_id].spent_day + views[campaign_id].held() > daily - cpm // 1000
        for campaign_id, cpm, daily in BUDGETS
    )


async def saturate(port: int, population: list[dict[str, object]], redis: Redis) -> int:
    """Auctions at a rate the budgets cannot follow, in one-second runs until they are used
    up (at most 20 s); the wins."""
    wins, started = 0, time.monotonic()
    for seed in range(100):
        config = RunConfig(
            dsp_urls=[f"http://127.0.0.1:{port}/openrtb2/bid"], population=population,
            qps=700, duration_s=1, tmax_ms=300, seed=seed, event_timeout_s=3,
        )  # fmt: skip
        wins += (await run(config, progress=False)).wins
        if used_up(await views(redis)) or time.monotonic() - started > 20:
            break
    return wins


async def test_four_bidders_never_overspend_and_a_killed_one_s_money_comes_back(
    redis: Redis, redis_url: str
) -> None:
    taxonomy = Taxonomy.default()
    population = list(generate_population(1000, 5, taxonomy))
    await ingest_records(redis, population, taxonomy=taxonomy, mode="merge", now=None)
    await save_campaigns(redis, campaigns())
    port = free_port()
    with serve(redis_url, port) as server:
        await wait_for_leases(redis, WORKERS)
        killed, wins = await asyncio.gather(
            kill_one_midway(server, redis, after_s=1.5), saturate(port, population, redis)
        )
        after_run = await views(redis)
        # The survivors give back what they hold on shutdown; the dead one's lease lapses.
        server.terminate()
        server.wait(timeout=15)
        await asyncio.sleep(LEASE_TTL_S + 0.5)
        lapsed = await views(redis)
    assert used_up(after_run) and wins > 500  # the simulator did push the bidders that far
    for campaign_id, _, daily in BUDGETS:
        spent = after_run[campaign_id]
        # Never overspent, and nothing was held back by the budget cap either: leases did it.
        assert spent.spent_day <= daily and spent.spent_total <= 2 * daily
        assert await redis.get(keys.campaign_overdelivery(campaign_id, today())) is None
        # What the dead process stranded was at most 1 % of the daily budget...
        assert killed[campaign_id] <= daily // 100
        # ... and once its lease lapsed, the whole rest of the budget can be leased again.
        view = lapsed[campaign_id]
        assert view.held() == 0
        # (A lease as large as the budget, to see all that is left.)
        whole = LeaseOrder(
            campaign_id, f"new@{today()}", today(), daily, daily, daily, 2 * daily, 1000
        )
        assert (
            await LeaseBook(redis, keep_records_s=3600).order(whole)
        ).granted == daily - view.spent_day
