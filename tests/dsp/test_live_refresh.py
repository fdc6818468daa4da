"""The refresher's rhythm: campaign changes every poll, budget state every few polls."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from dmp.taxonomy import Taxonomy
from dsp.campaigns.live import LiveCampaigns
from dsp.campaigns.store import save_campaigns
from tests.dsp.factories import campaign


class _Counting(LiveCampaigns):
    """Counts the budget-state refreshes (spend, pacing, schedules) the refresher makes."""

    def __init__(self) -> None:
        super().__init__(Taxonomy.default())
        self.state_refreshes = 0

    async def _refresh_state(self, redis: Redis, now: float | None) -> None:
        self.state_refreshes += 1
        await super()._refresh_state(redis, now)


async def test_budget_state_is_refreshed_every_few_polls_and_at_once_after_a_change(
    redis: Redis,
) -> None:
    await save_campaigns(redis, [campaign("c1")])
    live = _Counting()
    await live.refresh(redis)
    assert live.state_refreshes == 1 and [c.id for c in live.campaigns] == ["c1"]
    runner = asyncio.create_task(live.run(redis, interval_s=0.01, budget_every=1000))
    try:
        await asyncio.sleep(0.2)  # about 20 polls, no change: none re-reads the budget state
        assert live.state_refreshes == 1
        await save_campaigns(redis, [campaign("c2")])
        for _ in range(100):
            if live.state_refreshes > 1:
                break
            await asyncio.sleep(0.01)
        # The change was loaded and the budget state read for it at once, not 1000 polls on
        assert live.state_refreshes == 2
        assert sorted(c.id for c in live.campaigns) == ["c1", "c2"]
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    every = _Counting()
    await every.refresh(redis)
    runner = asyncio.create_task(every.run(redis, interval_s=0.01, budget_every=4))
    try:
        await asyncio.sleep(0.4)  # about 40 polls: about 10 budget refreshes, not 40
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert 3 <= every.state_refreshes - 1 <= 12, every.state_refreshes
