"""The API endpoints the console needs: taxonomy, live estimates, ID-list analysis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from adx_mock.population import generate_population
from dmp.ingest import ingest_records
from dmp.taxonomy import Taxonomy
from dsp.admin import create_api_token
from dsp.api.insights import MIN_ANALYSED
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.api.conftest import Api, Tenant, start, tenant

Client = TestClient[Request, Application]


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    started = await start(Settings(redis_url=redis_url, port=free_port(), signing_key=b"k"))
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def alice(client: Client, redis: Redis) -> Api:
    return Api(client, await tenant(redis, "Alice Shoes"))


async def _population(redis: Redis, devices: int = 600) -> list[dict[str, object]]:
    taxonomy = Taxonomy.default()
    population = list(generate_population(devices, 5, taxonomy))
    await ingest_records(redis, population, taxonomy=taxonomy, mode="merge", now=None)
    return population


def _holds(device: dict[str, object], code: str) -> bool:
    return any(str(e["tag"]).startswith(code) for e in device["tags"])  # type: ignore[attr-defined]


async def test_the_taxonomy_lists_every_tag(alice: Api) -> None:
    answer = await alice.call("GET", "/taxonomy")
    assert answer.status == 200
    tags = answer.body["tags"]
    assert len(tags) == len(Taxonomy.default())
    female = next(tag for tag in tags if tag["code"] == "base.gender.female")
    assert female == {"id": Taxonomy.default().tag("base.gender.female").id, "code": "base.gender.female", "name": female["name"], "dimension": "base",
                      "category": "gender", "scored": False}  # fmt: skip


async def test_an_estimate_is_the_exact_size_of_the_expression_now(
    alice: Api, redis: Redis
) -> None:
    population = await _population(redis)
    expression = "base.gender.female AND NOT (interest.travel OR base.age.under_18)"
    expected = sum(
        _holds(d, "base.gender.female")
        and not (_holds(d, "interest.travel.") or _holds(d, "base.age.under_18"))
        for d in population
    )
    answer = await alice.call("POST", "/estimates", {"expression": expression})
    assert answer.status == 200, answer.body
    assert answer.body == {
        "expression": "base.gender.female AND NOT (interest.travel OR base.age.under_18)",
        "devices": expected,
        "population": len(population),
    }
    assert 0 < expected < len(population)
    everyone = await alice.call("POST", "/estimates", {"expression": "  "})
    assert everyone.body == {"expression": None, "devices": 600, "population": 600}
    # The index follows the DMP: more devices, a new answer.
    await _population(redis, 700)
    grown = await alice.call("POST", "/estimates", {"expression": ""})
    assert grown.status == 200
    assert grown.body["population"] in (600, 700)  # served stale while the rebuild runs


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expression": "base.gender.nonsense"}, "expression"),
        ({"expression": "base.gender.female AND ("}, "expression"),
        ({"expression": 42}, "expression"),
        ({}, "expression"),
        ({"expression": "base", "extra": 1}, "extra"),
    ],
)
async def test_a_bad_expression_is_a_422_naming_the_field(
    alice: Api, body: object, field: str
) -> None:
    answer = await alice.call("POST", "/estimates", body)
    assert answer.status == 422
    assert answer.body["field"] == field


async def test_the_analysis_of_an_id_list_counts_shares_and_lift(alice: Api, redis: Redis) -> None:
    population = await _population(redis)
    women = [d for d in population if _holds(d, "base.gender.female")][:80]
    lines = [f"{d['id_type']},{d['id']}" for d in women] + [
        "idfa,nope",
        "idfa,6D92078A-8246-4BA4-AE5B-76104861E7DC",
    ]
    answer = await alice.call("POST", "/analysis", {"ids": "\n".join(lines)})
    assert answer.status == 200, answer.body
    body = answer.body
    assert body["match"]["matched"] == 80 and body["match"]["invalid"] == 1
    assert body["match"]["unmatched"] == 1 and body["analysed"] == 80
    assert body["withheld"] is False
    female = next(row for row in body["tags"] if row["code"] == "base.gender.female")
    share = sum(_holds(d, "base.gender.female") for d in population) / len(population)
    assert female["share"] == 1.0
    assert female["lift"] == pytest.approx(1 / share)
    assert all(row["count"] > 0 for row in body["tags"])  # tags nobody in the list holds: left out


async def test_a_list_of_few_devices_gets_counts_only(alice: Api, redis: Redis) -> None:
    population = await _population(redis, 100)
    ids = [str(d["id"]) for d in population if d["id_type"] == "idfa"][: MIN_ANALYSED - 1]
    answer = await alice.call("POST", "/analysis", {"ids": ids, "id_type": "idfa"})
    assert answer.status == 200
    assert answer.body["withheld"] is True
    assert answer.body["analysed"] == len(ids)
    assert answer.body["dimensions"] == answer.body["categories"] == answer.body["tags"] == []


async def test_too_many_ids_are_refused(alice: Api) -> None:
    answer = await alice.call("POST", "/analysis", {"ids": ["idfa,x"] * 5001})
    assert answer.status == 422 and answer.body["field"] == "ids"
    big = await alice.client.post(
        "/api/v1/analysis", data=orjson.dumps({"ids": "x" * 300_000}), headers=alice.tenant.auth
    )
    assert big.status == 413
    assert (await big.json())["error"]


async def test_the_endpoints_need_a_token_and_a_read_scope_is_enough(
    client: Client, redis: Redis, alice: Api
) -> None:
    for method, path in (("GET", "/taxonomy"), ("POST", "/estimates"), ("POST", "/analysis")):
        response = await client.request(method, f"/api/v1{path}", data=b"{}")
        assert response.status == 401
    token, _ = await create_api_token(redis, alice.tenant.id, frozenset({"read"}))
    reader = Api(client, Tenant(alice.tenant.id, token))
    answer = await reader.call("POST", "/estimates", {"expression": "base"})
    assert answer.status == 200
