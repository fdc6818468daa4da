"""Targeting dimensions, decided on parsed requests against a compiled index (no I/O)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from dmp.profile import Profile
from dmp.taxonomy import Taxonomy
from dsp.bidder.decide import Moment, decide
from dsp.bidder.openrtb import BidRequest, parse_bid_request
from dsp.campaigns.dimensions import Allow
from dsp.campaigns.index import WINDOW_LINES, CampaignIndex, bid_price_micros
from dsp.campaigns.schedule import cap_field, may_bid_at
from dsp.campaigns.validation import campaign_from_dict
from tests.dsp.factories import bid_request, campaign

TAXONOMY = Taxonomy.default()
FX = {"USD": Decimal(1)}


def parsed(**extra: Any) -> BidRequest:
    return parse_bid_request(
        bid_request(**extra), default_tmax_ms=100, max_tmax_ms=1000, fx_per_usd=FX
    )


def winner(targeting: dict[str, Any], request: BidRequest, **kwargs: Any) -> str | None:
    payload = campaign("c1")
    payload["targeting"] = targeting
    index = CampaignIndex.build([campaign_from_dict(payload)], TAXONOMY)
    bids = decide(
        request, Profile(tags={}), index, kwargs.get("moment", Moment()), kwargs.get("counters", {})
    )
    return bids[0].line.campaign.id if bids else None


def device(**fields: Any) -> dict[str, Any]:
    return {"ifa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "os": "iOS", **fields}


@pytest.mark.parametrize(
    ("targeting", "matching", "other"),
    [
        ({"cities": ["Shenzhen"]}, {"device": device(geo={"city": "Shenzhen"})}, {"device": device(geo={"city": "Beijing"})}),
        ({"device_types": [4]}, {"device": device(devicetype=4)}, {"device": device(devicetype=2)}),
        ({"connection_types": [2]}, {"device": device(connectiontype=2)}, {"device": device()}),
        ({"os": [{"name": "ios", "min_version": "15.2"}]}, {"device": device(osv="16.1")}, {"device": device(osv="15.1")}),
        ({"categories": ["IAB2"]}, {"app": {"bundle": "a.b", "cat": ["IAB1", "IAB2"]}}, {"app": {"bundle": "a.b", "cat": ["IAB9"]}}),
        ({"bundles_allow": ["com.good.app"]}, {"app": {"bundle": "com.good.app"}}, {"app": {"bundle": "com.other"}}),
        ({"bundles_block": ["com.bad.app"]}, {"app": {"bundle": "com.fine.app"}}, {"app": {"bundle": "com.bad.app"}}),
        ({"domains_allow": ["news.example"]}, {"app": None, "site": {"domain": "news.example"}}, {"app": None, "site": {"domain": "x.example"}}),
        ({"domains_block": ["bad.example"]}, {"app": None, "site": {"domain": "ok.example"}}, {"app": None, "site": {"domain": "bad.example"}}),
        (
            {"radius": [{"lat": 22.54, "lon": 114.05, "km": 5}]},
            {"device": device(geo={"lat": 22.56, "lon": 114.07})},
            {"device": device(geo={"lat": 22.70, "lon": 114.30})},
        ),
    ],
    ids=["city", "device-type", "connection", "os-version", "category", "bundle-allow",
         "bundle-block", "domain-allow", "domain-block", "radius"],
)  # fmt: skip
def test_each_dimension_accepts_and_refuses(
    targeting: dict[str, Any], matching: dict[str, Any], other: dict[str, Any]
) -> None:
    assert winner(targeting, parsed(**matching)) == "c1"
    assert winner(targeting, parsed(**other)) is None


def test_radius_without_a_device_location_does_not_bid() -> None:
    assert winner({"radius": [{"lat": 22.5, "lon": 114.0, "km": 50}]}, parsed()) is None


def test_frequency_cap_stops_at_the_count_of_the_current_window() -> None:
    targeting = {"frequency_cap": {"count": 2, "per": "day"}}
    moment = Moment(cap_fields={"c1": "c1:d20261122"})
    assert winner(targeting, parsed(), moment=moment, counters={"c1:d20261122": 1}) == "c1"
    assert winner(targeting, parsed(), moment=moment, counters={"c1:d20261122": 2}) is None
    assert winner(targeting, parsed(), moment=moment, counters=None) is None


def test_blocked_lines_do_not_bid() -> None:
    payload = campaign("c1")
    index = CampaignIndex.build([campaign_from_dict(payload)], TAXONOMY)
    blocked = Moment(blocked_lines=index.lines_of(["c1"]))
    assert decide(parsed(), Profile(), index, blocked, {}) == []


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_daypart_quiet_hours_and_dates_in_the_advertisers_time_zone() -> None:
    payload = campaign("c1")
    payload["timezone"] = "Asia/Shanghai"
    payload["start"], payload["end"] = "2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00"
    monday_hours = list(range(9, 18))
    payload["targeting"] = {
        "daypart": [monday_hours, [], [], [], [], [], []],
        "quiet_hours": {"start": "12:00", "end": "13:30"},
    }
    c = campaign_from_dict(payload)
    assert may_bid_at(c, _at("2026-11-23T09:30:00+08:00"))  # Monday morning in Shanghai
    assert not may_bid_at(c, _at("2026-11-23T08:59:00+08:00"))
    assert not may_bid_at(c, _at("2026-11-23T12:45:00+08:00"))  # quiet
    assert not may_bid_at(c, _at("2026-11-24T10:00:00+08:00"))  # Tuesday
    assert not may_bid_at(c, _at("2026-12-07T10:00:00+08:00"))  # after the end
    assert may_bid_at(c, _at("2026-11-23T01:30:00+00:00"))  # 09:30 in Shanghai


def test_quiet_hours_may_cross_midnight() -> None:
    payload = campaign("c1")
    payload["targeting"] = {"quiet_hours": {"start": "23:00", "end": "06:00"}}
    c = campaign_from_dict(payload)
    assert not may_bid_at(c, _at("2026-11-23T02:00:00+00:00"))
    assert may_bid_at(c, _at("2026-11-23T07:00:00+00:00"))


def test_cap_windows_follow_the_advertisers_day() -> None:
    payload = campaign("c1")
    payload["timezone"] = "Asia/Shanghai"
    payload["targeting"] = {"frequency_cap": {"count": 1, "per": "day"}}
    c = campaign_from_dict(payload)
    assert cap_field(c, _at("2026-11-22T17:00:00+00:00")) == "c1:d20261123"


def test_target_cpc_bids_the_predicted_value_capped() -> None:
    payload = campaign("c1")
    payload["bid"] = {
        "strategy": "target_cpc",
        "target_cpc_micros": 500_000,
        "max_cpm_micros": 2_000_000,
    }
    assert bid_price_micros(campaign_from_dict(payload), predicted_ctr=0.002) == 1_000_000
    assert bid_price_micros(campaign_from_dict(payload), predicted_ctr=0.01) == 2_000_000


def test_audiences_the_dmp_cannot_resolve_keep_the_campaign_from_bidding() -> None:
    payload = campaign("c1")
    payload["targeting"] = {"audiences": ["aud-1"]}
    c = campaign_from_dict(payload)
    assert (
        decide(parsed(), Profile(tags={}), CampaignIndex.build([c], TAXONOMY), Moment(), {}) == []
    )
    female = TAXONOMY.tag("base.gender.female").id
    index = CampaignIndex.build([c], TAXONOMY, {"aud-1": "base.gender.female"})
    assert decide(parsed(), Profile(tags={female: 100}), index, Moment(), {}) != []


def test_member_audiences_match_devices_carrying_their_pseudo_tag() -> None:
    payload = campaign("c1")
    payload["targeting"] = {"audiences": ["crm-list", "lookalike"], "tags": "base.gender.female"}
    c = campaign_from_dict(payload)
    index = CampaignIndex.build([c], TAXONOMY, {"crm-list": None, "lookalike": "interest.travel"})
    female = TAXONOMY.tag("base.gender.female").id
    travel = TAXONOMY.tag("interest.travel.outbound").id
    member = index.member_tags["crm-list"]
    assert decide(parsed(), Profile(tags={female: 100, member: 100}), index, Moment(), {}) != []
    assert decide(parsed(), Profile(tags={female: 100, travel: 100}), index, Moment(), {}) != []
    assert decide(parsed(), Profile(tags={female: 100}), index, Moment(), {}) == []
    assert decide(parsed(), Profile(tags={member: 100}), index, Moment(), {}) == []


def _crowded_index(beyond: int) -> CampaignIndex:
    """More lines than the decision's first window: ``beyond`` dear Beijing campaigns past
    it, then one cheap campaign open to every city (the last line)."""
    dear = [
        campaign_from_dict(campaign(f"dear{n:05d}", cpm_micros=9_000_000, cities=["Beijing"]))
        for n in range(WINDOW_LINES + beyond)
    ]
    cheap = campaign_from_dict(campaign("cheap", cpm_micros=1_000_000))
    return CampaignIndex.build([*dear, cheap], TAXONOMY)


def test_a_line_past_the_first_window_still_bids() -> None:
    index = _crowded_index(beyond=50)
    assert index.beyond_window and index.lines[-1].campaign.id == "cheap"
    shenzhen = parsed(device=device(geo={"city": "Shenzhen"}))
    beijing = parsed(device=device(geo={"city": "Beijing"}))
    assert [b.line.campaign.id for b in decide(shenzhen, Profile(), index, Moment(), {})] == [
        "cheap"
    ]
    assert decide(beijing, Profile(), index, Moment(), {})[0].line.campaign.id == "dear00000"
    # Every dear line blocked (budget): the search goes past the window for Beijing too.
    dear_ids = [f"dear{n:05d}" for n in range(WINDOW_LINES + 50)]
    blocked = Moment(blocked_lines=index.lines_of(dear_ids))
    assert [b.line.campaign.id for b in decide(beijing, Profile(), index, blocked, {})] == ["cheap"]
    # Only lines past the window left unblocked: the dearest of those wins.
    open_past = Moment(blocked_lines=index.lines_of(dear_ids[:WINDOW_LINES]))
    found = decide(beijing, Profile(), index, open_past, {})[0].line.campaign.id
    assert found == dear_ids[WINDOW_LINES]


def test_an_index_sealed_then_added_to_answers_from_its_lines() -> None:
    allow = Allow()
    allow.add(["US"], 0)
    allow.seal()
    assert allow.accepting("US") == 0b1 and allow.accepting("FR") == 0
    allow.add([], 1)  # a line without the constraint, after sealing
    assert allow.accepting("US") == 0b11 and allow.accepting("FR") == 0b10
    allow.seal()
    assert allow.accepting("US") == 0b11 and allow.accepting("FR") == 0b10
