"""The advertiser API on a real loopback socket and the session's Redis, two advertisers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from multidict import CIMultiDict
from redis.asyncio import Redis

from dsp.admin import create_advertiser
from dsp.api import setup_api
from dsp.app import create_app
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.factories import banner_creative

Client = TestClient[Request, Application]


@dataclass(frozen=True, slots=True)
class Tenant:
    """One advertiser and a token of its own."""

    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any
    headers: CIMultiDict[str]

    @property
    def etag(self) -> str:
        return self.headers["ETag"]


class Api:
    """A small client of ``/api/v1`` acting as one tenant."""

    def __init__(self, client: Client, tenant: Tenant) -> None:
        self.client, self.tenant = client, tenant

    async def call(self, method: str, path: str, body: object = None, **headers: str) -> Answer:
        sent = {**self.tenant.auth, **{k.replace("_", "-"): v for k, v in headers.items()}}
        data = None if body is None else orjson.dumps(body)
        response = await self.client.request(method, f"/api/v1{path}", data=data, headers=sent)
        raw = await response.read()
        is_json = response.content_type == "application/json"
        decoded = orjson.loads(raw) if raw and is_json else raw.decode()
        return Answer(response.status, decoded, CIMultiDict(response.headers))

    async def create(self, plural: str, body: object) -> dict[str, Any]:
        answer = await self.call("POST", f"/{plural}", body)
        assert answer.status == 201, answer.body
        created: dict[str, Any] = answer.body
        return created

    async def creative(self, **changes: Any) -> dict[str, Any]:
        body = banner_creative()
        body.pop("id")
        return await self.create("creatives", {**body, **changes})

    async def campaign(self, creative_ids: list[str], **changes: Any) -> dict[str, Any]:
        return await self.create("campaigns", campaign_body(creative_ids, **changes))


def campaign_body(creative_ids: list[str], **changes: Any) -> dict[str, Any]:
    return {
        "name": "spring sale",
        "bid": {"strategy": "fixed_cpm", "cpm_micros": 2_000_000},
        "budget": {"total_micros": 100_000_000, "daily_micros": 10_000_000},
        "targeting": {"countries": ["CHN"]},
        "creative_ids": creative_ids,
        **changes,
    }


async def start(settings: Settings) -> Client:
    app = create_app(settings)
    setup_api(app)  # idempotent: harmless once create_app mounts the API itself
    client = TestClient(TestServer(app, host="127.0.0.1", port=settings.port))
    await client.start_server()
    return client


@pytest.fixture
async def api_client(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    port = free_port()
    client = await start(Settings(redis_url=redis_url, port=port, signing_key=b"k"))
    try:
        yield client
    finally:
        await client.close()


async def tenant(redis: Redis, name: str, timezone: str = "Europe/Paris") -> Tenant:
    record, token, _ = await create_advertiser(redis, name, timezone)
    return Tenant(record.id, token)


@pytest.fixture
async def alice(api_client: Client, redis: Redis) -> Api:
    return Api(api_client, await tenant(redis, "Alice Shoes"))


@pytest.fixture
async def bob(api_client: Client, redis: Redis) -> Api:
    return Api(api_client, await tenant(redis, "Bob Cars", "Asia/Shanghai"))
