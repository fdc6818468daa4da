from __future__ import annotations

import orjson
import pytest

from dsp.campaigns.validation import campaign_from_dict
from dsp.conversions.attribution import (
    DAY_S,
    Touch,
    click_through,
    last_touch,
    touch_of,
)
from dsp.conversions.click_ids import ClickId
from dsp.conversions.errors import ConversionRefused
from dsp.errors import InvalidCampaign
from tests.dsp.factories import campaign

NOW = 1_800_000_000_000
HOUR_MS = 3_600_000


def touch(kind: str, hours_ago: float, campaign: str = "c1", auction: str = "a") -> Touch:
    ts = NOW - int(hours_ago * HOUR_MS)
    return Touch(kind, auction, "1", campaign, "cr1", "dev", (), ts)  # type: ignore[arg-type]


def windows(days: dict[str, int]) -> dict[str, object]:
    return {"click_window_s": lambda c: days.get(c, 7) * DAY_S, "view_window_s": DAY_S}


def test_a_click_counts_inside_its_campaign_window_and_is_refused_after() -> None:
    click = ClickId("a", "1", "c1", "cr1", "dev", (), NOW - 7 * DAY_S * 1000)
    assert click_through(click, NOW, 7 * DAY_S).kind == "click"  # the last instant still counts
    with pytest.raises(ConversionRefused) as refused:
        click_through(click, NOW + 1, 7 * DAY_S)
    assert refused.value.reason == "expired_click"
    assert click_through(click, NOW + 1, 10 * DAY_S).event_type == "conversion"


def test_last_touch_is_the_latest_touch_inside_its_window() -> None:
    touches = [touch("imp", 30, auction="old-imp"), touch("click", 48, auction="click"),
               touch("imp", 2, auction="recent-imp"), touch("imp", 1, auction="recent-imp-2")]  # fmt: skip
    found = last_touch(touches, NOW, **windows({}))  # type: ignore[arg-type]
    assert found is not None and found.auction_id == "recent-imp-2"
    assert found.event_type == "view_conversion"
    # impressions older than the view window: the click (inside 7 days) wins
    found = last_touch(touches[:2], NOW, **windows({}))  # type: ignore[arg-type]
    assert found is not None and found.auction_id == "click"
    # ... unless the campaign's click window is shorter than the click's age
    assert last_touch(touches[:2], NOW, **windows({"c1": 1})) is None  # type: ignore[arg-type]


def test_a_click_beats_an_impression_of_the_same_moment_and_the_future_is_ignored() -> None:
    same = [touch("imp", 1, auction="imp"), touch("click", 1, auction="click")]
    found = last_touch(same, NOW, **windows({}))  # type: ignore[arg-type]
    assert found is not None and found.kind == "click"
    assert last_touch([touch("imp", -1)], NOW, **windows({})) is None  # type: ignore[arg-type]


def test_stored_touches_are_read_back_and_junk_is_skipped() -> None:
    event = {"ts": 5, "auction": "a", "imp": "1", "campaign": "c9", "creative": "cr",
             "device": "dd", "tags": [3]}  # fmt: skip
    found = touch_of("c9|imp", orjson.dumps(event))
    assert found == Touch("imp", "a", "1", "c9", "cr", "dd", (3,), 5)
    assert touch_of("c9|win", orjson.dumps(event)) is None
    assert touch_of("c9|imp", b"not json") is None


def test_click_window_days_is_an_optional_campaign_field() -> None:
    assert campaign_from_dict(campaign("c1")).click_window_days == 7
    assert campaign_from_dict({**campaign("c1"), "click_window_days": 30}).click_window_days == 30
    for bad in (0, 31, "7", 1.5):
        with pytest.raises(InvalidCampaign) as refused:
            campaign_from_dict({**campaign("c1"), "click_window_days": bad})
        assert refused.value.field == "click_window_days"
