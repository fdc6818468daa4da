"""A DMP audience, created through the DMP API, targeted by a campaign on the bidder."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.app import create_app
from dsp.app import LIVE
from dsp.campaigns.store import save_campaigns
from infra.settings import Settings
from infra.tokens import create_token
from tests.dsp.factories import bid_request, campaign, store_profile

Client = TestClient[Request, Application]
MEMBER = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
STRANGER = "0E3C9C1B-7A6B-4B0E-9B35-3F8F5C7D2A11"


async def test_an_id_list_audience_is_bid_on_for_its_members_only(
    dsp_client: Client, redis: Redis, redis_url: str
) -> None:
    for idfa in (MEMBER, STRANGER):
        await store_profile(redis, idfa=idfa, tags=("base.gender.female",))
    token = await create_token(redis, "dmp", "adv1", frozenset({"audiences"}))
    dmp = TestClient(TestServer(create_app(Settings(redis_url=redis_url)), host="127.0.0.1"))
    await dmp.start_server()
    try:
        answer = await dmp.post(
            "/api/v1/audiences",
            json={"name": "crm", "ids": [MEMBER], "id_type": "idfa"},
            headers={"Authorization": f"Bearer {token}"},
        )
        audience_id = (await answer.json())["id"]
    finally:
        await dmp.close()
    targeted = campaign("crm-campaign")
    targeted["targeting"] = {"audiences": [audience_id]}
    await save_campaigns(redis, [targeted])
    await dsp_client.app[LIVE].refresh(redis)
    member = await dsp_client.post("/openrtb2/bid", data=orjson.dumps(bid_request(ifa=MEMBER)))
    assert member.status == 200
    stranger = await dsp_client.post("/openrtb2/bid", data=orjson.dumps(bid_request(ifa=STRANGER)))
    assert stranger.status == 204
