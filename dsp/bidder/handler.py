"""``POST /openrtb2/bid``: bytes -> parse -> one Redis round trip -> decide -> reserve -> encode.

Whatever happens after parsing, the answer is a bid or a 204 inside the request's tmax:
a slow or absent Redis, or a bug, costs a no-bid, never a late answer or a 500. A bid is
only made against money set aside for it, from this process's budget lease, without I/O.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from dmp.profile import UNSCORED, Profile, ProfileFormatError, day_number, decode
from dmp.profile_store import ProfileStore
from dmp.scene_codec import live_scene_tags
from dsp.bidder.decide import decide
from dsp.bidder.openrtb import BidRequest, parse_bid_request
from dsp.bidder.response import Admitted, bid_response, response_currency
from dsp.budget.keeper import BudgetKeeper
from dsp.campaigns.live import LiveCampaigns
from dsp.errors import InvalidBidRequest
from dsp.metrics import Metrics
from dsp.tracking.links import LinkSigner
from infra.settings import Settings

log = logging.getLogger(__name__)

# Decisions per request: a campaign the budget or pacing turns down gives way to the next best.
_ADMIT_ROUNDS = 3


def no_bid() -> web.Response:
    return web.Response(status=204)


def bad_request(field: str, reason: str) -> web.Response:
    body = orjson.dumps({"error": "invalid bid request", "field": field, "reason": reason})
    return web.Response(status=400, body=body, content_type="application/json")


@dataclass(frozen=True, slots=True)
class Device:
    """What the DMP and the frequency counters say about the request's device."""

    profile: Profile | None  # None: no DMP data may be used, or the DMP has none
    counters: dict[str, int] | None  # None: no device to count against
    key: str  # hex digest the tracking links count the device under ("" when none)


@dataclass(slots=True)
class Bidder:
    settings: Settings
    profiles: ProfileStore
    live: LiveCampaigns
    signer: LinkSigner
    metrics: Metrics
    budget: BudgetKeeper

    def _budget_s(self, bid_request: BidRequest) -> float:
        tmax = bid_request.tmax_ms
        return max(tmax - min(self.settings.tmax_margin_ms, tmax // 5), 1) / 1000

    async def _device(self, bid_request: BidRequest) -> Device:
        if bid_request.privacy_restricted or not bid_request.device_ids:
            return Device(None, None, "")
        digests = [device.key for device in bid_request.device_ids]
        found = await self.profiles.lookup(digests)
        if found is None:
            return Device(None, {}, digests[0].hex())
        now = time.time()
        try:
            profile = decode(found.profile, day_number(now)) if found.profile else Profile()
        except ProfileFormatError:
            self.metrics.count("profile_format_errors")
            profile = Profile()
        if found.scenes:
            profile.tags.update(live_scene_tags(found.scenes, int(now // 60)))
        if found.audiences:
            member_tags = self.live.index.member_tags
            for audience in found.audiences:
                if (tag := member_tags.get(audience)) is not None:
                    profile.tags[tag] = UNSCORED
        return Device(profile, found.counters, found.primary.hex())

    async def answer(self, bid_request: BidRequest, started: float) -> web.Response:
        currency = response_currency(bid_request.currencies, self.settings.fx_per_usd)
        live = self.live
        if currency is None or not live.index.lines:
            return no_bid()
        remaining = self._budget_s(bid_request) - (time.monotonic() - started)
        try:
            async with asyncio.timeout(remaining):
                device = await self._device(bid_request)
        except TimeoutError:
            self.metrics.count("timeouts")
            return no_bid()
        except RedisError as error:
            self.metrics.count("redis_errors")
            log.warning("profile lookup failed", extra={"error": str(error)})
            return no_bid()
        admitted = self._admit(bid_request, device, live)
        if not admitted:
            return no_bid()
        response = bid_response(
            bid_request, admitted, signer=self.signer, currency=currency,
            rate=self.settings.fx_per_usd[currency], device=device.key,
            now_ms=int(time.time() * 1000),
        )  # fmt: skip
        self.metrics.count("bids", len(admitted))
        return web.Response(body=orjson.dumps(response), content_type="application/json")

    def _admit(
        self, bid_request: BidRequest, device: Device, live: LiveCampaigns
    ) -> list[Admitted]:
        """The best line per imp whose campaign has money reserved for the bid (and whose
        pacing lets it bid now); a campaign turned down is blocked and the imp decided again."""
        moment, admitted = live.moment, dict[str, Admitted]()
        for _ in range(_ADMIT_ROUNDS):
            refused = []
            for bid in decide(bid_request, device.profile, live.index, moment, device.counters):
                if bid.imp.id in admitted:
                    continue
                line = bid.line
                reservation = self.budget.reserve(
                    line.campaign, bid_request.id, bid.imp.id, line.price_micros
                )
                if reservation is None:
                    refused.append(line.campaign.id)
                else:
                    admitted[bid.imp.id] = Admitted(bid, reservation)
            if not refused:
                break
            blocked = moment.blocked_lines | live.index.lines_of(refused)
            moment = dataclasses.replace(moment, blocked_lines=blocked)
        return list(admitted.values())

    async def handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        self.metrics.count("bid_requests")
        try:
            data = orjson.loads(await request.read())
            bid_request = parse_bid_request(
                data,
                default_tmax_ms=self.settings.default_tmax_ms,
                max_tmax_ms=self.settings.max_tmax_ms,
                fx_per_usd=self.settings.fx_per_usd,
            )
        except orjson.JSONDecodeError as error:
            self.metrics.count("bad_requests")
            return bad_request("$", f"malformed JSON: {error}")
        except InvalidBidRequest as error:
            self.metrics.count("bad_requests")
            return bad_request(error.field, error.reason)
        try:
            response = await self.answer(bid_request, started)
        except Exception:  # a bug must cost one no-bid, not the exchange's trust
            log.exception("bid failed", extra={"request_id": bid_request.id})
            self.metrics.count("errors")
            response = no_bid()
        self.metrics.observe_bid_ms((time.monotonic() - started) * 1000)
        if response.status == 204:
            self.metrics.count("no_bids")
        return response
