"""Bearer tokens for the HTTP APIs: random, shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from infra import keys


@dataclass(frozen=True, slots=True)
class TokenInfo:
    owner: str  # the tenant (advertiser, data team) the token acts for
    scopes: frozenset[str]
    created: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(redis: Redis, service: str, owner: str, scopes: frozenset[str]) -> str:
    """A new token for ``owner``; the caller shows it once, Redis never holds it in clear."""
    token = f"{service}_{secrets.token_urlsafe(32)}"
    info = {"owner": owner, "scopes": sorted(scopes), "created": time.time()}
    await redis.set(keys.api_token(service, _digest(token)), orjson.dumps(info))
    return token


async def verify_token(redis: Redis, service: str, token: str) -> TokenInfo | None:
    """What the token may do, or None when it is unknown or revoked."""
    stored = await redis.get(keys.api_token(service, _digest(token)))
    if stored is None:
        return None
    info = orjson.loads(stored)
    return TokenInfo(info["owner"], frozenset(info["scopes"]), info["created"])


async def revoke_token(redis: Redis, service: str, token: str) -> bool:
    return bool(await redis.delete(keys.api_token(service, _digest(token))))
