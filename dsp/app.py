"""The bidder process: routes, error middleware, and resources made in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from dmp.profile_store import LOAD_LOOKUP, ProfileStore
from dmp.taxonomy import Taxonomy
from dsp.api import setup_api
from dsp.bidder.cluster_lookups import ClusterLookups
from dsp.bidder.handler import Bidder
from dsp.budget.keeper import BudgetKeeper
from dsp.campaigns.live import LiveCampaigns
from dsp.console import setup_console  # issue 11
from dsp.conversions.errors import ConversionRefused
from dsp.ctr.predictor import CtrPredictor
from dsp.errors import BadNotice, BadSignature, DspError, InvalidBidRequest, InvalidCampaign
from dsp.events.bid_log import EventBuffer
from dsp.events.tags import TagMatcher
from dsp.metrics import Metrics
from dsp.tracking.handlers import Tracking
from dsp.tracking.ledger import Ledger
from dsp.tracking.links import LinkSigner
from infra import keys
from infra.redis_client import is_cluster_url, packed_by_hiredis, redis_client
from infra.redis_pipe import RedisPipe
from infra.settings import Settings
from infra.tasks import stop_tasks

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
TAXONOMY = web.AppKey("taxonomy", Taxonomy)
METRICS = web.AppKey("metrics", Metrics)
REDIS = web.AppKey("redis", Redis)
LIVE = web.AppKey("live", LiveCampaigns)
BUDGET = web.AppKey("budget", BudgetKeeper)
BIDDER = web.AppKey("bidder", Bidder)
TRACKING = web.AppKey("tracking", Tracking)
PIPE = web.AppKey("pipe", RedisPipe)
LOOKUP_CLIENT_NAME = "dsp-bid-lookups"

_STATUS: dict[type[DspError], int] = {
    BadSignature: 403,
    BadNotice: 400,
    InvalidBidRequest: 400,
    InvalidCampaign: 422,
    ConversionRefused: 403,  # a forged or expired click id
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Typed domain errors become JSON answers with the status they stand for."""
    try:
        return await handler(request)
    except DspError as error:
        status = _STATUS.get(type(error), 400)
        body = {"error": str(error), **{k: v for k, v in vars(error).items() if k != "args"}}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
    except RedisError as error:
        # A notice or pixel the store could not take: 503 asks the sender to retry, so a win
        # is charged once Redis is back instead of being lost behind a 500.
        log.warning("redis unavailable", extra={"path": request.path, "error": str(error)})
        return web.Response(
            status=503,
            body=orjson.dumps({"error": "storage unavailable, retry"}),
            content_type="application/json",
            headers={"Retry-After": "1"},
        )


