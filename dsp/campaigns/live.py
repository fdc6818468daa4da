"""The live campaign view of one bidder process, kept fresh by a background task.

The task polls a version counter (one small GET) and rebuilds the index only when
campaigns changed; every few polls (and after a change) it also re-reads spend and the
clock, so campaigns whose budget is used up, or that are outside their dates, daypart or
quiet hours, stop bidding. With a budget keeper, the same pipeline drains the keeper's
settlements and renews its leases, and pacing is updated from the spend it read. Requests
only ever read the current ``LiveCampaigns`` attributes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from dmp.audience_registry import targetable
from dmp.taxonomy import Taxonomy
from dsp.bidder.decide import Moment
from dsp.budget.days import budget_day
from dsp.budget.keeper import BudgetKeeper, Spent
from dsp.campaigns.index import CampaignIndex, ClickPredictor
from dsp.campaigns.model import Campaign
from dsp.campaigns.schedule import cap_field, may_bid_at
from dsp.campaigns.store import load_campaigns
from infra import keys
from infra.tasks import cancel_requested

log = logging.getLogger(__name__)


class LiveCampaigns:
    def __init__(self, taxonomy: Taxonomy, budget: BudgetKeeper | None = None) -> None:
        self.taxonomy = taxonomy
        self.budget = budget
        self.version = -1
        self.audiences_version = -1
        self.campaigns: list[Campaign] = []
        self.by_id: dict[str, Campaign] = {}
        self.index = CampaignIndex.build([], taxonomy)
        self.moment = Moment()
        # issue 8: the CTR model target-CPC lines bid with (``dsp.ctr.predictor``); the
        # refresh reloads its file when it changed, so a retrained model needs no restart.
        self.ctr: ClickPredictor | None = None
        # issue 12: the pCVR model target-CPA lines bid with, reloaded the same way; None:
        # target-CPA lines do not bid.
        self.cvr: ClickPredictor | None = None

    async def refresh(self, redis: Redis, now: float | None = None) -> None:
        """Campaigns if they changed, then models, spend, budgets and schedules."""
        await self._reload(redis)
        await self._refresh_state(redis, now)

    async def _reload(self, redis: Redis) -> bool:
        """Rebuild the index if campaigns or audiences changed (one small round trip if not);
        whether they had."""
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.CAMPAIGNS_VERSION)
            pipe.get(keys.TARGETABLE_VERSION)
            version, audiences_version = (int(v or 0) for v in await pipe.execute())
        if (version, audiences_version) == (self.version, self.audiences_version):
            return False
        version, campaigns = await load_campaigns(redis)
        audiences_version, audiences = await targetable(redis)
        # Built off to the side and swapped in whole: a request sees old or new, not half.
        self.index = CampaignIndex.build(campaigns, self.taxonomy, audiences)
        self.campaigns, self.version = campaigns, version
        self.audiences_version = audiences_version
        self.by_id = {campaign.id: campaign for campaign in campaigns}
        log.info("campaigns loaded", extra={"version": version, "lines": len(self.index.lines)})
        return True

    async def _refresh_state(self, redis: Redis, now: float | None) -> None:
        for model in (self.ctr, self.cvr):
            if model is not None:
                self._reload_model(model)
        self.index.ctr, self.index.cvr = self.ctr, self.cvr
        await self._refresh_moment(redis, time.time() if now is None else now)

    @staticmethod
    def _reload_model(model: ClickPredictor) -> None:
        try:
            model.maybe_reload()  # one stat() unless the file changed
        except Exception:  # a bad model file must not stop the campaign refresh
            log.exception("model reload failed")

    async def _refresh_moment(self, redis: Redis, now: float) -> None:
        active = [c for c in self.campaigns if c.active]
        if self.budget is not None:
            spent = await self.budget.refresh(active, now)
        else:
            spent = await _spent(redis, active, now)
        paused = [
            c.id
            for c in active
            if spent[c.id].total >= c.budget_total_micros
            or spent[c.id].today >= c.budget_daily_micros
            or not may_bid_at(c, now)
        ]
        cap_fields = {c.id: field for c in active if (field := cap_field(c, now)) is not None}
        self.moment = Moment(self.index.lines_of(paused), cap_fields)

    async def run(self, redis: Redis, interval_s: float, budget_every: int = 1) -> None:
        """Refresh until cancelled: campaigns every ``interval_s``, the rest every
        ``budget_every`` of those and whenever campaigns changed. Redis outages are logged
        and retried, never fatal."""
        beat, changed = 0, False
        while not cancel_requested():
            await asyncio.sleep(interval_s)
            beat += 1
            try:
                # A new index needs its own pause mask: until a state refresh succeeds after
                # a change, every poll tries again.
                changed = await self._reload(redis) or changed
                if changed or beat >= budget_every:
                    await self._refresh_state(redis, None)
                    beat, changed = 0, False
            except RedisError as error:
                log.warning("campaign refresh failed", extra={"error": str(error)})


async def _spent(redis: Redis, campaigns: list[Campaign], now: float) -> dict[str, Spent]:
    """Spend of each campaign, today in its own zone, in one round trip (no keeper)."""
    async with redis.pipeline(transaction=False) as pipe:
        for campaign in campaigns:
            pipe.get(keys.campaign_spent(campaign.id))
            pipe.get(keys.campaign_spent_day(campaign.id, budget_day(campaign, now)))
        values = await pipe.execute()
    return {
        c.id: Spent(int(values[2 * i] or 0), int(values[2 * i + 1] or 0))
        for i, c in enumerate(campaigns)
    }
