"""The advertiser API's limits: requests per token (429 + Retry-After), body size (413), and
tokens that Redis only ever holds hashed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.admin import create_advertiser, create_api_token
from dsp.api.limits import RateLimiter
from dsp.app import create_app
from infra.embedded_redis import free_port
from infra.settings import Settings
from infra.tokens import create_token, verify_token
from tests.dsp.api.conftest import Tenant, campaign_body
from tests.dsp.factories import banner_creative

Client = TestClient[Request, Application]
RATE, BURST, MAX_BODY = 2.0, 3, 4096


@pytest.fixture
async def limited(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    settings = Settings(
        redis_url=redis_url,
        port=free_port(),
        signing_key=b"k",
        api_rate_per_s=RATE,
        api_burst=BURST,
        api_max_body_bytes=MAX_BODY,
    )
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1", port=settings.port))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def tenant(redis: Redis, name: str) -> Tenant:
    record, token, _ = await create_advertiser(redis, name, "Europe/Paris")
    return Tenant(record.id, token)


def test_a_bucket_gives_its_burst_then_the_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)  # the next token comes in 1/rate
    assert limiter.take("b") == 0  # another caller has a bucket of its own
    now[0] += 0.5
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0
    now[0] += 60
    assert [limiter.take("a") for _ in range(4)][:3] == [0, 0, 0]  # refilled up to the burst


def test_the_buckets_kept_are_bounded() -> None:
    limiter = RateLimiter(1.0, 1, max_keys=100)
    for i in range(10_000):
        limiter.take(f"caller-{i}")
    assert len(limiter) == 100


async def test_a_token_over_its_rate_gets_429_and_another_token_does_not(
    limited: Client, redis: Redis
) -> None:
    alice, bob = await tenant(redis, "Alice"), await tenant(redis, "Bob")
    statuses = [
        (await limited.get("/api/v1/campaigns", headers=alice.auth)).status for _ in range(BURST)
    ]
    assert statuses == [200] * BURST
    throttled = await limited.get("/api/v1/campaigns", headers=alice.auth)
    assert throttled.status == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert (await throttled.json())["error"] == "too many requests for this token"
    assert (await limited.get("/api/v1/campaigns", headers=bob.auth)).status == 200
    await asyncio.sleep(1 / RATE + 0.05)
    assert (await limited.get("/api/v1/campaigns", headers=alice.auth)).status == 200


async def test_guessing_tokens_is_throttled_too(limited: Client) -> None:
    guess = {"Authorization": "Bearer dsp_guess"}
    statuses = [(await limited.get("/api/v1/campaigns", headers=guess)).status for _ in range(5)]
    assert statuses[:BURST] == [401] * BURST and set(statuses[BURST:]) == {429}
    assert (await limited.get("/api/v1/campaigns")).status == 401  # no token: by address


async def test_a_body_over_the_limit_gets_413_and_stores_nothing(
    limited: Client, redis: Redis
) -> None:
    alice = await tenant(redis, "Alice")
    creative = {**banner_creative(), "name": "x" * MAX_BODY}
    creative.pop("id")
    answer = await limited.post(
        "/api/v1/creatives", data=orjson.dumps(creative), headers=alice.auth
    )
    assert answer.status == 413
    assert (await answer.json())["reason"] == f"at most {MAX_BODY} bytes"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read up to the limit
        for _ in range(4):
            yield b" " * (MAX_BODY // 2)

    chunked = await limited.post("/api/v1/creatives", data=chunks(), headers=alice.auth)
    assert chunked.status == 413
    listed = await limited.get("/api/v1/creatives", headers=alice.auth)
    assert (await listed.json())["items"] == []


async def test_a_body_under_the_limit_is_accepted(limited: Client, redis: Redis) -> None:
    alice = await tenant(redis, "Alice")
    creative = banner_creative()
    creative.pop("id")
    answer = await limited.post(
        "/api/v1/creatives", data=orjson.dumps(creative), headers=alice.auth
    )
    assert answer.status == 201
    body = orjson.dumps(campaign_body([(await answer.json())["id"]]))
    assert len(body) < MAX_BODY
    assert (await limited.post("/api/v1/campaigns", data=body, headers=alice.auth)).status == 201


async def _everything(redis: Redis) -> bytes:
    """Every key and every value Redis holds, as one byte string."""
    seen: list[Any] = []
    async for key in redis.scan_iter(count=1000):
        seen.append(key)
        found: Any = await redis.type(key)
        kind = found.decode()
        if kind == "string":
            seen.append(await redis.get(key) or b"")
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                seen += [field, value]
        elif kind == "list":
            seen += await redis.lrange(key, 0, -1)
        elif kind == "set":
            seen += list(await redis.smembers(key))
        elif kind == "zset":
            seen += await redis.zrange(key, 0, -1)
        elif kind == "stream":
            entries: Any = await redis.xrange(key)
            for _, fields in entries:
                for field, value in fields.items():
                    seen += [field, value]
    return b"\n".join(seen)


async def test_redis_never_holds_a_token_in_clear(limited: Client, redis: Redis) -> None:
    alice = await tenant(redis, "Alice")
    second, _ = await create_api_token(redis, alice.id, frozenset({"read"}))
    dmp = await create_token(redis, "dmp", "data-team", frozenset({"devices"}))
    assert await verify_token(redis, "dmp", dmp) is not None
    for token in (alice.token, second):  # used, so every trace of a call is there too
        answer = await limited.get(
            "/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status == 200
    creative = banner_creative()
    creative.pop("id")
    made = await limited.post("/api/v1/creatives", data=orjson.dumps(creative), headers=alice.auth)
    assert made.status == 201
    stored = await _everything(redis)
    assert stored, "Redis holds the advertiser's data"
    for token in (alice.token, second, dmp):
        secret = token.split("_", 1)[1]
        assert token.encode() not in stored
        assert secret.encode() not in stored
        assert secret[:16].encode() not in stored  # not even a prefix of it