async def _signing_key(redis: Redis, configured: bytes | None) -> bytes:
    if configured:
        return configured
    # The first process to start picks the key; every other worker reads the same one.
    await redis.set(keys.SIGNING_KEY, secrets.token_hex(32), nx=True)
    stored = await redis.get(keys.SIGNING_KEY)
    assert isinstance(stored, bytes)
    return stored


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.redis_url:
        raise RuntimeError("the bidder needs settings.redis_url")
    if is_cluster_url(settings.redis_url):
        # Redis Cluster: redis-py's cluster client, and the bid lookups through it.
        cluster = redis_client(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            socket_connect_timeout=2,
            socket_timeout=settings.redis_timeout_s,
        )
        app[REDIS] = cluster
        lookups = ClusterLookups(ProfileStore(cluster).cluster_lookup(), app[METRICS])
        await lookups.connect()
        app[PIPE] = lookups
        yield
        await lookups.close()
        await cluster.aclose()
        return
    # A blocking pool: under a burst, requests queue for a connection (bounded by their own
    # deadline) instead of failing at once with "too many connections".
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=2,
        socket_connect_timeout=2,
        socket_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        **packed_by_hiredis(settings.redis_url),
    )
    redis = Redis(connection_pool=pool)
    app[REDIS] = redis
    # The bid path's lookups: one pipelined connection, its script loaded on every connect.
    pipe = RedisPipe(settings.redis_url, name=LOOKUP_CLIENT_NAME)
    pipe.on_connect(LOAD_LOOKUP)
    await pipe.connect()
    app[PIPE] = pipe
    yield
    await pipe.close()
    await redis.aclose()
    await pool.disconnect()  # a pool handed to Redis() is not closed by it


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, redis, metrics = app[SETTINGS], app[REDIS], app[METRICS]
    rng = None if settings.pacing_seed is None else random.Random(settings.pacing_seed)
    budget = BudgetKeeper(redis, settings, metrics=metrics, rng=rng)
    await budget.warm_up()
    live = LiveCampaigns(app[TAXONOMY], budget)
    if settings.ctr_model:  # pCTR for target-CPC lines, reloaded when the file changes
        live.ctr = CtrPredictor(Path(settings.ctr_model), app[TAXONOMY])
    if settings.cvr_model:  # pCVR for target-CPA lines, reloaded the same way
        live.cvr = CtrPredictor(Path(settings.cvr_model), app[TAXONOMY], name="cvr")
    await live.refresh(redis)
    # issue 6: rotating link keys (newest first) when configured
    signing = settings.signing_keys or await _signing_key(redis, settings.signing_key)
    signer = LinkSigner(signing, settings.base_url)
    ledger = Ledger(
        redis,
        ttl_s=settings.notice_ttl_s,
        stream_maxlen=settings.event_stream_maxlen,
        settlements_ttl_s=max(60, round(4 * settings.budget_lease_ttl_s)),
        click_rate_max=settings.click_rate_max,
        click_rate_window_s=settings.click_rate_window_s,
        metrics=metrics,
    )
    # issue 6: bid and loss events, buffered in process and flushed in batches
    events = EventBuffer(
        redis, max_events=settings.event_buffer_max, flush_s=settings.event_flush_s,
        batch_max=settings.event_batch_max, stream_maxlen=settings.event_stream_maxlen,
        metrics=metrics,
    )  # fmt: skip
    profiles = ProfileStore(redis)
    await profiles.warm_up()
    await ledger.warm_up()
    app[LIVE] = live
    app[BUDGET] = budget
    app[BIDDER] = Bidder(
        settings,
        profiles,
        live,
        signer,
        metrics,
        budget,
        events,
        TagMatcher(app[TAXONOMY]),
        app[PIPE],
    )
    app[TRACKING] = Tracking(settings, signer, ledger, live, metrics, budget, events)
    events.start()
    tasks = [
        asyncio.create_task(
            live.run(redis, settings.campaign_refresh_s, settings.budget_refresh_every)
        ),
        asyncio.create_task(budget.run(settings.campaign_refresh_s)),
    ]
    yield
    await stop_tasks(tasks)
    await events.close()  # issue 6: what is still buffered goes to the stream
    try:
        await budget.close()  # unreserved money goes back to the budgets at once
    except RedisError as error:
        log.warning("budget leases not given back", extra={"error": str(error)})


async def _bid(request: web.Request) -> web.Response:
    return await request.app[BIDDER].handle(request)


async def _win(request: web.Request) -> web.Response:
    return await request.app[TRACKING].win(request)


async def _loss(request: web.Request) -> web.Response:
    return await request.app[TRACKING].loss(request)


async def _imp(request: web.Request) -> web.Response:
    return await request.app[TRACKING].impression(request)


async def _click(request: web.Request) -> web.Response:
    return await request.app[TRACKING].click(request)


async def _conv(request: web.Request) -> web.Response:  # issue 12
    return await request.app[TRACKING].conversion(request)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "campaigns_version": request.app[LIVE].version})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[METRICS].render(), content_type="text/plain")


def create_app(settings: Settings, taxonomy: Taxonomy | None = None) -> web.Application:
    """The bidder, tracking endpoints and health checks for one process."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[TAXONOMY] = taxonomy or Taxonomy.default()
    app[METRICS] = Metrics()
    app.cleanup_ctx.extend([_redis_ctx, _services_ctx])
    app.router.add_post("/openrtb2/bid", _bid)
    app.router.add_get("/win", _win)
    app.router.add_get("/loss", _loss)
    app.router.add_get("/imp", _imp)
    app.router.add_get("/click", _click)
    app.router.add_get("/conv", _conv)  # issue 12: conversion postback (click id)
    app.router.add_post("/conv", _conv)  # issue 12: server to server (form or JSON)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    setup_api(app)
    setup_console(app)  # issue 11: the advertiser console at /console
    return app
