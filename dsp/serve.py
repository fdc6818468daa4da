"""``dsp serve``: one or more bidder processes sharing a port (SO_REUSEPORT)."""

from __future__ import annotations

import logging
import multiprocessing
import signal
from types import FrameType

import uvloop
from aiohttp import web

from dsp.app import create_app
from infra.embedded_redis import redis_url_or_embedded
from infra.logs import setup_logging
from infra.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """One bidder process until SIGINT/SIGTERM, then a graceful shutdown via cleanup_ctx."""
    setup_logging(settings.log_level, json=settings.log_json)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        reuse_port=settings.workers > 1,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
        shutdown_timeout=5,
    )


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
    with redis_url_or_embedded(settings.redis_url) as url:
        settings = settings.replace(redis_url=url)
        log.info(
            "bidder listening",
            extra={"url": settings.base_url, "workers": settings.workers, "redis": url},
        )
        if settings.workers == 1:
            run_worker(settings)
        else:
            _supervise(settings)
