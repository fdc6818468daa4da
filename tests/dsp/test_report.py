"""The CTR report: Wilson intervals, grouping by tag, the formats and ``dsp report --png``."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from dsp.cli import main
from dsp.events.schema import ENTRY_FIELD, encode
from dsp.reporting.report import build_report, format_report, wilson
from infra import keys

HOUR_MS = 3_600_000


def notices(
    campaign: str, hour_ms: int, imps: int, clicks: int, tags: list[int]
) -> list[dict[str, object]]:
    base = {"campaign": campaign, "creative": "cr1", "device": "00", "tags": tags}
    found: list[dict[str, object]] = []
    for n in range(imps):
        auction = f"{campaign}-{hour_ms}-{n}"
        found.append(
            {
                **base,
                "type": "win",
                "ts": hour_ms + n,
                "auction": auction,
                "imp": "1",
                "price": 2000,
            }
        )
        found.append(
            {**base, "type": "imp", "ts": hour_ms + n, "auction": auction, "imp": "1", "price": 0}
        )
        if n < clicks:
            found.append(
                {
                    **base,
                    "type": "click",
                    "ts": hour_ms + n,
                    "auction": auction,
                    "imp": "1",
                    "price": 0,
                }
            )
    return found


def test_wilson_interval_matches_known_values() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(50, 1000) == pytest.approx((0.0381, 0.0653), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)  # nothing shown: nothing known


async def test_report_by_tag_and_by_campaign_from_the_stream(redis: Redis) -> None:
    hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    events = notices("c1", hour, 40, 4, [8, 32]) + notices("c1", hour + HOUR_MS, 10, 1, [8])
    events += notices("c2", hour, 5, 0, [])
    await redis.xadd(keys.EVENTS, {ENTRY_FIELD: encode(events)})
    by_campaign = await build_report(redis, ("campaign",))
    assert [(r.key, r.impressions, r.clicks, r.wins) for r in by_campaign] == [
        (("c1",), 50, 5, 50), (("c2",), 5, 0, 5)
    ]  # fmt: skip
    assert by_campaign[0].spend_micros == 50 * 2000
    assert by_campaign[0].ecpm == pytest.approx(2.0) and by_campaign[0].ecpc == pytest.approx(0.02)
    by_tag = {r.key: r for r in await build_report(redis, ("campaign", "tag"))}
    assert set(by_tag) == {("c1", "8"), ("c1", "32"), ("c2", "-")}
    assert (by_tag[("c1", "8")].impressions, by_tag[("c1", "32")].impressions) == (50, 40)
    hours = await build_report(redis, ("hour",))
    assert [r.clicks for r in hours] == [4, 1]
    table = format_report(by_campaign, ("campaign",))
    assert "TOTAL" in table and "10.000%" in table  # CTR 5/50
    assert "TOTAL" not in format_report(list(by_tag.values()), ("campaign", "tag"))
    records = orjson.loads(format_report(by_campaign, ("campaign",), "json"))
    low, high = wilson(5, 50)
    assert records[0]["ctr_low"] == round(low, 6) and records[0]["ctr_high"] == round(high, 6)
    csv = format_report(by_campaign, ("campaign",), "csv").splitlines()
    assert csv[0].startswith("campaign,bids,wins,impressions,clicks,invalid_clicks,ctr,ctr_low")
    assert len(csv) == 3


def test_dsp_report_prints_json_and_draws_the_png(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sync_redis.Redis.from_url(redis_url)
    client.flushdb()
    hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS - 5 * HOUR_MS
    events = []
    for n in range(5):
        events += notices("c1", hour + n * HOUR_MS, 200, 3 + 4 * n, [8, 32 + n % 2])
    client.xadd(keys.EVENTS, {ENTRY_FIELD: encode(events)})
    client.close()
    png = tmp_path / "ctr.png"
    code = main(
        ["report", "--by", "tag", "--format", "json", "--png", str(png), "--redis-url", redis_url]
    )
    assert code == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [r["tag"] for r in rows] == ["8", "32", "33"]
    assert rows[0]["tag_code"] == "base.gender.male"
    assert (
        rows[0]["impressions"] == 1000 and rows[0]["ctr_low"] < rows[0]["ctr"] < rows[0]["ctr_high"]
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
