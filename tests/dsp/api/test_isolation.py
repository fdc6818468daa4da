"""Every endpoint, called with a second advertiser's token, neither shows nor changes the first's.

Another advertiser's object answers 404 exactly like one that does not exist (never 403,
which would confirm it exists), and nothing the first advertiser owns changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from dsp.api import routes
from infra import keys
from tests.dsp.api.conftest import Answer, Api, campaign_body
from tests.dsp.api.test_validation import creative_body


@dataclass(frozen=True, slots=True)
class Owned:
    """What alice owns, with ETags bob could have learnt somehow."""

    objects: dict[str, dict[str, Any]]  # plural -> one object

    def id(self, plural: str) -> str:
        return str(self.objects[plural]["id"])

    def etag(self, plural: str) -> str:
        return str(self.objects[plural]["etag"])


@pytest.fixture
async def owned(alice: Api, redis: Redis) -> Owned:
    creative = await alice.creative()
    audience = await alice.create("audiences", {"name": "buyers", "dmp_audience_id": "dmp-1"})
    targeting = {"audiences": [audience["id"]]}
    campaign = await alice.campaign([creative["id"]], targeting=targeting)
    await redis.hincrby(keys.campaign_stats(campaign["id"]), f"2026010112|{creative['id']}|imp", 9)
    advertiser = (await alice.call("GET", f"/advertisers/{alice.tenant.id}")).body
    return Owned(
        {
            "campaigns": campaign,
            "creatives": creative,
            "audiences": audience,
            "advertisers": advertiser,
        }
    )


def valid_body(plural: str, owned: Owned) -> dict[str, Any]:
    """A body bob could send: valid in itself, referring to alice's objects where it can."""
    if plural == "campaigns":
        return campaign_body([owned.id("creatives")])
    if plural == "creatives":
        return creative_body()
    if plural == "audiences":
        return {"name": "mine now", "dmp_audience_id": "dmp-9"}
    return {"name": "Bob took over", "timezone": "UTC"}


Check = Callable[[Api, Api, Owned], Awaitable[None]]


def _same_as_missing(answer: Answer, missing: Answer) -> None:
    assert answer.status == missing.status == 404, answer.body
    assert set(answer.body) == set(missing.body)


def _plural(template: str) -> str:
    return template.split("/")[1]


async def _item(bob: Api, method: str, template: str, owned: Owned) -> None:
    plural = _plural(template)
    body = None if template.endswith("archive") or method == "GET" else valid_body(plural, owned)
    path = template.replace("{id}", owned.id(plural))
    answer = await bob.call(method, path, body, If_Match=owned.etag(plural))
    missing = await bob.call(
        method, template.replace("{id}", "cmp_0123456789abcdef"), body, If_Match='"x"'
    )
    _same_as_missing(answer, missing)


async def _list(bob: Api, template: str, owned: Owned) -> None:
    answer = await bob.call("GET", f"{template}?include_archived=true&limit=200")
    assert answer.status == 200
    listed = {item["id"] for item in answer.body["items"]}
    assert owned.id(_plural(template)) not in listed
    if _plural(template) == "advertisers":
        assert listed == {bob.tenant.id}


async def _create(bob: Api, template: str, owned: Owned) -> None:
    plural = _plural(template)
    answer = await bob.call("POST", template, valid_body(plural, owned))
    if plural == "campaigns":  # alice's creative is no creative of bob's
        assert answer.status == 422 and answer.body["field"] == "creative_ids[0]"
        targeting = {"audiences": [owned.id("audiences")]}
        with_audience = await bob.call(
            "POST",
            template,
            {**campaign_body([(await bob.creative())["id"]]), "targeting": targeting},
        )
        assert with_audience.status == 422
        assert with_audience.body["field"] == "targeting.audiences[0]"
    else:  # made in bob's own space
        assert answer.status == 201 and answer.body["id"] != owned.id(plural)


