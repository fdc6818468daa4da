"""The live campaign view of one bidder process, kept fresh by a background task.

The task polls a version counter (one small GET) and rebuilds the index only when
campaigns changed; it also re-reads spend so campaigns whose budget is used up stop
bidding. Requests only ever read the current ``LiveCampaigns`` attributes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from dmp.taxonomy import Taxonomy
from dsp.campaigns.index import CampaignIndex
from dsp.campaigns.model import Campaign
from dsp.campaigns.store import campaigns_version, load_campaigns, spent_micros

log = logging.getLogger(__name__)


class LiveCampaigns:
    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.version = -1
        self.campaigns: list[Campaign] = []
        self.index = CampaignIndex.build([], taxonomy)
        self.blocked_lines = 0  # lines of campaigns that must not bid now

    async def refresh(self, redis: Redis, now: float | None = None) -> None:
        version = await campaigns_version(redis)
        if version != self.version:
            version, campaigns = await load_campaigns(redis)
            # Built off to the side and swapped in whole: a request sees old or new, not half.
            self.index = CampaignIndex.build(campaigns, self.taxonomy)
            self.campaigns, self.version = campaigns, version
            log.info("campaigns loaded", extra={"version": version, "lines": len(self.index.lines)})
        await self._refresh_budgets(redis, now)

    async def _refresh_budgets(self, redis: Redis, now: float | None) -> None:
        day = time.strftime("%Y%m%d", time.gmtime(time.time() if now is None else now))
        active = [c for c in self.campaigns if c.active]
        spent = await spent_micros(redis, [c.id for c in active], day)
        exhausted = [
            c.id
            for c in active
            if spent[c.id][0] >= c.budget_total_micros or spent[c.id][1] >= c.budget_daily_micros
        ]
        self.blocked_lines = self.index.lines_of(exhausted)

    async def run(self, redis: Redis, interval_s: float) -> None:
        """Refresh until cancelled; Redis outages are logged and retried, never fatal."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh(redis)
            except RedisError as error:
                log.warning("campaign refresh failed", extra={"error": str(error)})
