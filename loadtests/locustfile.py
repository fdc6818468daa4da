"""Locust scenarios against one bidder: the exchange, tracking callbacks and the advertiser API.

* ``exchange``: OpenRTB 2.6 bid requests back to back, mostly synthetic ones naming devices
  the bidder's DMP holds, a share of real requests from the shared corpus
  (``openrtb/valid``: each must get 200 or 204); every send has a fresh auction id.
* ``tracking``: the links of real bid answers, as the exchange and the browser call them:
  win and billing notices at a clearing price, the impression pixel, some clicks (302,
  not followed), some loss notices.
* ``api``: an advertiser with its token creates a creative and a campaign, then lists,
  reads and patches it (If-Match) and asks for its report.

Request names are ``scenario: what``; ``--summary-json`` writes per-scenario figures at the
end. ``python -m loadtests.run`` seeds a bidder and runs this file; by hand, from the
repository root, against a bidder holding the same population and some campaigns::

    python -m locust -f loadtests/locustfile.py --headless -u 20 -r 20 -t 30s \\
        --host http://127.0.0.1:8080 --devices 10000 --seed 1
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from locust import FastHttpUser, between, constant_pacing, events, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

from adx_mock.population import generate_population
from dmp.taxonomy import Taxonomy
from loadtests.bodies import (
    Stamper,
    corpus_dir,
    corpus_templates,
    read_templates,
    synthetic_templates,
)
from loadtests.links import BidLinks, bid_links
from loadtests.stats import summarise

log = logging.getLogger(__name__)

BID_HEADERS = {"Content-Type": "application/json", "x-openrtb-version": "2.6"}
BROWSER = {
    "User-Agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
}
WIN_SHARE = 0.8  # of the bids the tracking scenario replays; the rest get a loss notice
CLICK_SHARE = 0.05  # of the impressions
LINKS_KEPT = 2000  # bid answers waiting for the tracking scenario, per locust process


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    parser.add_argument(
        "--bodies", default="", help="synthetic request templates, one a line (else --devices)"
    )
    parser.add_argument("--devices", type=int, default=10_000, help="population size, no --bodies")
    parser.add_argument("--seed", type=int, default=1, help="population seed, no --bodies")
    parser.add_argument(
        "--corpus-share", type=float, default=0.1, help="share of real corpus requests"
    )
    parser.add_argument(
        "--api-token", default="", env_var="LOADTEST_API_TOKEN", help="advertiser API token"
    )
    parser.add_argument("--api-users", type=int, default=1, help="advertisers on the API")
    parser.add_argument("--summary-json", default="", help="write per-scenario figures here")


@events.init.add_listener  # type: ignore[untyped-decorator]
def _api_users(environment: Any, **_: Any) -> None:
    """A fixed number of advertisers, not a weight: the API sees a handful of them at any
    load. The master (or the only process) decides; workers run what it hands them."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    if options.api_users > 0 and options.api_token:
        Advertiser.fixed_count = options.api_users
        return
    if options.api_users > 0:
        log.warning("no --api-token (or LOADTEST_API_TOKEN): no api scenario")
    environment.user_classes[:] = [c for c in environment.user_classes if c is not Advertiser]


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _summary(environment: Any, **_: Any) -> None:
    path = environment.parsed_options.summary_json if environment.parsed_options else ""
    if path and not isinstance(environment.runner, WorkerRunner):
        Path(path).write_bytes(orjson.dumps(summarise(environment.stats)))


class Supply:
    """What one locust process sends, built once by its first user: request templates and
    the bid answers' links waiting for the tracking scenario."""

    def __init__(self, options: Any) -> None:
        if options.bodies:
            synthetic = read_templates(Path(options.bodies))
        else:
            population = list(
                generate_population(options.devices, options.seed, Taxonomy.default())
            )
            synthetic = synthetic_templates(population[:5000], options.seed)
        self.corpus_share = options.corpus_share
        self.synthetic: Iterator[str] = itertools.cycle(synthetic)
        self.corpus: Iterator[str] = itertools.cycle(corpus_templates(corpus_dir()))
        self.stamper = Stamper()
        self.links: collections.deque[BidLinks] = collections.deque(maxlen=LINKS_KEPT)

    def body(self, corpus: bool) -> str:
        return self.stamper.stamp(next(self.corpus if corpus else self.synthetic))

    def wants_links(self) -> bool:
        return len(self.links) < LINKS_KEPT // 2

    _instance: Supply | None = None

    @classmethod
    def of(cls, options: Any) -> Supply:
        if cls._instance is None:
            cls._instance = cls(options)
        return cls._instance


class _BidderUser(FastHttpUser):
    abstract = True
    supply: Supply

    def on_start(self) -> None:
        self.supply = Supply.of(self.environment.parsed_options)

    def post_bid(self, name: str, corpus: bool, keep_links: bool) -> list[BidLinks]:
        """One bid request; the links of its bids when ``keep_links`` (answers are parsed
        only then: decoding every answer would cost locust more than the bidder)."""
        found: list[BidLinks] = []
        body = self.supply.body(corpus)
        with self.client.post(
            "/openrtb2/bid", name=name, data=body, headers=BID_HEADERS, catch_response=True
        ) as response:
            if response.status_code == 204:
                response.success()
            elif response.status_code == 200:
                if keep_links:
                    found = bid_links(orjson.loads(response.content or b"null"), self.host or "")
                response.success()
            else:
                response.failure(f"status {response.status_code}")
        return found


