"""Every operation of the advertiser API, called with another advertiser's token, neither shows
nor changes the first advertiser's data.

The operations come from the OpenAPI document (which must list every route the server
has), so an endpoint added later is covered without touching this file. Each one is called
by bob with alice's object ids in every path and ``*_id`` query parameter, and with bodies
naming alice's objects: an object endpoint answers 404 or 403, no answer carries alice's
data (her ids other than the one bob sent, and the unique names of her objects), nothing
answers 5xx, and every key of alice's is byte for byte what it was.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from dsp.api import routes
from dsp.api.http import PREFIX
from dsp.api.openapi import document
from infra import keys
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.api.conftest import Api, Client, campaign_body, start, tenant

DOCUMENT = document()
OPERATIONS = sorted(
    (method.upper(), path.removeprefix(PREFIX))
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method != "parameters"
)


def _query_ids(method: str, path: str) -> list[str]:
    """Documented query parameters naming an object (``object_id``, ``campaign_id``...)."""
    item = DOCUMENT["paths"][PREFIX + path]
    parameters = item.get("parameters", []) + item[method.lower()].get("parameters", [])
    return [p["name"] for p in parameters if p.get("in") == "query" and p["name"].endswith("_id")]


@dataclass(frozen=True, slots=True)
class Alice:
    api: Api
    objects: dict[str, dict[str, Any]]  # plural -> one of her objects, as she reads it
    marker: str  # in the name of every object of hers

    @property
    def ids(self) -> set[str]:
        return {str(obj["id"]) for obj in self.objects.values()}


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    settings = Settings(redis_url=redis_url, port=free_port(), signing_key=b"k")
    client = await start(settings)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def alice(client: Client, redis: Redis) -> Alice:
    marker = f"alice-secret-{secrets.token_hex(6)}"
    api = Api(client, await tenant(redis, f"Alice {marker}"))
    creative = await api.creative(name=f"creative {marker}")
    audience = await api.create(
        "audiences", {"name": f"audience {marker}", "dmp_audience_id": "dmp-1"}
    )
    campaign = await api.campaign(
        [creative["id"]], name=f"campaign {marker}", targeting={"audiences": [audience["id"]]}
    )
    await redis.hincrby(keys.campaign_stats(campaign["id"]), f"2026010112|{creative['id']}|imp", 9)
    advertiser = (await api.call("GET", f"/advertisers/{api.tenant.id}")).body
    objects = {
        "campaigns": campaign,
        "creatives": creative,
        "audiences": audience,
        "advertisers": advertiser,
    }
    return Alice(api, objects, marker)


@pytest.fixture
async def bob(client: Client, redis: Redis) -> Api:
    return Api(client, await tenant(redis, "Bob Cars", "Asia/Shanghai"))


async def alice_state(redis: Redis, alice: Alice) -> dict[object, object]:
    mine = await redis.keys(f"*{alice.api.tenant.id}*")
    state: dict[object, object] = {key: await redis.dump(key) for key in sorted(mine)}
    stored = await redis.hgetall(keys.CAMPAIGNS)
    state["bidder payloads"] = {k: v for k, v in stored.items() if alice.marker in str(v)}
    return state


def bodies(alice: Alice) -> list[Any]:
    """Bodies bob might send: empty, and naming alice's objects."""
    creative_ids = [alice.objects["creatives"]["id"]]
    audiences = {"audiences": [alice.objects["audiences"]["id"]]}
    return [
        {},
        campaign_body(creative_ids),
        campaign_body([], targeting=audiences),
        {"name": "taken over", "timezone": "UTC"},
        {key: value for key, value in alice.objects["campaigns"].items() if key != "etag"},
    ]


def test_the_document_lists_every_route() -> None:
    assert {(method, path) for method, path, _ in routes()} == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_another_advertisers_token_never_reaches_her_data(
    alice: Alice, bob: Api, redis: Redis, method: str, path: str
) -> None:
    before = await alice_state(redis, alice)
    targets = sorted(alice.ids) if "{id}" in path else [""]
    for target in targets:
        url = path.replace("{id}", target)
        queries = [""] + [f"?{name}={i}" for name in _query_ids(method, path) for i in alice.ids]
        for query in queries:
            for body in bodies(alice) if method in ("POST", "PUT", "PATCH") else [None]:
                etag = str(alice.objects.get(path.split("/")[1], {}).get("etag", '"x"'))
                answer = await bob.call(method, url + query, body, If_Match=etag)
                label = f"{method} {url}{query} -> {answer.status}"
                assert answer.status < 500, label
                if target:
                    assert answer.status in (403, 404), label
                text = str(answer.body)
                assert alice.marker not in text, label
                sent = {target} | {i for i in alice.ids if i in query}
                leaked = {i for i in alice.ids - sent if i in text}
                if body:  # bob may be told about an id he sent himself
                    leaked = {i for i in leaked if i not in str(body)}
                assert not leaked, label
    assert await alice_state(redis, alice) == before
    for plural, obj in alice.objects.items():
        now = await alice.api.call("GET", f"/{plural}/{obj['id']}")
        assert now.status == 200 and now.etag == obj["etag"]
