"""``dsp serve``: one or more bidder processes sharing a port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import signal
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvloop
from aiohttp import web

from dsp.app import BIDDER, METRICS, PIPE, create_app
from dsp.bidder.front import BidFront, Deadlines, Shedder
from infra import compiled
from infra.embedded_redis import redis_url_or_embedded
from infra.logs import setup_logging
from infra.settings import Settings

log = logging.getLogger(__name__)

_YOUNG_COLLECTION_EVERY = 20_000  # allocations of tracked objects (Python's default: 700)


def run_worker(settings: Settings) -> None:
    """One bidder process until SIGINT/SIGTERM, then a graceful shutdown via cleanup_ctx."""
    setup_logging(settings.log_level, json=settings.log_json)
    uvloop.run(_worker(settings))


@dataclass
class Worker:
    """A running bidder process's server: the bid front over aiohttp's app runner."""

    settings: Settings
    runner: web.AppRunner
    server: asyncio.Server
    shedder: Shedder
    deadlines: Deadlines
    connections: set[BidFront]

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def stop(self) -> None:
        """Stop listening, answer the bids in flight (each within its tmax), then close the
        app's resources (cleanup_ctx) and aiohttp's connections."""
        loop = asyncio.get_running_loop()
        log.info("bidder stopping", extra={"connections": len(self.connections)})
        self.server.close()
        for connection in list(self.connections):
            connection.close_when_idle()
        deadline = loop.time() + self.settings.max_tmax_ms / 1000 + 0.5
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.shedder.stop()
        self.deadlines.stop()
        await self.runner.cleanup()


async def start_worker(settings: Settings) -> Worker:
    """The app set up by aiohttp's runner (its cleanup_ctx resources), served through the
    bid front (``dsp.bidder.front``), which hands every other request to aiohttp."""
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    handoff = runner.server
    assert handoff is not None
    shedder = Shedder(threshold_s=settings.shed_lag_ms / 1000, metrics=app[METRICS])
    deadlines = Deadlines()
    connections: set[BidFront] = set()
    bidder, pipe, limit = app[BIDDER], app[PIPE], settings.max_body_bytes
    try:
        server = await asyncio.get_running_loop().create_server(
            lambda: BidFront(bidder, pipe, shedder, deadlines, handoff, connections, limit),
            settings.host,
            settings.port,
            reuse_port=settings.workers > 1,
            backlog=settings.listen_backlog,
        )
    except BaseException:
        await runner.cleanup()
        raise
    # What startup built (taxonomy, campaign index, scripts) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it and stalls the
    # loop for tens of milliseconds, past a bid's tmax.
    gc.collect()
    gc.freeze()
    # A bid's objects die by reference counting; the young-generation collections that
    # 700 allocations trigger found nearly nothing and cost about 4 % of a bid's CPU.
    gc.set_threshold(_YOUNG_COLLECTION_EVERY, 50, 100)
    shedder.start()
    deadlines.start()
    return Worker(settings, runner, server, shedder, deadlines, connections)


async def _worker(settings: Settings) -> None:
    worker = await start_worker(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await worker.stop()


def _supervise(settings: Settings) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=run_worker, args=(settings,), name=f"bidder-{i}")
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.join()


def serve(settings: Settings) -> None:
    """Serve until stopped; without a Redis URL, on an embedded Redis that stops with us."""
    data_dir = Path(settings.redis_data_dir) if settings.redis_data_dir else None  # issue 10
    with redis_url_or_embedded(settings.redis_url, data_dir) as url:
        settings = settings.replace(redis_url=url)
        bid_path = compiled.summary()
        log.info(
            "bidder listening",
            extra={
                "url": settings.base_url, "workers": settings.workers, "redis": url,
                "bid_path": bid_path,
            },
        )  # fmt: skip
        if bid_path == "stale":
            log.warning(
                "compiled bid path modules are older than their source and run old code: "
                "`python -m infra.compiled build` (or `make compile`) compiles them again",
                extra={"stale": compiled.stale()},
            )
        if settings.workers == 1:
            run_worker(settings)
        else:
            _supervise(settings)
