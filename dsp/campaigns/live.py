"""The live campaign view of one bidder process, kept fresh by a background task.

The task polls a version counter (one small GET) and rebuilds the index only when
campaigns changed; it also re-reads spend and the clock, so campaigns whose budget is used
up, or that are outside their dates, daypart or quiet hours, stop bidding. Requests only
ever read the current ``LiveCampaigns`` attributes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from dmp.taxonomy import Taxonomy
from dsp.bidder.decide import Moment
from dsp.campaigns.index import CampaignIndex
from dsp.campaigns.model import Campaign
from dsp.campaigns.schedule import cap_field, may_bid_at
from dsp.campaigns.store import campaigns_version, load_campaigns, spent_micros

log = logging.getLogger(__name__)


class LiveCampaigns:
    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.version = -1
        self.campaigns: list[Campaign] = []
        self.by_id: dict[str, Campaign] = {}
        self.index = CampaignIndex.build([], taxonomy)
        self.moment = Moment()

    async def refresh(self, redis: Redis, now: float | None = None) -> None:
        version = await campaigns_version(redis)
        if version != self.version:
            version, campaigns = await load_campaigns(redis)
            # Built off to the side and swapped in whole: a request sees old or new, not half.
            self.index = CampaignIndex.build(campaigns, self.taxonomy)
            self.campaigns, self.version = campaigns, version
            self.by_id = {campaign.id: campaign for campaign in campaigns}
            log.info("campaigns loaded", extra={"version": version, "lines": len(self.index.lines)})
        await self._refresh_moment(redis, time.time() if now is None else now)

    async def _refresh_moment(self, redis: Redis, now: float) -> None:
        day = time.strftime("%Y%m%d", time.gmtime(now))
        active = [c for c in self.campaigns if c.active]
        spent = await spent_micros(redis, [c.id for c in active], day)
        paused = [
            c.id
            for c in active
            if spent[c.id][0] >= c.budget_total_micros
            or spent[c.id][1] >= c.budget_daily_micros
            or not may_bid_at(c, now)
        ]
        cap_fields = {c.id: field for c in active if (field := cap_field(c, now)) is not None}
        self.moment = Moment(self.index.lines_of(paused), cap_fields)

    async def run(self, redis: Redis, interval_s: float) -> None:
        """Refresh until cancelled; Redis outages are logged and retried, never fatal."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh(redis)
            except RedisError as error:
                log.warning("campaign refresh failed", extra={"error": str(error)})
