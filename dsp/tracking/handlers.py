"""``GET /win``, ``/loss``, ``/imp`` and ``/click``: verify the link, record once, answer.

issue 12: the click redirect appends a signed click id (``dsp_click=``) to the landing URL,
and ``/conv`` (``conversion``) takes the advertiser's postback of it.

``/win`` is both the win notice (nurl) and, marked ``n=burl``, the billing notice (burl).
The campaign's billing mode, signed into the link, says which of the two charges: a
``nurl`` campaign is charged by whichever comes first (they count as one notice), a
``burl`` campaign only by the billing notice, the win notice just counting the win.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from aiohttp import web

from dsp.budget.keeper import BudgetKeeper
from dsp.campaigns.live import LiveCampaigns
from dsp.campaigns.model import Billing
from dsp.campaigns.schedule import cap_field, cap_ttl_s
from dsp.conversions.click_ids import ClickIds, with_click_id
from dsp.conversions.handlers import Conversions
from dsp.errors import BadNotice
from dsp.events.bid_log import EventBuffer
from dsp.events.traffic import BotFilter
from dsp.metrics import Metrics
from dsp.tracking.ledger import CapCount, EventKind, Ledger, charge_micros
from dsp.tracking.links import LOSS_MACRO, PRICE_MACRO, LinkSigner, Notice
from infra.settings import Settings

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {"Cache-Control": "no-store"}


def loss_event(notice: Notice, reason: str) -> dict[str, object]:
    """The event of a loss notice; ``reason`` is the exchange's loss code, "" if not given."""
    return {
        "type": "loss", "ts": int(time.time() * 1000), "auction": notice.auction_id,
        "imp": notice.imp_id, "campaign": notice.campaign_id, "creative": notice.creative_id,
        "device": notice.device, "tags": list(notice.tags), "price": 0,
        "reason": "" if reason == LOSS_MACRO else reason,
    }  # fmt: skip


@dataclass(slots=True)
class Tracking:
    settings: Settings
    signer: LinkSigner
    ledger: Ledger
    live: LiveCampaigns
    metrics: Metrics
    budget: BudgetKeeper
    events: EventBuffer | None = None  # loss events go here: batched, no Redis call each
    bots: BotFilter = field(default_factory=BotFilter)
    conversions: Conversions | None = None  # issue 12: made from the ledger's Redis if None

    def __post_init__(self) -> None:
        if self.conversions is None:
            self.conversions = Conversions(
                self.settings, self.ledger.redis, ClickIds(self.signer), self.live, self.metrics
            )

    async def win(self, request: web.Request) -> web.Response:
        """The win notice (nurl) or billing notice (burl): charges once per auction and imp.

        A notice arriving after the bid's reservation ended (``notice_timeout_s``) is still
        charged, within the budget, and answered ``"late": true``.
        """
        notice = self.signer.verify(request.query, "win")
        price = request.query.get("p", "")
        if not price or price == PRICE_MACRO:
            raise BadNotice("p", "the exchange did not fill in ${AUCTION_PRICE}")
        rate = self.settings.fx_per_usd.get(notice.currency)
        if rate is None:
            raise BadNotice("x", f"no exchange rate for {notice.currency}")
        amount = charge_micros(price, rate, notice.bid_micros)
        billing = request.query.get("n") == "burl"
        charges = billing or notice.billing != Billing.BURL
        kind: EventKind = "bill" if billing and notice.billing == Billing.BURL else "win"
        age_ms = time.time() * 1000 - notice.issued_ms
        late = charges and age_ms > self.settings.notice_timeout_s * 1000
        recorded = await self.ledger.record(
            kind, notice, amount_micros=amount if charges else 0, settles=charges, late=late
        )
        self.metrics.count(f"{kind}s" if recorded.counted else f"duplicate_{kind}s")
        if recorded.counted and late:
            self.metrics.count(f"late_{kind}s")
        return web.json_response(
            {
                "charged_micros": recorded.charged_micros,
                "overdelivered_micros": recorded.overdelivered_micros,
                "duplicate": not recorded.counted,
                "late": late and recorded.counted,
            }
        )

    async def loss(self, request: web.Request) -> web.Response:
        """The loss notice (lurl): the bid's reservation ends now rather than at its timeout."""
        notice = self.signer.verify(request.query, "loss")
        ours = self.budget.release(
            notice.keeper, notice.day, notice.campaign_id, notice.auction_id, notice.imp_id
        )
        if not ours:
            await self.ledger.loss(notice)  # the owning process settles it on its refresh
        if self.events is not None:
            self.events.append(loss_event(notice, request.query.get("l", "")))
        self.metrics.count("losses")
        return web.Response(status=204)

    async def impression(self, request: web.Request) -> web.Response:
        notice = self.signer.verify(request.query, "imp")
        recorded = await self.ledger.record(
            "imp", notice, cap=self._cap(notice), touch_ttl_s=self.settings.conversion_touch_ttl_s
        )
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
        bot = self.bots.is_bot(request.headers.get("User-Agent"))
        recorded = await self.ledger.record(
            "click", notice, ttl_s=self.settings.click_window_s, bot=bot,
            touch_ttl_s=self.settings.conversion_touch_ttl_s,
        )  # fmt: skip
        if not recorded.counted:
            self.metrics.count("duplicate_clicks")
        elif recorded.invalid:
            self.metrics.count(f"invalid_clicks_{recorded.invalid}")
        else:
            self.metrics.count("clicks")
        landing = creative.landing_url
        if not recorded.invalid and self.conversions is not None:
            # issue 12: the landing page passes the signed click id back on conversion
            click_id = self.conversions.click_ids.mint(notice, int(time.time() * 1000))
            landing = with_click_id(landing, click_id)
        raise web.HTTPFound(landing, headers=_NO_CACHE)

    async def conversion(self, request: web.Request) -> web.Response:
        """issue 12: ``GET /conv`` and ``POST /conv``: see ``dsp.conversions.handlers``."""
        assert self.conversions is not None
        return await self.conversions.handle(request)
