"""One auction end to end over HTTP: fan the request out, run the auction, play the outcome.

The outcome is played as a publisher's page and a user would: the win notice, then for a
rendered ad the billing notice and impression trackers, sometimes a click; losers get their
loss notice. Every call is counted in the run's ``Tally``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import orjson
import yarl

from adx_mock.auction import (
    Bid,
    ImpResult,
    floors_of,
    loser_macros,
    multipliers_of,
    parse_response,
    run_auction,
    substitute_macros,
    winner_macros,
)
from adx_mock.errors import BidResponseError, MarkupError
from adx_mock.markup import AdEvents, read_markup
from adx_mock.summary import Tally

log = logging.getLogger(__name__)

BID_HEADERS: Mapping[str, str] = {
    "Content-Type": "application/json",
    "x-openrtb-version": "2.6",
}
CLICK_REDIRECTS = frozenset({302, 303, 307})


@dataclass(frozen=True, slots=True)
class ExchangeSettings:
    """How the exchange treats DSPs and ads; rates are probabilities per won impression."""

    dsp_urls: tuple[str, ...]
    tmax_ms: int
    auction_type: int
    render_rate: float
    click_rate: float
    event_timeout_s: float


@dataclass(frozen=True, slots=True)
class _Fate:
    """What the user does with one won impression, drawn before any I/O for reproducibility."""

    rendered: bool
    clicked: bool


class Exchange:
    """Runs auctions through one HTTP session; owns neither the session nor the tally."""

    __slots__ = ("_session", "_settings", "_tally", "_bid_timeout", "_event_timeout")

    def __init__(
        self, session: aiohttp.ClientSession, settings: ExchangeSettings, tally: Tally
    ) -> None:
        self._session = session
        self._settings = settings
        self._tally = tally
        self._bid_timeout = aiohttp.ClientTimeout(total=settings.tmax_ms / 1000)
        self._event_timeout = aiohttp.ClientTimeout(total=settings.event_timeout_s)

    async def auction(self, request: Mapping[str, object], rng: random.Random) -> None:
        """Post ``request`` to every DSP, pick the winners and play out the outcome."""
        request_id = str(request["id"])
        body = orjson.dumps(request)
        answers = await asyncio.gather(
            *(self._ask(url, request_id, body) for url in self._settings.dsp_urls)
        )
        bids = [bid for answer in answers for bid in answer]
        results = run_auction(
            floors_of(request), bids, auction_type=self._settings.auction_type, rng=rng
        )
        fates = [self._fate(rng) for _ in results]
        multipliers = multipliers_of(request)
        await asyncio.gather(
            *(
                self._settle(request_id, r, f, multipliers.get(r.imp_id))
                for r, f in zip(results, fates, strict=True)
            )
        )

    def _fate(self, rng: random.Random) -> _Fate:
        rendered = rng.random() < self._settings.render_rate
        clicked = rng.random() < self._settings.click_rate
        return _Fate(rendered, rendered and clicked)

    async def _ask(self, url: str, request_id: str, body: bytes) -> tuple[Bid, ...]:
        dsp = self._tally.dsp(url)
        started = time.perf_counter()
        try:
            async with self._session.post(
                url, data=body, headers=BID_HEADERS, timeout=self._bid_timeout
            ) as response:
                status, payload = response.status, await response.read()
        except TimeoutError:
            dsp.timeouts += 1
            self._tally.count_status("bid", "timeout")
            return ()
        except aiohttp.ClientError as exc:
            dsp.errors += 1
            self._tally.count_status("bid", "error")
            log.debug("bid request failed", extra={"dsp": url, "error": repr(exc)})
            return ()
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._tally.count_status("bid", status)
        if elapsed_ms > self._settings.tmax_ms:
            # Answered, but after the auction closed: a real exchange has moved on.
            dsp.timeouts += 1
            return ()
        self._tally.latencies_ms.append(elapsed_ms)
        return self._read_answer(url, request_id, status, payload)

    def _read_answer(
        self, url: str, request_id: str, status: int, payload: bytes
    ) -> tuple[Bid, ...]:
        dsp = self._tally.dsp(url)
        # OpenRTB allows an empty 200 as well as a 204 for "no bid".
        if status == 204 or (status == 200 and not payload.strip()):
            dsp.no_bids += 1
            return ()
        if status != 200:
            dsp.errors += 1
            return ()
        try:
            bids = parse_response(url, request_id, orjson.loads(payload))
        except (orjson.JSONDecodeError, BidResponseError) as exc:
            dsp.errors += 1
            log.debug("bad bid response", extra={"dsp": url, "error": str(exc)})
            return ()
        if bids:
            dsp.bids += 1
        else:
            dsp.no_bids += 1
        return bids

    async def _settle(
        self, request_id: str, result: ImpResult, fate: _Fate, multiplier: float | None = None
    ) -> None:
        notices = [
            self._get(
                "loss", substitute_macros(loss.bid.lurl, loser_macros(request_id, result, loss))
            )
            for loss in result.losses
            if loss.bid.lurl
        ]
        await asyncio.gather(self._play_winner(request_id, result, fate, multiplier), *notices)

    async def _play_winner(
        self, request_id: str, result: ImpResult, fate: _Fate, multiplier: float | None
    ) -> None:
        winner = result.winner
        if winner is None or result.clearing_price is None:
            return
        macros = winner_macros(
            request_id, result, multiplier=multiplier, imp_ts_ms=int(time.time() * 1000)
        )
        markup = substitute_macros(winner.adm, macros) if winner.adm else None
        if winner.nurl:
            status, body = await self._get("win", substitute_macros(winner.nurl, macros))
            if status is None or not 200 <= status < 300:
                return
            if markup is None and body.strip():
                # Without adm the win notice's answer is the ad markup (OpenRTB 2.6 4.3).
                markup = substitute_macros(body.decode("utf-8", "replace"), macros)
        self._tally.dsp(winner.source).wins += 1
        if not fate.rendered:
            return
        self._tally.impression(winner.source, result.clearing_price)
        events = self._events(markup)
        calls = [self._get("imp", url) for url in events.impressions]
        if winner.burl:
            calls.append(self._get("billing", substitute_macros(winner.burl, macros)))
        await asyncio.gather(*calls)
        if fate.clicked and events.click:
            status, _ = await self._get("click", events.click)
            if status in CLICK_REDIRECTS:
                self._tally.dsp(winner.source).clicks += 1

    def _events(self, markup: str | None) -> AdEvents:
        if markup is None:
            return AdEvents("none", (), None)
        try:
            return read_markup(markup)
        except MarkupError as exc:
            self._tally.count_status("markup", "error")
            log.debug("unreadable markup", extra={"error": str(exc)})
            return AdEvents("unreadable", (), None)

    async def _get(self, kind: str, url: str) -> tuple[int | None, bytes]:
        """GET as a browser would, without following redirects; ``None`` when it failed."""
        try:
            async with self._session.get(
                _as_sent(url), timeout=self._event_timeout, allow_redirects=False
            ) as response:
                body = await response.read()
        except TimeoutError:
            self._tally.count_status(kind, "timeout")
            return None, b""
        except (aiohttp.ClientError, ValueError) as exc:
            self._tally.count_status(kind, "error")
            log.debug("event call failed", extra={"kind": kind, "url": url, "error": repr(exc)})
            return None, b""
        self._tally.count_status(kind, response.status)
        return response.status, body


def _as_sent(url: str) -> yarl.URL:
    # A DSP signs its click and event links; re-quoting them would break the signature, so
    # a URL that is already valid on the wire goes out byte for byte.
    if url.isascii() and " " not in url:
        return yarl.URL(url, encoded=True)
    return yarl.URL(url)
