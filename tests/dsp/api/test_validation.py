"""A bad payload gets 422 naming the field path and the reason, and nothing is half-saved."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from tests.dsp.api.conftest import Api, campaign_body

GOOD_TARGETING: dict[str, Any] = {"countries": ["CHN"]}

# (what is wrong, fields replaced in a good campaign body, the field path named)
BAD_CAMPAIGNS: list[tuple[str, dict[str, Any], str]] = [
    ("no name", {"name": ""}, "name"),
    ("unknown field", {"colour": "red"}, "colour"),
    ("archived is not a status to set", {"status": "archived"}, "status"),
    ("unknown strategy", {"bid": {"strategy": "auction"}}, "bid.strategy"),
    ("fixed CPM without a price", {"bid": {"strategy": "fixed_cpm"}}, "bid.cpm_micros"),
    (
        "target CPC without a cap",
        {"bid": {"strategy": "target_cpc", "target_cpc_micros": 1}},
        "bid.max_cpm_micros",
    ),
    ("float money", {"bid": {"strategy": "fixed_cpm", "cpm_micros": 2.5}}, "bid.cpm_micros"),
    ("zero budget", {"budget": {"total_micros": 0}}, "budget.total_micros"),
    (
        "daily above total",
        {"budget": {"total_micros": 10, "daily_micros": 11}},
        "budget.daily_micros",
    ),
    ("no creatives", {"creative_ids": []}, "creative_ids"),
    ("unknown creative", {"creative_ids": ["cr_0000000000000000"]}, "creative_ids[0]"),
    ("bad start", {"start": "next tuesday"}, "start"),
    ("start without offset", {"start": "2026-01-01T00:00:00"}, "start"),
    ("end before start", {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
    ("tag expression syntax", {"targeting": {"tags": "interest.travel AND ("}}, "targeting.tags"),
    ("unknown tag", {"targeting": {"tags": "interest.unicorns"}}, "targeting.tags"),
    ("unknown audience", {"targeting": {"audiences": ["aud_1"]}}, "targeting.audiences[0]"),
    ("alpha-2 country", {"targeting": {"countries": ["CN"]}}, "targeting.countries[0]"),
    (
        "radius far away",
        {"targeting": {"radius": [{"lat": 91, "lon": 0, "km": 1}]}},
        "targeting.radius[0].lat",
    ),  # fmt: skip
    (
        "radius without km",
        {"targeting": {"radius": [{"lat": 1, "lon": 2}]}},
        "targeting.radius[0].km",
    ),  # fmt: skip
    (
        "os version",
        {"targeting": {"os": [{"name": "ios", "min_version": "x"}]}},
        "targeting.os[0].min_version",
    ),  # fmt: skip
    ("device type", {"targeting": {"device_types": [9]}}, "targeting.device_types[0]"),
    (
        "connection type",
        {"targeting": {"connection_types": ["wifi"]}},
        "targeting.connection_types[0]",
    ),  # fmt: skip
    ("category", {"targeting": {"categories": ["sports"]}}, "targeting.categories[0]"),
    ("domain", {"targeting": {"domains_block": ["not a domain"]}}, "targeting.domains_block[0]"),
    ("daypart days", {"targeting": {"daypart": [[1]] * 6}}, "targeting.daypart"),
    ("daypart hour", {"targeting": {"daypart": [[24]] + [[]] * 6}}, "targeting.daypart[0][0]"),
    (
        "cap count",
        {"targeting": {"frequency_cap": {"count": 0, "per": "day"}}},
        "targeting.frequency_cap.count",
    ),  # fmt: skip
    (
        "cap window",
        {"targeting": {"frequency_cap": {"count": 1, "per": "week"}}},
        "targeting.frequency_cap.per",
    ),  # fmt: skip
    (
        "quiet hours",
        {"targeting": {"quiet_hours": {"start": "25:00", "end": "07:00"}}},
        "targeting.quiet_hours.start",
    ),  # fmt: skip
    ("targeting typo", {"targeting": {"country": ["CHN"]}}, "targeting.country"),
]

BAD_CREATIVES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown format", {"format": "gif"}, "format"),
    ("zero width", {"w": 0}, "w"),
    ("huge height", {"h": 100_000}, "h"),
    ("ftp landing page", {"landing_url": "ftp://brand.example.com/"}, "landing_url"),
    ("relative image", {"image_url": "/img.png"}, "image_url"),
    ("no adomain", {"adomain": []}, "adomain"),
    ("bad category", {"cat": ["travel"]}, "cat[0]"),
    ("native field on a banner", {"title": "Hi"}, "title"),
    ("video without media", {"format": "video", "w": 640, "h": 360, "image_url": None}, "$"),
]


def creative_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "format": "banner",
        "w": 300,
        "h": 250,
        "image_url": "https://cdn.example.com/a.png",
        "landing_url": "https://brand.example.com/",
        "adomain": ["brand.example.com"],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def everything(redis: Redis) -> dict[object, object]:
    """Every key and its serialised value: equal snapshots mean nothing was written."""
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}


@pytest.mark.parametrize(
    ("problem", "changes", "field"), BAD_CAMPAIGNS, ids=[c[0] for c in BAD_CAMPAIGNS]
)
async def test_a_bad_campaign_gets_422_with_its_field_and_saves_nothing(
    alice: Api, redis: Redis, problem: str, changes: dict[str, Any], field: str
) -> None:
    creative = await alice.creative()
    body = campaign_body([creative["id"]], targeting=dict(GOOD_TARGETING))
    body.update(changes)
    before = await everything(redis)
    answer = await alice.call("POST", "/campaigns", body)
    assert answer.status == 422, answer.body
    assert answer.body["field"] == field, answer.body
    assert answer.body["reason"]
    assert await everything(redis) == before


# A merge patch merges objects: {"bid": {"strategy": "fixed_cpm"}} keeps the stored price.
BAD_PATCHES = [case for case in BAD_CAMPAIGNS if case[0] != "fixed CPM without a price"]


@pytest.mark.parametrize(
    ("problem", "changes", "field"), BAD_PATCHES, ids=[c[0] for c in BAD_PATCHES]
)
async def test_a_bad_campaign_patch_gets_422_and_changes_nothing(
    alice: Api, redis: Redis, problem: str, changes: dict[str, Any], field: str
) -> None:
    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    before = await everything(redis)
    answer = await alice.call(
        "PATCH", f"/campaigns/{campaign['id']}", changes, If_Match=campaign["etag"]
    )
    assert answer.status == 422, answer.body
    assert answer.body["field"] == field, answer.body
    assert await everything(redis) == before


@pytest.mark.parametrize(
    ("problem", "changes", "field"), BAD_CREATIVES, ids=[c[0] for c in BAD_CREATIVES]
)
async def test_a_bad_creative_gets_422_with_its_field_and_saves_nothing(
    alice: Api, redis: Redis, problem: str, changes: dict[str, Any], field: str
) -> None:
    before = await everything(redis)
    answer = await alice.call("POST", "/creatives", creative_body(**changes))
    assert answer.status == 422, answer.body
    assert answer.body["field"] == field, answer.body
    assert await everything(redis) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "dmp_audience_id"),
        ({"name": "x", "dmp_audience_id": "has spaces"}, "dmp_audience_id"),
        ({"name": "x", "dmp_audience_id": "a", "size": 3}, "size"),
        ([], "$"),
    ],
)
async def test_a_bad_audience_gets_422(alice: Api, redis: Redis, body: object, field: str) -> None:
    before = await everything(redis)
    answer = await alice.call("POST", "/audiences", body)
    assert answer.status == 422 and answer.body["field"] == field, answer.body
    assert await everything(redis) == before


async def test_malformed_json_gets_400(alice: Api, redis: Redis) -> None:
    before = await everything(redis)
    response = await alice.client.post(
        "/api/v1/campaigns", data=b"{not json", headers=alice.tenant.auth
    )
    assert response.status == 400
    assert (await response.json())["field"] == "$"
    assert await everything(redis) == before


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=x", "cursor=-1", "include_archived=yes"],
)
async def test_bad_list_parameters_get_422(alice: Api, query: str) -> None:
    answer = await alice.call("GET", f"/campaigns?{query}")
    assert answer.status == 422
    assert answer.body["field"] == query.split("=")[0]


@pytest.mark.parametrize(
    "query", ["by=campaign,,day", "by=country", "format=xml", "campaign_id=a%20b"]
)
async def test_bad_report_parameters_get_422_or_404(alice: Api, query: str) -> None:
    answer = await alice.call("GET", f"/reports?{query}")
    assert answer.status in (404, 422) and "error" in answer.body
