"""The audience endpoints of the DMP API, over a real socket, for two owners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.app import create_app
from dmp.audience_build import bump_version
from dmp.audience_registry import targetable
from dmp.ids import parse_device_id
from dmp.ingest import ingest_records
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy
from infra.settings import Settings
from infra.tokens import create_token

Client = TestClient[Request, Application]


def idfa(n: int) -> str:
    return f"6D92078A-8246-4BA4-AE5B-{n:012X}"


def population() -> list[dict[str, Any]]:
    devices = []
    for n in range(1, 41):
        tags = ["base.gender.female" if n % 2 else "base.gender.male"]
        if n % 4 == 0:
            tags.append("interest.automotive.suv")
        devices.append({"id_type": "idfa", "id": idfa(n), "tags": tags, "country": "CHN"})
    return devices


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    await ingest_records(redis, population(), taxonomy=Taxonomy.default(), mode="replace")
    await bump_version(redis)
    app = create_app(Settings(redis_url=redis_url))
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


async def headers(redis: Redis, owner: str) -> dict[str, str]:
    token = await create_token(redis, "dmp", owner, frozenset({"audiences"}))
    return {"Authorization": f"Bearer {token}"}


async def test_audiences_from_expressions_ids_and_algebra(client: Client, redis: Redis) -> None:
    me = await headers(redis, "team-a")
    women = await client.post(
        "/api/v1/audiences", json={"name": "women", "expression": "base.gender.female"}, headers=me
    )
    assert women.status == 201
    women_id = (await women.json())["id"]
    assert (await (await client.get(f"/api/v1/audiences/{women_id}", headers=me)).json())[
        "size_now"
    ] == 20
    upload = {"name": "crm", "ids": [f"idfa,{idfa(n)}" for n in (1, 2, 3, 4)] + ["idfa,not-an-id"]}
    crm = await (await client.post("/api/v1/audiences", json=upload, headers=me)).json()
    assert crm["match"]["matched"] == 4 and crm["match"]["invalid"] == 1
    both = await client.post(
        "/api/v1/audiences",
        json={"name": "crm women", "operation": "intersection", "sources": [women_id, crm["id"]]},
        headers=me,
    )
    assert (await both.json())["size"] == 2
    estimate = await client.post(
        "/api/v1/audiences/estimate",
        json={"expression": "interest.automotive AND base.gender.male"},
        headers=me,
    )
    assert (await estimate.json()) == {"size": 10}
    parts = await (
        await client.post(
            f"/api/v1/audiences/{women_id}/split", json={"ratios": [50, 50]}, headers=me
        )
    ).json()
    assert sorted(part["size"] for part in parts) == [10, 10]
    exported = await (await client.get(f"/api/v1/audiences/{crm['id']}/export", headers=me)).text()
    assert sorted(exported.split()) == sorted(f"idfa,{idfa(n)}" for n in (1, 2, 3, 4))
    listed = await (await client.get("/api/v1/audiences", headers=me)).json()
    assert len(listed) == 5


async def test_reverse_analysis_as_json_table_and_png(client: Client, redis: Redis) -> None:
    me = await headers(redis, "team-a")
    body = {"ids": [idfa(n) for n in range(4, 41, 4)], "id_type": "idfa"}
    answer = await (await client.post("/api/v1/analysis", json=body, headers=me)).json()
    assert answer["match"]["matched"] == 10
    assert (answer["analysed"], answer["population"]) == (10, 40)
    automotive = next(row for row in answer["categories"] if row["code"] == "interest.automotive")
    # Every analysed device holds it, against a quarter of the population: lift 4.
    assert (automotive["count"], automotive["share"]) == (10, 1.0)
    assert automotive["lift"] == pytest.approx(4.0)
    gender = next(row for row in answer["categories"] if row["code"] == "base.gender")
    assert gender["share"] == 1.0 and gender["lift"] == pytest.approx(1.0)
    table = await client.post("/api/v1/analysis?format=table", json=body, headers=me)
    assert "automotive" in await table.text()
    png = await client.post("/api/v1/analysis?format=png", json=body, headers=me)
    assert png.content_type == "image/png" and (await png.read()).startswith(b"\x89PNG")


async def test_another_owner_gets_404_and_cannot_change_anything(
    client: Client, redis: Redis
) -> None:
    me, other = await headers(redis, "team-a"), await headers(redis, "team-b")
    created = await (
        await client.post(
            "/api/v1/audiences", json={"name": "w", "expression": "base.gender.female"}, headers=me
        )
    ).json()
    path = f"/api/v1/audiences/{created['id']}"
    for method, suffix, payload in [
        ("GET", "", None),
        ("GET", "/export", None),
        ("GET", "/analysis", None),
        ("POST", "/split", {"ratios": [1, 1]}),
        ("DELETE", "", None),
    ]:
        answer = await client.request(method, path + suffix, json=payload, headers=other)
        assert answer.status == 404, (method, suffix)
    combine = {"name": "x", "operation": "union", "sources": [created["id"], created["id"]]}
    assert (await client.post("/api/v1/audiences", json=combine, headers=other)).status == 404
    assert (await client.get("/api/v1/audiences", headers=other)).status == 200
    assert await (await client.get("/api/v1/audiences", headers=other)).json() == []
    assert (await client.get(path, headers=me)).status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expression": "base.gender.female"}, "name"),
        ({"name": "x", "expression": "base.gender.nope"}, "expression"),
        ({"name": "x", "expression": "base.gender.female AND ("}, "expression"),
        ({"name": "x", "ids": 5}, "ids"),
        ({"name": "x"}, "expression"),
        ({"name": "x", "operation": "xor", "sources": ["a", "b"]}, "operation"),
    ],
)
async def test_bad_audience_payloads_get_422_naming_the_field(
    client: Client, redis: Redis, body: dict[str, Any], field: str
) -> None:
    answer = await client.post(
        "/api/v1/audiences", json=body, headers=await headers(redis, "team-a")
    )
    assert answer.status == 422
    assert (await answer.json())["field"] == field


async def test_created_audiences_are_published_for_the_bidder(client: Client, redis: Redis) -> None:
    me = await headers(redis, "team-a")
    upload = {"name": "crm", "ids": [f"idfa,{idfa(n)}" for n in (1, 2)]}
    crm = await (await client.post("/api/v1/audiences", json=upload, headers=me)).json()
    women = await (
        await client.post(
            "/api/v1/audiences", json={"name": "w", "expression": "base.gender.female"}, headers=me
        )
    ).json()
    _, published = await targetable(redis)
    assert published == {crm["id"]: None, women["id"]: "base.gender.female"}
    member = parse_device_id("idfa", idfa(1)).key
    found = await ProfileStore(redis).lookup([member])
    assert found is not None and found.audiences == {crm["id"]}
    assert (await client.delete(f"/api/v1/audiences/{women['id']}", headers=me)).status == 204
    assert set((await targetable(redis))[1]) == {crm["id"]}
