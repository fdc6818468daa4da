"""``GET /win``, ``/imp`` and ``/click``: verify the link, record once, answer the browser."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from aiohttp import web

from dsp.campaigns.live import LiveCampaigns
from dsp.campaigns.schedule import cap_field, cap_ttl_s
from dsp.errors import BadNotice
from dsp.metrics import Metrics
from dsp.tracking.ledger import CapCount, Ledger, charge_micros
from dsp.tracking.links import PRICE_MACRO, LinkSigner, Notice
from infra.settings import Settings

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {"Cache-Control": "no-store"}


@dataclass(slots=True)
class Tracking:
    settings: Settings
    signer: LinkSigner
    ledger: Ledger
    live: LiveCampaigns
    metrics: Metrics

    async def win(self, request: web.Request) -> web.Response:
        """The win notice (nurl) or billing notice (burl): charges once per auction and imp."""
        notice = self.signer.verify(request.query, "win")
        price = request.query.get("p", "")
        if not price or price == PRICE_MACRO:
            raise BadNotice("p", "the exchange did not fill in ${AUCTION_PRICE}")
        rate = self.settings.fx_per_usd.get(notice.currency)
        if rate is None:
            raise BadNotice("x", f"no exchange rate for {notice.currency}")
        amount = charge_micros(price, rate, notice.bid_micros)
        recorded = await self.ledger.record("win", notice, amount_micros=amount)
        self.metrics.count("wins" if recorded.counted else "duplicate_wins")
        return web.json_response(
            {"charged_micros": amount if recorded.counted else 0, "duplicate": not recorded.counted}
        )

    async def impression(self, request: web.Request) -> web.Response:
        notice = self.signer.verify(request.query, "imp")
        recorded = await self.ledger.record("imp", notice, cap=self._cap(notice))
        self.metrics.count("impressions" if recorded.counted else "duplicate_impressions")
        return web.Response(body=PIXEL, content_type="image/gif", headers=_NO_CACHE)

    def _cap(self, notice: Notice) -> CapCount | None:
        campaign = self.live.by_id.get(notice.campaign_id)
        if campaign is None:
            return None
        field = cap_field(campaign, time.time())
        return None if field is None else CapCount(field, cap_ttl_s(campaign))

    async def click(self, request: web.Request) -> web.Response:
        notice = self.signer.verify(request.query, "click")
        creative = self.live.index.creatives.get((notice.campaign_id, notice.creative_id))
        if creative is None:
            raise web.HTTPNotFound(text="unknown campaign or creative")
        recorded = await self.ledger.record("click", notice, ttl_s=self.settings.click_window_s)
        self.metrics.count("clicks" if recorded.counted else "duplicate_clicks")
        raise web.HTTPFound(creative.landing_url, headers=_NO_CACHE)