class Exchange(_BidderUser):
    """One exchange connection posting bid requests back to back."""

    weight = 5

    def _bid(self, name: str, corpus: bool) -> None:
        wanted = self.supply.wants_links()
        self.supply.links.extend(self.post_bid(name, corpus, wanted))

    @task
    def bid(self) -> None:
        if random.random() < self.supply.corpus_share:
            self._bid("exchange: bid corpus", corpus=True)
        else:
            self._bid("exchange: bid synthetic", corpus=False)


class Tracking(_BidderUser):
    """The exchange's notices and the browser's pixel and clicks for bids the bidder made."""

    weight = 1
    wait_time = constant_pacing(0.1)

    def _links(self) -> BidLinks | None:
        if self.supply.links:
            return self.supply.links.popleft()
        # No exchange user in this process (or no bid yet): ask for a bid of our own.
        own = self.post_bid("tracking: bid for links", corpus=False, keep_links=True)
        return own[0] if own else None

    def _get(self, url: str, name: str, expected: int, **kwargs: Any) -> None:
        with self.client.get(url, name=name, catch_response=True, **kwargs) as response:
            if response.status_code == expected:
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    @task
    def notices(self) -> None:
        links = self._links()
        if links is None:
            return
        if random.random() >= WIN_SHARE:
            lost = links.lost()
            if lost:
                self._get(lost, "tracking: loss", 204)
            return
        for url in links.won():
            self._get(url, "tracking: bill" if "&n=burl" in url else "tracking: win", 200)
        for url in links.impressions:
            self._get(url, "tracking: imp", 200, headers=BROWSER)
        if links.clicks and random.random() < CLICK_SHARE:
            self._get(
                links.clicks[0], "tracking: click", 302, headers=BROWSER, allow_redirects=False
            )


class Advertiser(FastHttpUser):
    """An advertiser's script on the API: its own campaign, read, listed, patched, reported."""

    fixed_count = 1  # --api-users
    wait_time = between(0.5, 1.5)
    campaign_id = ""

    def on_start(self) -> None:
        token = self.environment.parsed_options.api_token
        self.auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        creative = self._call("POST", "/creatives", "api: create creative", 201, _creative())
        if creative is None:
            raise StopUser()
        body = _campaign(str(creative["id"]))
        campaign = self._call("POST", "/campaigns", "api: create campaign", 201, body)
        if campaign is None:
            raise StopUser()
        self.campaign_id = str(campaign["id"])

    def _call(
        self, method: str, path: str, name: str, expected: int, body: object = None, **headers: str
    ) -> dict[str, Any] | None:
        data = None if body is None else orjson.dumps(body).decode()
        with self.client.request(
            method,
            f"/api/v1{path}",
            name=name,
            data=data,
            headers={**self.auth, **headers},
            catch_response=True,
        ) as response:
            if response.status_code != expected:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return None
            response.success()
            decoded = orjson.loads(response.content) if response.content else {}
            if isinstance(decoded, dict):
                decoded["_etag"] = response.headers.get("ETag", "")
                return decoded
            return {}

    @task(5)
    def list_campaigns(self) -> None:
        self._call("GET", "/campaigns?limit=20", "api: list campaigns", 200)

    @task(3)
    def read_campaign(self) -> None:
        self._call("GET", f"/campaigns/{self.campaign_id}", "api: read campaign", 200)

    @task(1)
    def patch_campaign(self) -> None:
        path = f"/campaigns/{self.campaign_id}"
        current = self._call("GET", path, "api: read campaign", 200)
        if current is None:
            return
        change = {"bid": {"strategy": "fixed_cpm", "cpm_micros": random.randrange(1, 40) * 100_000}}
        etag = str(current["_etag"])
        self._call("PATCH", path, "api: patch campaign", 200, change, **{"If-Match": etag})

    @task(1)
    def report(self) -> None:
        self._call("GET", "/reports?by=campaign", "api: report", 200)


def _creative() -> dict[str, Any]:
    return {
        "format": "banner",
        "w": 300,
        "h": 250,
        "image_url": "https://cdn.example.com/loadtest/300x250.png",
        "landing_url": "https://brand.example.com/loadtest",
        "adomain": ["brand.example.com"],
        "cat": ["IAB2"],
    }


def _campaign(creative_id: str) -> dict[str, Any]:
    budget = 10**12  # never the limit during a load test
    return {
        "name": "load test",
        "bid": {"strategy": "fixed_cpm", "cpm_micros": 2_000_000},
        "budget": {"total_micros": budget, "daily_micros": budget},
        "targeting": {"countries": ["CHN"]},
        "creative_ids": [creative_id],
    }
