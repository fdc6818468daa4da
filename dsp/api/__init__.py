"""The advertiser API, ``/api/v1`` on the bidder process.

Endpoints (bearer token of one advertiser; JSON in and out; OpenAPI 3.1 at
``/api/v1/openapi.json``):

    GET  /advertisers                 the caller's own advertiser (a one-item page)
    GET|PUT|PATCH /advertisers/{id}   read or change it (name, time zone)
    GET|POST /campaigns               list (paginated) or create; same for creatives, audiences
    GET|PUT|PATCH /campaigns/{id}     read, replace or merge-patch (If-Match required)
    POST /campaigns/{id}/archive      archive (kept readable, never bid with again)
    GET  /audit                       who changed what and when
    GET  /reports                     CTR report of the caller's campaigns (JSON or CSV)

Advertisers and tokens are created with ``dsp advertisers create`` / ``dsp tokens create``
(``dsp.admin``). Every change is validated in full, written with its audit entry in one
transaction, and reaches every bidder through the stored campaign payloads they poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dsp.api import insights, objects, reports, store  # issue 11: insights (console's DMP views)
from dsp.api.changes import Rules
from dsp.api.http import (
    API,
    OPENAPI_PATH,
    PREFIX,
    Api,
    Handler,
    api_middleware,
    error_response,
)
from dsp.api.limits import limits_middleware
from dsp.api.openapi import document
from dsp.api.records import ADVERTISER, OWNED_KINDS
from dsp.api.validation import Validators
from infra.redis_client import is_cluster
from infra.tasks import stop_tasks

log = logging.getLogger(__name__)

API_APP = web.AppKey("api_app", web.Application)
REPUBLISH_S = 1.0  # Redis Cluster: how often a failed campaign publication is retried


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[API].document, content_type="application/json")


def routes() -> list[tuple[str, str, Handler]]:
    """Every (method, path, handler) of the API, paths relative to ``/api/v1``."""
    table: list[tuple[str, str, Handler]] = []
    for kind in (ADVERTISER, *OWNED_KINDS):
        base, item = f"/{kind.plural}", f"/{kind.plural}/{{id}}"
        table += [
            ("GET", base, objects.list_handler(kind)),
            ("GET", item, objects.read_handler(kind)),
            ("PUT", item, objects.replace_handler(kind)),
            ("PATCH", item, objects.patch_handler(kind)),
        ]
    for kind in OWNED_KINDS:
        table += [
            ("POST", f"/{kind.plural}", objects.create_handler(kind)),
            ("POST", f"/{kind.plural}/{{id}}/archive", objects.archive_handler(kind)),
        ]
    table += [
        ("GET", "/audit", reports.audit),
        ("GET", "/reports", reports.report),
        ("GET", OPENAPI_PATH.removeprefix(PREFIX), _openapi),
    ]
    table += insights.ROUTES  # issue 11: taxonomy, estimates, analysis
    return table


def documented_queries() -> dict[tuple[str, str], frozenset[str]]:
    """(method, path template) -> the query parameters the OpenAPI document names."""
    allowed: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in document()["paths"].items():
        shared = _query_names(item.get("parameters", []))
        for method, operation in item.items():
            if method != "parameters":
                names = shared | _query_names(operation.get("parameters", []))
                allowed[(method.upper(), path)] = names
    return allowed


def _query_names(parameters: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(p["name"] for p in parameters if p.get("in") == "query")


def query_guard(allowed: dict[tuple[str, str], frozenset[str]]) -> Middleware:
    """A query parameter the document does not name is a 422: a typo like ``?limt=`` must
    not be silently ignored, and the implementation stays what the document says."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        known = allowed.get((request.method, route.canonical)) if route is not None else None
        if known is not None:
            unknown = sorted(set(request.query) - known)
            if unknown:
                return error_response(
                    422,
                    "unknown query parameter",
                    field=unknown[0],
                    reason="not a parameter of this endpoint",
                )
        return await handler(request)

    return guard


async def _republish_deferred(redis: Redis) -> None:
    while True:
        await asyncio.sleep(REPUBLISH_S)
        await store.republish_deferred(redis)


def setup_api(app: web.Application) -> None:
    """Mount ``/api/v1`` on the bidder ``app`` (built by ``dsp.app.create_app``); idempotent."""
    if API_APP in app:
        return
    # Imported here: dsp.app imports this package to call setup_api.
    from dsp.app import REDIS, SETTINGS, TAXONOMY

    # Limits first (issue 10): a throttled or oversized request costs no Redis round trip.
    middlewares = [limits_middleware(app[SETTINGS]), api_middleware]
    api = web.Application(middlewares=[*middlewares, query_guard(documented_queries())])
    for method, path, handler in routes():
        api.router.add_route(method, path, handler)
    encoded = orjson.dumps(document())

    async def _context(sub: web.Application) -> AsyncIterator[None]:
        # The parent's cleanup_ctx (its Redis pool) has run by now: sub-apps start after it.
        sub[API] = Api(app[REDIS], Rules(Validators(), app[TAXONOMY]), encoded)
        yield

    async def _publisher(sub: web.Application) -> AsyncIterator[None]:
        # Redis Cluster: campaign changes reach the bidders in a second step (dsp.api.store).
        # What a dead process left unpublished goes out on start; what failed here, within
        # a second of its shard answering again.
        redis = app[REDIS]
        if not is_cluster(redis):
            yield
            return
        try:
            await store.republish_all(redis)
        except RedisError as error:
            log.warning("unpublished campaigns not republished", extra={"error": str(error)})
        task = asyncio.create_task(_republish_deferred(redis))
        yield
        await stop_tasks([task])

    api.cleanup_ctx.append(_context)
    api.cleanup_ctx.append(_publisher)  # issue 9: Redis Cluster
    api.cleanup_ctx.append(insights.context(app[TAXONOMY]))  # issue 11: after _context
    app.add_subapp(PREFIX, api)
    app[API_APP] = api
