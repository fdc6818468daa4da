"""Create, read, list, update (If-Match), archive; what reaches the bidders' campaign store."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from redis.asyncio import Redis

from infra import keys
from tests.dsp.api.conftest import Api, campaign_body


async def stored(redis: Redis, campaign_id: str) -> dict[str, Any]:
    raw = await redis.hget(keys.CAMPAIGNS, campaign_id)
    assert raw is not None, f"{campaign_id} not in the bidders' campaign store"
    payload: dict[str, Any] = orjson.loads(raw)
    return payload


async def test_a_campaign_is_created_read_and_stored_for_the_bidders(
    alice: Api, redis: Redis
) -> None:
    creative = await alice.creative()
    answer = await alice.call("POST", "/campaigns", campaign_body([creative["id"]]))
    assert answer.status == 201
    campaign = answer.body
    assert answer.etag == campaign["etag"]
    assert answer.headers["Location"] == f"/api/v1/campaigns/{campaign['id']}"
    assert campaign["status"] == "active" and campaign["version"] == 1

    read = await alice.call("GET", f"/campaigns/{campaign['id']}")
    assert read.status == 200 and read.body == campaign and read.etag == campaign["etag"]

    payload = await stored(redis, campaign["id"])
    assert payload["advertiser_id"] == alice.tenant.id
    assert payload["timezone"] == "Europe/Paris"
    assert payload["status"] == "active"
    assert [c["id"] for c in payload["creatives"]] == [creative["id"]]
    assert payload["creatives"][0]["landing_url"] == creative["landing_url"]
    assert "creative_ids" not in payload


async def test_replace_and_patch_need_the_current_etag(alice: Api, redis: Redis) -> None:
    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    path = f"/campaigns/{campaign['id']}"

    changed = campaign_body([creative["id"]], name="summer sale")
    replaced = await alice.call("PUT", path, changed, If_Match=campaign["etag"])
    assert replaced.status == 200, replaced.body
    assert replaced.body["name"] == "summer sale" and replaced.body["version"] == 2
    assert replaced.etag != campaign["etag"]

    patched = await alice.call(
        "PATCH", path, {"status": "paused", "targeting": {"os": [{"name": "ios"}]}},
        If_Match=replaced.etag,
    )  # fmt: skip
    assert patched.status == 200, patched.body
    assert patched.body["status"] == "paused"
    assert patched.body["targeting"] == {"countries": ["CHN"], "os": [{"name": "ios"}]}
    assert (await stored(redis, campaign["id"]))["status"] == "paused"

    removed = await alice.call("PATCH", path, {"targeting": {"os": None}}, If_Match=patched.etag)
    assert removed.body["targeting"] == {"countries": ["CHN"]}


async def test_a_stale_etag_gets_412_and_changes_nothing(alice: Api, redis: Redis) -> None:
    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    path = f"/campaigns/{campaign['id']}"
    first = await alice.call("PATCH", path, {"name": "editor one"}, If_Match=campaign["etag"])
    assert first.status == 200

    second = await alice.call("PATCH", path, {"name": "editor two"}, If_Match=campaign["etag"])
    assert second.status == 412
    assert second.body["current_etag"] == first.etag
    now = await alice.call("GET", path)
    assert now.body["name"] == "editor one" and now.etag == first.etag
    assert (await stored(redis, campaign["id"]))["name"] == "editor one"
    audit = await alice.call("GET", f"/audit?object_id={campaign['id']}")
    assert [entry["action"] for entry in audit.body["items"]] == ["update", "create"]


async def test_a_change_without_if_match_gets_428(alice: Api) -> None:
    creative = await alice.creative()
    answer = await alice.call("PATCH", f"/creatives/{creative['id']}", {"name": "x"})
    assert answer.status == 428
    meta = ("id", "status", "etag", "version", "created_at", "updated_at")
    body = {k: v for k, v in creative.items() if k not in meta}
    answer = await alice.call("PUT", f"/creatives/{creative['id']}", body)
    assert answer.status == 428


async def test_of_two_concurrent_edits_with_one_etag_exactly_one_wins(alice: Api) -> None:
    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    path = f"/campaigns/{campaign['id']}"
    answers = await asyncio.gather(
        *(
            alice.call("PATCH", path, {"name": f"editor {i}"}, If_Match=campaign["etag"])
            for i in range(6)
        )
    )
    assert sorted(answer.status for answer in answers) == [200] + [412] * 5
    final = await alice.call("GET", path)
    assert final.body["version"] == 2


async def test_a_same_body_update_makes_no_new_version(alice: Api) -> None:
    audience = await alice.create("audiences", {"name": "buyers", "dmp_audience_id": "a1"})
    body = {"name": "buyers", "dmp_audience_id": "a1"}
    answer = await alice.call(
        "PUT", f"/audiences/{audience['id']}", body, If_Match=audience["etag"]
    )
    assert answer.status == 200 and answer.body["version"] == 1 and answer.etag == audience["etag"]


async def test_lists_are_paginated_in_creation_order(alice: Api) -> None:
    created = [
        (await alice.create("audiences", {"name": f"a{i}", "dmp_audience_id": f"d{i}"}))["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        answer = await alice.call("GET", f"/audiences?limit=3{cursor}")
        assert answer.status == 200
        seen += [item["id"] for item in answer.body["items"]]
        pages += 1
        if answer.body["next_cursor"] is None:
            break
        cursor = f"&cursor={answer.body['next_cursor']}"
    assert seen == created and pages == 3


async def test_archived_objects_stay_readable_but_leave_lists_and_cannot_change(
    alice: Api, redis: Redis
) -> None:
    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    path = f"/campaigns/{campaign['id']}"
    archived = await alice.call("POST", f"{path}/archive")
    assert archived.status == 200 and archived.body["status"] == "archived"
    assert (await stored(redis, campaign["id"]))["status"] == "archived"

    assert (await alice.call("GET", path)).body["status"] == "archived"
    assert (await alice.call("GET", "/campaigns")).body["items"] == []
    listed = await alice.call("GET", "/campaigns?include_archived=true")
    assert [item["id"] for item in listed.body["items"]] == [campaign["id"]]

    change = await alice.call("PATCH", path, {"name": "again"}, If_Match=archived.etag)
    assert change.status == 409
    again = await alice.call("POST", f"{path}/archive")
    assert again.status == 200 and again.body["version"] == archived.body["version"]


async def test_archive_with_a_stale_etag_gets_412(alice: Api) -> None:
    audience = await alice.create("audiences", {"name": "buyers", "dmp_audience_id": "a1"})
    path = f"/audiences/{audience['id']}"
    await alice.call("PATCH", path, {"name": "buyers 2"}, If_Match=audience["etag"])
    answer = await alice.call("POST", f"{path}/archive", If_Match=audience["etag"])
    assert answer.status == 412
    assert (await alice.call("GET", path)).body["status"] == "active"


async def test_a_creative_in_use_cannot_be_archived(alice: Api) -> None:
    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    answer = await alice.call("POST", f"/creatives/{creative['id']}/archive")
    assert answer.status == 409 and campaign["id"] in answer.body["reason"]
    await alice.call("POST", f"/campaigns/{campaign['id']}/archive")
    answer = await alice.call("POST", f"/creatives/{creative['id']}/archive")
    assert answer.status == 200 and answer.body["status"] == "archived"
    reuse = await alice.call("POST", "/campaigns", campaign_body([creative["id"]]))
    assert reuse.status == 422 and reuse.body["field"] == "creative_ids[0]"


async def test_every_creative_format(alice: Api, redis: Redis) -> None:
    common = {"landing_url": "https://shop.example.com/", "adomain": ["shop.example.com"]}
    native = await alice.create(
        "creatives",
        {"format": "native", "title": "New shoes", "description": "Light and fast",
         "image_url": "https://cdn.example.com/n.png", "cat": ["IAB18-1"], **common},
    )  # fmt: skip
    video = await alice.create(
        "creatives",
        {"format": "video", "vast_url": "https://ads.example.com/vast.xml", "w": 640, "h": 360,
         "duration_s": 30, **common},
    )  # fmt: skip
    banner = await alice.creative(name="MPU")
    campaign = await alice.campaign([native["id"], video["id"], banner["id"]])
    creatives = (await stored(redis, campaign["id"]))["creatives"]
    assert [c["format"] for c in creatives] == ["native", "video", "banner"]
    assert "name" not in creatives[2]


async def test_a_changed_creative_reaches_the_campaigns_using_it(alice: Api, redis: Redis) -> None:
    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    new_url = "https://brand.example.com/new-landing"
    answer = await alice.call(
        "PATCH", f"/creatives/{creative['id']}", {"landing_url": new_url}, If_Match=creative["etag"]
    )
    assert answer.status == 200
    assert (await stored(redis, campaign["id"]))["creatives"][0]["landing_url"] == new_url


async def test_audiences_are_referenced_by_id_and_stored_as_dmp_ids(
    alice: Api, redis: Redis
) -> None:
    audience = await alice.create(
        "audiences", {"name": "car intenders", "dmp_audience_id": "dmp-aud-42"}
    )
    creative = await alice.creative()
    targeting = {"audiences": [audience["id"]], "countries": ["CHN"]}
    campaign = await alice.campaign([creative["id"]], targeting=targeting)
    assert campaign["targeting"]["audiences"] == [audience["id"]]
    assert (await stored(redis, campaign["id"]))["targeting"]["audiences"] == ["dmp-aud-42"]

    await alice.call(
        "PATCH", f"/audiences/{audience['id']}", {"dmp_audience_id": "dmp-aud-43"},
        If_Match=audience["etag"],
    )  # fmt: skip
    assert (await stored(redis, campaign["id"]))["targeting"]["audiences"] == ["dmp-aud-43"]
    in_use = await alice.call("POST", f"/audiences/{audience['id']}/archive")
    assert in_use.status == 409


async def test_target_cpc_with_full_targeting(alice: Api, redis: Redis) -> None:
    creative = await alice.creative()
    targeting = {
        "tags": "interest.automotive AND base.gender.male",
        "countries": ["CHN", "FRA"],
        "regions": ["GD"],
        "cities": ["Shenzhen"],
        "radius": [{"lat": 22.54, "lon": 114.06, "km": 5}],
        "os": [{"name": "ios", "min_version": "14.2"}, {"name": "android"}],
        "device_types": [1, 4],
        "connection_types": [2, 6],
        "categories": ["IAB2", "IAB2-3"],
        "domains_allow": ["news.example.com"],
        "domains_block": ["bad.example.com"],
        "bundles_allow": ["com.example.game"],
        "bundles_block": ["com.example.bad"],
        "daypart": [list(range(8, 22))] * 5 + [[10, 11, 12], []],
        "frequency_cap": {"count": 3, "per": "day"},
        "quiet_hours": {"start": "23:00", "end": "07:00"},
    }
    body = campaign_body(
        [creative["id"]],
        bid={"strategy": "target_cpc", "target_cpc_micros": 500_000, "max_cpm_micros": 9_000_000},
        targeting=targeting,
        start="2026-01-01T00:00:00+01:00",
        end="2027-01-01T00:00:00Z",
    )
    answer = await alice.call("POST", "/campaigns", body)
    assert answer.status == 201, answer.body
    payload = await stored(redis, answer.body["id"])
    assert payload["targeting"] == targeting
    assert payload["bid"]["strategy"] == "target_cpc"
    assert payload["start"] == "2026-01-01T00:00:00+01:00"


async def test_the_advertiser_reads_and_changes_itself(alice: Api, redis: Redis) -> None:
    listed = await alice.call("GET", "/advertisers")
    assert [item["id"] for item in listed.body["items"]] == [alice.tenant.id]
    own = listed.body["items"][0]
    assert own["timezone"] == "Europe/Paris" and own["currency"] == "USD"

    creative = await alice.creative()
    campaign = await alice.campaign([creative["id"]])
    path = f"/advertisers/{alice.tenant.id}"
    bad = await alice.call("PATCH", path, {"timezone": "Mars/Olympus"}, If_Match=own["etag"])
    assert bad.status == 422 and bad.body["field"] == "timezone"
    moved = await alice.call("PATCH", path, {"timezone": "America/New_York"}, If_Match=own["etag"])
    assert moved.status == 200 and moved.body["timezone"] == "America/New_York"
    assert (await stored(redis, campaign["id"]))["timezone"] == "America/New_York"


async def test_the_audit_log_says_who_changed_what_and_when(alice: Api) -> None:
    creative = await alice.creative()
    patched = await alice.call(
        "PATCH", f"/creatives/{creative['id']}", {"w": 728, "h": 90}, If_Match=creative["etag"]
    )
    await alice.call("POST", f"/creatives/{creative['id']}/archive")
    answer = await alice.call("GET", f"/audit?kind=creative&object_id={creative['id']}")
    archive, update, create = answer.body["items"]
    assert [archive["action"], update["action"], create["action"]] == [
        "archive",
        "update",
        "create",
    ]
    for entry in (archive, update, create):
        assert entry["actor"] == alice.tenant.id
        assert len(entry["token_id"]) == 12 and entry["token_id"] not in alice.tenant.token
        assert entry["at"].endswith("Z")
    assert update["etag_before"] == creative["etag"] and update["etag_after"] == patched.etag
    assert update["changes"] == [
        {"path": "h", "before": 250, "after": 90},
        {"path": "w", "before": 300, "after": 728},
    ]
    assert archive["changes"] == [{"path": "status", "before": "active", "after": "archived"}]
    assert create["etag_before"] is None

    first = await alice.call("GET", "/audit?limit=2")
    rest = await alice.call("GET", f"/audit?limit=50&cursor={first.body['next_cursor']}")
    ids = [e["id"] for e in first.body["items"] + rest.body["items"]]
    assert len(ids) == len(set(ids)) >= 5  # + the advertiser and its token, made by an admin
    assert rest.body["items"][-1]["actor"] == "admin"


async def test_an_unknown_query_parameter_is_a_422_naming_it(alice: Api) -> None:
    answer = await alice.call("GET", "/campaigns?limt=5")
    assert answer.status == 422 and answer.body["field"] == "limt"
    assert (await alice.call("GET", "/campaigns?limit=5")).status == 200
