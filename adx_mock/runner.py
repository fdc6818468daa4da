"""An open-loop simulator run: auctions launched on a fixed schedule at ``qps``.

Open loop means a slow DSP does not slow the offered load: request ``i`` starts at
``i / qps`` seconds whether or not earlier ones have finished. Only the concurrency limit
can hold a launch back (and then ``achieved_qps`` shows it).
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from tqdm import tqdm

from adx_mock.auction import FIRST_PRICE, SECOND_PRICE
from adx_mock.errors import ConfigError
from adx_mock.exchange import Exchange, ExchangeSettings
from adx_mock.summary import Summary, Tally
from adx_mock.supply import SupplyConfig, bid_requests

AUCTION_TYPES: Mapping[str, int] = {"first": FIRST_PRICE, "second": SECOND_PRICE}


@dataclass(frozen=True, slots=True)
class RunConfig:
    """A simulator run. It stops after ``max_requests`` or ``duration_s``, whichever is first.

    ``render_rate`` is the share of wins whose ad is rendered (billing notice and
    impression trackers called), ``click_rate`` the share of rendered ads clicked.
    ``concurrency`` bounds the auctions in flight and sizes the connection pool.
    """

    dsp_urls: Sequence[str]
    population: Sequence[Mapping[str, object]]
    qps: float = 200.0
    duration_s: float | None = 10.0
    max_requests: int | None = None
    tmax_ms: int = 100
    auction: str = "second"
    seed: int = 1
    click_rate: float = 0.02
    render_rate: float = 0.95
    concurrency: int = 256
    event_timeout_s: float = 5.0
    # issue 8: replay these bid requests, in order, instead of the synthetic supply
    replay: Sequence[Mapping[str, object]] | None = None

    def __post_init__(self) -> None:
        _check(bool(self.dsp_urls), "dsp_urls", "needs at least one DSP URL")
        _check(len(set(self.dsp_urls)) == len(self.dsp_urls), "dsp_urls", "has duplicates")
        if self.replay is None:
            _check(bool(self.population), "population", "needs at least one device")
        else:
            _check(bool(self.replay), "replay", "needs at least one bid request")
        _check(self.qps > 0 and math.isfinite(self.qps), "qps", "must be > 0")
        _check(self.duration_s is None or self.duration_s > 0, "duration_s", "must be > 0")
        _check(self.max_requests is None or self.max_requests > 0, "max_requests", "must be > 0")
        _check(
            self.duration_s is not None or self.max_requests is not None,
            "duration_s",
            "give a duration or a request count",
        )
        _check(self.tmax_ms > 0, "tmax_ms", "must be > 0")
        _check(self.auction in AUCTION_TYPES, "auction", "must be 'first' or 'second'")
        _check(0.0 <= self.click_rate <= 1.0, "click_rate", "must be in 0..1")
        _check(0.0 <= self.render_rate <= 1.0, "render_rate", "must be in 0..1")
        _check(self.concurrency > 0, "concurrency", "must be > 0")
        _check(self.event_timeout_s > 0, "event_timeout_s", "must be > 0")

    @property
    def total_requests(self) -> int:
        """How many auctions the run launches."""
        limits = [self.max_requests] if self.max_requests is not None else []
        if self.duration_s is not None:
            limits.append(max(1, math.floor(self.qps * self.duration_s)))
        if self.replay is not None:
            limits.append(len(self.replay))
        return min(limits)


def _check(ok: bool, name: str, reason: str) -> None:
    if not ok:
        raise ConfigError(name, reason)


async def run(config: RunConfig, *, progress: bool = True) -> Summary:
    """Run the simulation described by ``config`` and return its figures."""
    tally = Tally(tuple(config.dsp_urls))
    # A large population is millions of long-lived objects: without freezing them, every
    # full garbage collection walks them all and stalls the loop past tmax.
    gc.collect()
    gc.freeze()
    settings = ExchangeSettings(
        dsp_urls=tuple(config.dsp_urls),
        tmax_ms=config.tmax_ms,
        auction_type=AUCTION_TYPES[config.auction],
        render_rate=config.render_rate,
        click_rate=config.click_rate,
        event_timeout_s=config.event_timeout_s,
    )
    # Each auction's bid posts run side by side, so the pool holds one connection per DSP
    # per auction in flight: no bid request waits for a connection while its tmax runs.
    connector = aiohttp.TCPConnector(limit=config.concurrency * len(config.dsp_urls))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with aiohttp.ClientSession(connector=connector) as session:
        with tqdm(
            total=config.total_requests, unit="req", file=sys.stderr, disable=not progress
        ) as bar:
            exchange = Exchange(session, settings, tally)
            await _launch(config, exchange, tally, bar.update)
    return tally.summary(loop.time() - started)


async def _launch(
    config: RunConfig, exchange: Exchange, tally: Tally, advance: Callable[[int], object]
) -> None:
    supply = SupplyConfig(tmax_ms=config.tmax_ms, auction_type=AUCTION_TYPES[config.auction])
    requests: Iterator[Mapping[str, object]]
    if config.replay is not None:
        requests = iter(config.replay)
    else:
        requests = bid_requests(config.population, config.seed, supply)
    # A separate stream for ties and user behaviour, drawn in launch order: the same seed
    # gives the same outcomes however the network orders the answers.
    outcomes = random.Random(config.seed + 1)
    slots = asyncio.Semaphore(config.concurrency)
    tasks: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        slots.release()
        advance(1)

    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for index in range(config.total_requests):
            # Sleeping even when behind schedule lets launched auctions start between launches.
            await asyncio.sleep(max(0.0, start + index / config.qps - loop.time()))
            await slots.acquire()
            rng = random.Random(outcomes.getrandbits(64))
            task = asyncio.create_task(exchange.auction(next(requests), rng))
            tasks.add(task)
            task.add_done_callback(finished)
            tally.requests += 1
        # gather, not wait: an auction that raised is a bug and should surface.
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
