"""Conversions in the report: counts, CVR with Wilson bounds, CPA and ROAS, by every dimension."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from dsp.events.aggregate import count_events
from dsp.events.schema import ENTRY_FIELD, encode
from dsp.reporting.report import build_report, format_report, records, wilson
from infra import keys
from tests.dsp.api.conftest import Api, alice, api_client  # noqa: F401 (fixtures)
from tests.dsp.test_report import notices

HOUR_MS = 3_600_000


def conversions(
    campaign: str, hour_ms: int, kind: str, n: int, value: int, tags: list[int]
) -> list[dict[str, object]]:
    return [
        {"type": kind, "ts": hour_ms + i, "auction": f"{campaign}-{hour_ms}-{i}", "imp": "1",
         "campaign": campaign, "creative": "cr1", "device": "00", "tags": tags,
         "price": value, "order": f"o{i}", "touch_ts": hour_ms}
        for i in range(n)
    ]  # fmt: skip


def test_the_aggregator_counts_conversions_and_sums_their_value_per_tag() -> None:
    events = conversions("c1", 0, "conversion", 2, 5_000_000, [7, 9])
    events += conversions("c1", 0, "view_conversion", 1, 1_000_000, [])
    added = count_events([{ENTRY_FIELD: encode(events)}])
    fields = added.nested()[("c1", "1970010100")]
    assert fields["cr1|*|click_conversions"] == 2 and fields["cr1|*|view_conversions"] == 1
    assert fields["cr1|*|conversion_value"] == 11_000_000
    assert fields["cr1|7|conversion_value"] == fields["cr1|9|conversion_value"] == 10_000_000
    assert fields["cr1|-|view_conversions"] == 1 and "cr1|*|spend" not in fields


async def test_report_figures_by_campaign_creative_day_and_tag(redis: Redis) -> None:
    hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS
    events = notices("c1", hour, 40, 10, [8])  # 40 wins at 2000 micros: spend 80,000
    events += conversions("c1", hour, "conversion", 4, 30_000, [8])
    events += conversions("c1", hour, "view_conversion", 1, 40_000, [8])
    await redis.xadd(keys.EVENTS, {ENTRY_FIELD: encode(events)})
    for by in [("campaign",), ("creative",), ("day",), ("tag",), ("campaign", "creative", "day", "tag")]:  # fmt: skip
        (row,) = records(await build_report(redis, by), by)
        assert (row["conversions"], row["click_conversions"], row["view_conversions"]) == (5, 4, 1)
        assert row["conversion_value_usd"] == 0.16
        assert row["cvr_click"] == 0.4 and row["cvr_imp"] == 0.125
        low, high = wilson(4, 10)
        assert (row["cvr_click_low"], row["cvr_click_high"]) == (round(low, 6), round(high, 6))
        low, high = wilson(5, 40)
        assert (row["cvr_imp_low"], row["cvr_imp_high"]) == (round(low, 6), round(high, 6))
        assert row["cpa_usd"] == 0.016 and row["roas"] == 2.0  # 80,000 / 5; 160,000 / 80,000
    rows = await build_report(redis, ("campaign",), current=False)
    table = format_report(rows, ("campaign",))
    assert "cvr_click" in table and "40.000%" in table


async def test_the_api_report_gains_conversion_fields(
    alice: Api,  # noqa: F811 (the fixture imported above)
    redis: Redis,
) -> None:
    creative = await alice.creative()
    own = (await alice.campaign([creative["id"]]))["id"]
    hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS
    events = notices(own, hour, 20, 4, [8]) + conversions(own, hour, "conversion", 2, 9, [8])
    await redis.xadd(keys.EVENTS, {ENTRY_FIELD: encode(events)})
    (row,) = (await alice.call("GET", "/reports?by=campaign,day")).body["rows"]
    assert (row["impressions"], row["clicks"], row["ctr"]) == (20, 4, 0.2)  # as before
    assert (row["conversions"], row["cvr_click"], row["cvr_imp"]) == (2, 0.5, 0.1)
