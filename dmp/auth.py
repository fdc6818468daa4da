"""Bearer-token auth of the DMP API: who is calling, and whether their token may do this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis

from infra.tokens import TokenInfo, verify_token

SCOPES = ("devices", "audiences")
TOKEN = web.RequestKey("token", TokenInfo)  # set by the middleware for /api/ requests
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(service: str, redis_key: web.AppKey[Redis]) -> Middleware:
    """401 for ``/api/`` requests without a known bearer token of ``service``."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        redis = request.app[redis_key]
        info = await verify_token(redis, service, token) if scheme == "Bearer" else None
        if info is None:
            body = orjson.dumps({"error": "missing or unknown bearer token"})
            return web.Response(status=401, body=body, content_type="application/json")
        request[TOKEN] = info
        return await handler(request)

    return check


def require(request: web.Request, scope: str) -> TokenInfo:
    """The caller, if their token carries ``scope``; 403 otherwise."""
    info = request[TOKEN]
    if scope not in info.scopes:
        raise web.HTTPForbidden(text=f"the token lacks the {scope!r} scope")
    return info
