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
from typing import Final

import orjson
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from dmp.profile import UNSCORED, Profile, ProfileFormatError, day_number, decode
from dmp.profile_lookup import Found, found_of, lookup_command
from dmp.profile_store import LOAD_LOOKUP, LOOKUP_SHA, ProfileStore
from dmp.scene_codec import live_scene_tags
from dsp.bidder.decide import decide
from dsp.bidder.openrtb import BidRequest, parse_bid_request
from dsp.bidder.response import Admitted, bid_response, response_currency
from dsp.budget.keeper import BudgetKeeper
from dsp.campaigns.index import Line
from dsp.campaigns.live import LiveCampaigns
from dsp.errors import InvalidBidRequest
from dsp.events.bid_log import EventBuffer
from dsp.events.tags import TagMatcher
from dsp.metrics import Metrics
from dsp.tracking.links import LinkSigner
from infra.redis_pipe import RedisPipe, Reply
from infra.settings import Settings

log = logging.getLogger(__name__)

# Decisions per request: a campaign the budget or pacing turns down gives way to the next best.
_ADMIT_ROUNDS: Final = 3


def no_bid() -> web.Response:
    return web.Response(status=204)


def bad_request_body(field: str, reason: str) -> bytes:
    return orjson.dumps({"error": "invalid bid request", "field": field, "reason": reason})


def _ignore(reply: Reply) -> None:
    pass


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Device:
    """What the DMP and the frequency counters say about the request's device."""

    profile: Final[Profile | None]  # None: no DMP data may be used, or the DMP has none
    counters: Final[dict[str, int] | None]  # None: no device to count against
    key: Final[str]  # hex digest the tracking links count the device under ("" when none)

    def __init__(self, profile: Profile | None, counters: dict[str, int] | None, key: str) -> None:
        self.profile = profile
        self.counters = counters
        self.key = key


