from __future__ import annotations

from typing import Any

import pytest

from dsp.campaigns.model import BidStrategy, CapWindow, CreativeFormat
from dsp.campaigns.validation import campaign_from_dict, creative_from_dict
from dsp.errors import InvalidCampaign
from tests.dsp.factories import banner_creative, campaign


def with_change(path: str, value: Any) -> dict[str, Any]:
    payload = campaign("c1")
    node: Any = payload
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("name", "", "name"),
        ("bid.cpm_micros", 0, "bid.cpm_micros"),
        ("bid.cpm_micros", 1.5, "bid.cpm_micros"),
        ("bid.strategy", "cpa", "bid.strategy"),
        ("budget.daily_micros", 10**12, "budget.daily_micros"),
        ("creatives", [], "creatives"),
        ("creatives.0.w", 0, "creatives[0].w"),
        ("creatives.0.landing_url", "ftp://x", "creatives[0].landing_url"),
        ("creatives.0.format", "audio", "creatives[0].format"),
        ("targeting.tags", "interest.auto AND (", "targeting.tags"),
        ("targeting.countries", "CHN", "targeting.countries"),
        ("targeting.radius", [{"lat": 91, "lon": 0, "km": 1}], "targeting.radius[0].lat"),
        ("targeting.os", [{"name": "ios", "min_version": "x"}], "targeting.os[0].min_version"),
        ("targeting.device_types", [9], "targeting.device_types"),
        ("targeting.daypart", [[1]] * 6, "targeting.daypart"),
        ("targeting.daypart", [[1], [25], [], [], [], [], []], "targeting.daypart[1]"),
        (
            "targeting.quiet_hours",
            {"start": "25:00", "end": "01:00"},
            "targeting.quiet_hours.start",
        ),
        ("targeting.frequency_cap", {"count": 0, "per": "day"}, "targeting.frequency_cap.count"),
        ("targeting.frequency_cap", {"count": 1, "per": "week"}, "targeting.frequency_cap.per"),
        ("timezone", "Mars/Olympus", "timezone"),
        ("start", "2026-12-01", "start"),
    ],
)
def test_bad_payloads_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(InvalidCampaign) as raised:
        campaign_from_dict(with_change(path, value))
    assert raised.value.field == field


def test_end_before_start_is_refused() -> None:
    payload = campaign("c1")
    payload["start"], payload["end"] = "2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"
    with pytest.raises(InvalidCampaign) as raised:
        campaign_from_dict(payload)
    assert raised.value.field == "end"


def test_a_full_targeting_spec_is_read() -> None:
    payload = campaign("c1")
    payload["bid"] = {
        "strategy": "target_cpc",
        "target_cpc_micros": 300_000,
        "max_cpm_micros": 5_000_000,
    }
    payload["targeting"] = {
        "tags": "interest.automotive",
        "audiences": ["aud-1"],
        "countries": ["chn"],
        "cities": ["Shenzhen"],
        "os": ["android", {"name": "iOS", "min_version": "15.2"}],
        "device_types": [1, 4],
        "frequency_cap": {"count": 3, "per": "hour"},
        "daypart": [list(range(24))] * 7,
    }
    c = campaign_from_dict(payload)
    assert c.strategy is BidStrategy.TARGET_CPC and c.cpm_micros == 5_000_000
    t = c.targeting
    assert t.countries == {"CHN"} and t.cities == {"shenzhen"} and t.os == {"android", "ios"}
    assert t.os_min_version == (("ios", (15, 2)),)
    assert t.frequency_cap is not None and t.frequency_cap.per is CapWindow.HOUR
    assert t.daypart is not None and all(t.daypart)


def test_a_video_needs_a_vast_tag_or_a_media_file() -> None:
    video = {
        "id": "v",
        "format": "video",
        "landing_url": "https://a.example",
        "adomain": ["a.example"],
    }
    with pytest.raises(InvalidCampaign) as raised:
        creative_from_dict(video, "creatives[0]")
    assert raised.value.field == "creatives[0].vast_url"
    ok = creative_from_dict({**video, "vast_url": "https://ads.example/vast.xml"})
    assert ok.format is CreativeFormat.VIDEO and ok.w == 640


def test_banner_defaults() -> None:
    creative = creative_from_dict(banner_creative("b1", 320, 50))
    assert (creative.w, creative.h) == (320, 50)
