"""The HTTP edge of the advertiser API: shared state, the caller, errors as JSON, parameters.

Every answer of ``/api/v1`` is JSON (CSV reports aside), errors included: ``{"error": ...}``
plus the fields of the typed error (``field`` and ``reason`` for a 422). Bearer tokens come
from ``dsp tokens create``; a token whose advertiser is archived no longer opens anything.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dsp.api.changes import Rules
from dsp.api.records import Actor
from dsp.api.store import advertiser_of
from dsp.errors import ApiError, Forbidden, InvalidCampaign, InvalidPayload
from infra.tokens import verify_token

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
OPENAPI_PATH = f"{PREFIX}/openapi.json"
READ, WRITE = "read", "write"
SCOPES = (READ, WRITE)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Api:
    """What the API's handlers share, built once per process."""

    redis: Redis
    rules: Rules
    document: bytes  # the OpenAPI document, encoded once


@dataclass(frozen=True, slots=True)
class Caller:
    advertiser_id: str
    actor: Actor
    scopes: frozenset[str]


API = web.AppKey("api", Api)
CALLER = web.RequestKey("caller", Caller)


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_bytes_response(data, dumps=orjson.dumps, status=status, headers=headers)


def error_response(status: int, message: str, **fields: object) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response({"error": message, **fields}, status, headers)


def token_id(token: str) -> str:
    """A token's public name: a prefix of its SHA-256 (what Redis keys it by), never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


async def _caller(request: web.Request) -> Caller | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    redis = request.app[API].redis
    info = await verify_token(redis, "dsp", token.strip())
    if info is None:
        return None
    advertiser = await advertiser_of(redis, info.owner)
    if advertiser is None or advertiser.archived:
        return None
    return Caller(info.owner, Actor(info.owner, token_id(token.strip())), info.scopes)


def _error_fields(error: ApiError) -> dict[str, object]:
    return {k: v for k, v in vars(error).items() if k != "args"}


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate (all but the OpenAPI document), then turn every failure into JSON."""
    try:
        if request.path != OPENAPI_PATH:
            caller = await _caller(request)
            if caller is None:
                return error_response(401, "missing, unknown or revoked bearer token")
            request[CALLER] = caller
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, str(error), **_error_fields(error))
    except InvalidCampaign as error:
        return error_response(422, str(error), field=error.field, reason=error.reason)
    except orjson.JSONDecodeError as error:
        return error_response(400, f"malformed JSON: {error}", field="$", reason="malformed JSON")
    except RedisError as error:  # issue 10: Redis away (restarting): retry, not a 500
        log.warning("api storage unavailable", extra={"error": str(error)})
        response = error_response(503, "storage unavailable, retry shortly")
        response.headers["Retry-After"] = "1"
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        response = error_response(error.status, error.reason)
        response.headers.update(headers or {})
        return response


def caller(request: web.Request, scope: str) -> Caller:
    """The authenticated caller, who must hold ``scope``."""
    found = request[CALLER]
    if scope not in found.scopes:
        raise Forbidden(scope)
    return found


async def json_body(request: web.Request) -> Any:
    return orjson.loads(await request.read())


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidPayload(name, f"expected an integer from {low} to {high}")
    return int(raw)


def bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false")
    if raw not in ("true", "false"):
        raise InvalidPayload(name, "expected true or false")
    return raw == "true"


def choice_param(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.query.get(name, default)
    if raw not in choices:
        raise InvalidPayload(name, f"expected one of {', '.join(choices)}")
    return raw