@dataclass(slots=True)
class Bidder:
    settings: Settings
    profiles: ProfileStore
    live: LiveCampaigns
    signer: LinkSigner
    metrics: Metrics
    budget: BudgetKeeper
    # issue 6: bid events go to an in-process buffer (no Redis call on the bid path)
    events: EventBuffer | None = None
    tag_matcher: TagMatcher | None = None
    # The pipelined connection lookups go through (``dsp.bidder.front``); None: redis-py.
    pipe: RedisPipe | None = None

    def _budget_s(self, bid_request: BidRequest) -> float:
        tmax = bid_request.tmax_ms
        return max(tmax - min(self.settings.tmax_margin_ms, tmax // 5), 1) / 1000

    def digests(self, bid_request: BidRequest) -> list[bytes] | None:
        """The digests to look up, or None when the request must not, or cannot, use the DMP."""
        if bid_request.privacy_restricted or not bid_request.device_ids:
            return None
        return [device.key for device in bid_request.device_ids]

    def device(self, digests: list[bytes] | None, found: Found | None) -> Device:
        """The device the lookup of ``digests`` found (``found``), decoded for ``decide``."""
        if digests is None:
            return Device(None, None, "")
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

    def currency(self, bid_request: BidRequest) -> str | None:
        """The answer's currency, or None when no bid can be made at all (no lines either)."""
        if not self.live.index.lines:
            return None
        return response_currency(bid_request.currencies, self.settings.fx_per_usd)

    def deadline(self, bid_request: BidRequest, started: float) -> float:
        """The monotonic time by which the answer must be written."""
        return started + self._budget_s(bid_request)

    async def answer(self, bid_request: BidRequest, started: float) -> web.Response:
        currency = self.currency(bid_request)
        if currency is None:
            return no_bid()
        remaining = self.deadline(bid_request, started) - time.monotonic()
        digests = self.digests(bid_request)
        try:
            async with asyncio.timeout(remaining):
                found = await self._lookup(digests) if digests else None
        except TimeoutError:
            self.metrics.count("timeouts")
            return no_bid()
        except RedisError as error:
            self.metrics.count("redis_errors")
            log.warning("profile lookup failed", extra={"error": str(error)})
            return no_bid()
        status, body = self.respond(bid_request, self.device(digests, found), currency)
        if status == 204:
            return no_bid()
        return web.Response(body=body, content_type="application/json")

    async def _lookup(self, digests: list[bytes]) -> Found | None:
        if self.pipe is None:
            return await self.profiles.lookup(digests)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def done(reply: Reply) -> None:
            if not future.done():
                future.set_result(reply)

        if not self.pipe.call(lookup_command(LOOKUP_SHA, digests), done):
            raise RedisConnectionError("the lookup connection is down")
        return self.found(await future)

    def found(self, reply: Reply) -> Found | None:
        """The lookup's reply, or its error raised (a lost script is loaded again)."""
        if isinstance(reply, Exception):
            if self.pipe is not None and str(reply).startswith("NOSCRIPT"):
                self.pipe.call(LOAD_LOOKUP, _ignore)
            raise reply
        return found_of(reply)

    def respond(self, bid_request: BidRequest, device: Device, currency: str) -> tuple[int, bytes]:
        """The answer once the device is known: (200, bid response JSON) or (204, b"")."""
        admitted = self._admit(bid_request, device, self.live)
        if not admitted:
            return 204, b""
        now_ms = int(time.time() * 1000)
        response = bid_response(
            bid_request, admitted, signer=self.signer, currency=currency,
            rate=self.settings.fx_per_usd[currency], device=device.key, now_ms=now_ms,
        )  # fmt: skip
        if self.events is not None:  # issue 6: bid events, buffered in process
            self.events.bids(bid_request, admitted, device.key, now_ms)
        self.metrics.count("bids", len(admitted))
        return 200, orjson.dumps(response)

    def _admit(
        self, bid_request: BidRequest, device: Device, live: LiveCampaigns
    ) -> list[Admitted]:
        """The best line per imp whose campaign has money reserved for the bid (and whose
        pacing lets it bid now); a campaign turned down is blocked and the imp decided again."""
        moment, admitted = live.moment, dict[str, Admitted]()
        scores = None if device.profile is None else device.profile.tags  # issue 12: for events
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
                    tags = self._tags(line, device)
                    admitted[bid.imp.id] = Admitted(bid, reservation, tags, scores)
            if not refused:
                break
            blocked = moment.blocked_lines | live.index.lines_of(refused)
            moment = dataclasses.replace(moment, blocked_lines=blocked)
        return list(admitted.values())

    def _tags(self, line: Line, device: Device) -> tuple[int, ...]:
        """issue 6: the device's tags the line's targeting matched (signed into its links)."""
        if self.tag_matcher is None or device.profile is None:
            return ()
        return self.tag_matcher.matched(line.campaign.targeting.tags, device.profile.tags)

    def parse(self, body: bytes) -> BidRequest | tuple[int, bytes]:
        """The request's facts, or the 400 answer (status, JSON body) naming what is wrong."""
        self.metrics.count("bid_requests")
        try:
            return parse_bid_request(
                orjson.loads(body),
                default_tmax_ms=self.settings.default_tmax_ms,
                max_tmax_ms=self.settings.max_tmax_ms,
                fx_per_usd=self.settings.fx_per_usd,
            )
        except orjson.JSONDecodeError as error:
            self.metrics.count("bad_requests")
            return 400, bad_request_body("$", f"malformed JSON: {error}")
        except InvalidBidRequest as error:
            self.metrics.count("bad_requests")
            return 400, bad_request_body(error.field, error.reason)

    def answered(self, status: int, started: float) -> None:
        """Count an answer given ``started`` (monotonic) with ``status``."""
        self.metrics.observe_bid_ms((time.monotonic() - started) * 1000)
        if status == 204:
            self.metrics.count("no_bids")

    async def handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        parsed = self.parse(await request.read())
        if not isinstance(parsed, BidRequest):
            status, body = parsed
            return web.Response(status=status, body=body, content_type="application/json")
        try:
            response = await self.answer(parsed, started)
        except Exception:  # a bug must cost one no-bid, not the exchange's trust
            log.exception("bid failed", extra={"request_id": parsed.id})
            self.metrics.count("errors")
            response = no_bid()
        self.answered(response.status, started)
        return response
