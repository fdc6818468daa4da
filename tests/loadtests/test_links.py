"""The tracking scenario's links, taken from real bid answers, are the ones the bidder honours."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import LIVE
from dsp.campaigns.store import save_campaigns
from loadtests.bodies import Stamper, corpus_dir, corpus_templates, template
from loadtests.links import bid_links
from tests.dsp.test_bid_endpoint import catch_all_campaigns

Client = TestClient[Request, Application]


def test_each_stamp_is_a_fresh_auction_id_in_an_otherwise_unchanged_request() -> None:
    request = {"id": "a", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}], "tmax": 90}
    stamper = Stamper()
    sent = [orjson.loads(stamper.stamp(template(request))) for _ in range(3)]
    assert len({body["id"] for body in sent}) == 3
    assert all({**body, "id": "a"} == request for body in sent)


async def test_links_of_real_answers_are_honoured_by_the_bidder(
    dsp_client: Client, redis: Redis
) -> None:
    await save_campaigns(redis, catch_all_campaigns())
    await dsp_client.app[LIVE].refresh(redis)
    base = str(dsp_client.make_url("")).rstrip("/")
    stamper, replayed = Stamper(), 0
    for request in corpus_templates(corpus_dir()):
        response = await dsp_client.post("/openrtb2/bid", data=stamper.stamp(request))
        assert response.status in (200, 204)
        if response.status == 204:
            continue
        for links in bid_links(await response.json(), base):
            # banner HTML, native JSON and VAST all carry one pixel and one click link
            assert len(links.impressions) == 1 and len(links.clicks) == 1
            win, bill = links.won()
            assert "${" not in win + bill and "&amp;" not in links.impressions[0]
            answer = await dsp_client.session.get(win)
            assert answer.status == 200 and (await answer.json())["duplicate"] is False
            assert (await dsp_client.session.get(bill)).status == 200
            pixel = await dsp_client.session.get(links.impressions[0])
            assert pixel.status == 200 and pixel.content_type == "image/gif"
            click = await dsp_client.session.get(links.clicks[0], allow_redirects=False)
            assert click.status == 302
            assert (await dsp_client.session.get(str(links.lost()))).status == 204
            replayed += 1
    assert replayed >= 10, replayed


def test_links_elsewhere_than_the_bidder_are_never_kept() -> None:
    bid = {
        "price": 2.0,
        "nurl": "http://203.0.113.9/win?a=1&p=${AUCTION_PRICE}",
        "adm": '<img src="http://127.0.0.1:9/imp?a=1&amp;b=2"><a href="http://x.example/click?a">',
    }
    (links,) = bid_links({"seatbid": [{"bid": [bid]}]}, "http://127.0.0.1:9")
    assert links.win is None and links.won() == []
    assert links.impressions == ("http://127.0.0.1:9/imp?a=1&b=2",) and links.clicks == ()