async def _audit(bob: Api, owned: Owned) -> None:
    everything = await bob.call("GET", "/audit?limit=200")
    seen = {entry["object_id"] for entry in everything.body["items"]}
    assert seen.isdisjoint(item["id"] for item in owned.objects.values())
    for plural in owned.objects:
        filtered = await bob.call("GET", f"/audit?object_id={owned.id(plural)}")
        assert filtered.status == 200 and filtered.body["items"] == []


async def _reports(bob: Api, owned: Owned) -> None:
    answer = await bob.call("GET", "/reports?by=campaign,creative")
    assert answer.status == 200 and answer.body["rows"] == []
    csv = await bob.call("GET", "/reports?format=csv")
    assert owned.id("campaigns") not in csv.body
    one = await bob.call("GET", f"/reports?campaign_id={owned.id('campaigns')}")
    missing = await bob.call("GET", "/reports?campaign_id=cmp_0123456789abcdef")
    _same_as_missing(one, missing)


async def _openapi(bob: Api, alice: Api) -> None:
    assert (await bob.call("GET", "/openapi.json")).body == (
        await alice.call("GET", "/openapi.json")
    ).body


# issue 11: the DMP's shared views answer every advertiser alike, from nothing of theirs.
SHARED = {
    "/taxonomy": None,
    "/estimates": {"expression": "base AND NOT base.age.under_18"},
    "/analysis": {"ids": ["idfa,6D92078A-8246-4BA4-AE5B-76104861E7DC", "gaid,nope"]},
}


async def _shared(alice: Api, bob: Api, method: str, template: str) -> None:
    answers = [await api.call(method, template, SHARED[template]) for api in (alice, bob)]
    assert answers[0].status == 200 and answers[0].body == answers[1].body


def check_for(method: str, template: str) -> Check:
    if template in SHARED:  # issue 11
        return lambda alice, bob, owned: _shared(alice, bob, method, template)
    if template in ("/audit", "/reports", "/openapi.json"):
        checks: dict[str, Check] = {
            "/audit": lambda alice, bob, owned: _audit(bob, owned),
            "/reports": lambda alice, bob, owned: _reports(bob, owned),
            "/openapi.json": lambda alice, bob, owned: _openapi(bob, alice),
        }
        return checks[template]
    if "{id}" in template:
        return lambda alice, bob, owned: _item(bob, method, template, owned)
    if method == "GET":
        return lambda alice, bob, owned: _list(bob, template, owned)
    return lambda alice, bob, owned: _create(bob, template, owned)


async def alice_state(redis: Redis, alice: Api) -> dict[object, object]:
    mine = await redis.keys(f"*{alice.tenant.id}*")
    state: dict[object, object] = {key: await redis.dump(key) for key in sorted(mine)}
    stored = await redis.hgetall(keys.CAMPAIGNS)
    state[keys.CAMPAIGNS] = {k: v for k, v in stored.items() if alice.tenant.id in str(v)}
    return state


ROUTES = [(method, path) for method, path, _ in routes()]


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_another_advertiser_gets_404_and_changes_nothing(
    alice: Api, bob: Api, owned: Owned, redis: Redis, method: str, template: str
) -> None:
    before = await alice_state(redis, alice)
    await check_for(method, template)(alice, bob, owned)
    assert await alice_state(redis, alice) == before
    for plural, obj in owned.objects.items():
        now = await alice.call("GET", f"/{plural}/{obj['id']}")
        assert now.status == 200 and now.etag == obj["etag"]


def test_every_route_has_an_isolation_case() -> None:
    kinds = {"advertisers", "campaigns", "creatives", "audiences", "audit", "reports"}
    shared = {_plural(path) for path in SHARED}  # issue 11
    assert {_plural(path) for _, path in ROUTES} == kinds | {"openapi.json"} | shared
    assert len(ROUTES) == 4 * 4 + 3 * 2 + 3 + len(SHARED)
