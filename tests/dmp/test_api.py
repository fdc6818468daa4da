from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.app import create_app
from dmp.ids import parse_device_id
from dmp.profile_store import ProfileStore
from dmp.scene_codec import encode_scenes
from infra import keys
from infra.settings import Settings
from infra.tokens import create_token

Client = TestClient[Request, Application]
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
DEVICE = {
    "id_type": "idfa",
    "id": IDFA,
    "os": "ios",
    "country": "CHN",
    "region": "GD",
    "city": "Shenzhen",
    "tags": ["base.gender.female", {"tag": "interest.automotive.purchase_intent", "score": 72}],
}


@pytest.fixture
async def dmp_client(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    client = TestClient(TestServer(create_app(Settings(redis_url=redis_url)), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def auth(redis: Redis, *scopes: str) -> dict[str, str]:
    token = await create_token(redis, "dmp", "data-team", frozenset(scopes))
    return {"Authorization": f"Bearer {token}"}


async def test_api_needs_a_known_token_with_the_right_scope(
    dmp_client: Client, redis: Redis
) -> None:
    assert (await dmp_client.get("/api/v1/taxonomy")).status == 401
    bad = {"Authorization": "Bearer dmp_not-a-token"}
    assert (await dmp_client.get("/api/v1/taxonomy", headers=bad)).status == 401
    audiences_only = await auth(redis, "audiences")
    assert (await dmp_client.get("/api/v1/taxonomy?q=suv", headers=audiences_only)).status == 200
    path = f"/api/v1/devices/idfa/{IDFA}"
    assert (await dmp_client.get(path, headers=audiences_only)).status == 403
    assert (await dmp_client.get("/healthz")).status == 200


async def test_a_device_written_through_the_api_reads_back(
    dmp_client: Client, redis: Redis
) -> None:
    headers = await auth(redis, "devices")
    stored = await dmp_client.put("/api/v1/devices", json=DEVICE, headers=headers)
    assert stored.status == 200
    md5 = hashlib.md5(IDFA.encode()).hexdigest()
    answer = await dmp_client.get(f"/api/v1/devices/idfa_md5/{md5}", headers=headers)
    body: dict[str, Any] = await answer.json()
    assert body["city"] == "Shenzhen"
    tags = {tag["tag"]: tag["score"] for tag in body["tags"]}
    assert tags == {"base.gender.female": None, "interest.automotive.purchase_intent": 72}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "not-an-idfa"}, "id"),
        ({"tags": ["interest.nothing_like_this"]}, "tags[0]"),
        ({"tags": [{"tag": "interest.automotive.purchase_intent", "score": 140}]}, "tags[0].score"),
        ({"price_tier": "high"}, "price_tier"),
    ],
)
async def test_bad_device_payloads_get_422_naming_the_field(
    dmp_client: Client, redis: Redis, change: dict[str, object], field: str
) -> None:
    headers = await auth(redis, "devices")
    answer = await dmp_client.put("/api/v1/devices", json={**DEVICE, **change}, headers=headers)
    assert answer.status == 422
    assert (await answer.json())["field"] == field
    assert await everything_in_the_dmp(redis) == {}  # nothing half-saved


async def everything_in_the_dmp(redis: Redis) -> dict[tuple[bytes, bytes], bytes]:
    fields: dict[tuple[bytes, bytes], bytes] = {}
    async for bucket, content in ProfileStore(redis).scan_buckets():
        fields.update(((bucket, name), value) for name, value in content.items())
    return fields


def fields_of(fields: dict[tuple[bytes, bytes], bytes], primary: bytes) -> set[tuple[bytes, bytes]]:
    """The device's profile field and the alias fields naming it."""
    own = (keys.profile_bucket(primary), keys.profile_field(primary))
    return {name for name, value in fields.items() if name == own or value == primary}


@pytest.mark.parametrize("erase_by", ["raw", "md5"])
async def test_erasure_leaves_nothing_of_the_device(
    dmp_client: Client, redis: Redis, erase_by: str
) -> None:
    headers = await auth(redis, "devices")
    other = {**DEVICE, "id": "0E3C9C1B-7A6B-4B0E-9B35-3F8F5C7D2A11"}
    for device in (DEVICE, other):
        assert (await dmp_client.put("/api/v1/devices", json=device, headers=headers)).status == 200
    device_id = parse_device_id("idfa", IDFA)
    await redis.set(keys.scene_tags(device_id.key), encode_scenes({1001: (90, 10**9)}))
    await redis.hset(keys.frequency_counters(device_id.key), "c1:l", 3)
    team = await auth(redis, "audiences")
    upload = {"name": "crm", "ids": [f"idfa,{IDFA}", f"idfa,{other['id']}"]}
    crm = await (await dmp_client.post("/api/v1/audiences", json=upload, headers=team)).json()
    before = await everything_in_the_dmp(redis)
    path = (
        f"/api/v1/devices/idfa/{IDFA}"
        if erase_by == "raw"
        else f"/api/v1/devices/idfa_md5/{hashlib.md5(IDFA.encode()).hexdigest()}"
    )
    answer = await dmp_client.delete(path, headers=headers)
    assert answer.status == 200
    after = await everything_in_the_dmp(redis)
    gone = set(before) - set(after)
    assert len(fields_of(before, device_id.key)) >= 2  # the profile and its SHA1 alias
    assert gone == fields_of(before, device_id.key)
    assert not fields_of(after, device_id.key)
    assert await redis.exists(keys.scene_tags(device_id.key)) == 0
    assert await redis.exists(keys.frequency_counters(device_id.key)) == 0
    assert (await answer.json())["audiences_left"] == 1
    exported = await (
        await dmp_client.get(f"/api/v1/audiences/{crm['id']}/export", headers=team)
    ).text()
    assert exported.split() == [f"idfa,{other['id']}"]
    assert (await dmp_client.get(f"/api/v1/devices/idfa/{IDFA}", headers=headers)).status == 404
    assert (await dmp_client.delete(path, headers=headers)).status == 404
    kept = await dmp_client.get(f"/api/v1/devices/idfa/{other['id']}", headers=headers)
    assert kept.status == 200


async def test_behaviour_events_become_scene_tags_on_the_device(
    dmp_client: Client, redis: Redis
) -> None:
    headers = await auth(redis, "devices")
    assert (await dmp_client.put("/api/v1/devices", json=DEVICE, headers=headers)).status == 200
    event = {"id_type": "idfa", "id": IDFA, "kind": "app_open", "bundle": "com.autohome"}
    answer = await dmp_client.post("/api/v1/events", json=event, headers=headers)
    assert answer.status == 202
    for _ in range(100):  # the consumer runs in the app: poll up to ~2 s
        body = await (await dmp_client.get(f"/api/v1/devices/idfa/{IDFA}", headers=headers)).json()
        if body.get("scenes"):
            break
        await asyncio.sleep(0.02)
    assert [scene["tag"] for scene in body["scenes"]] == ["scene.auto.car_app_opened"]
    bad = await dmp_client.post(
        "/api/v1/events", json={**event, "kind": "teleport"}, headers=headers
    )
    assert bad.status == 422 and (await bad.json())["field"] == "kind"
