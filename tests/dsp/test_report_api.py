"""``GET /api/v1/reports``: the same figures by tag, with CTR bounds, the caller's own only."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from dsp.events.schema import ENTRY_FIELD, encode
from dsp.reporting.report import wilson
from infra import keys
from tests.dsp.api.conftest import Api, alice, api_client, bob  # noqa: F401 (fixtures)
from tests.dsp.test_report import notices

HOUR_MS = 3_600_000


async def test_reports_by_tag_carry_ctr_bounds_and_stay_backward_compatible(
    alice: Api,  # noqa: F811 (the fixture imported above)
    bob: Api,  # noqa: F811
    redis: Redis,
) -> None:
    creative = await alice.creative()
    own = (await alice.campaign([creative["id"]]))["id"]
    hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS
    events = notices(own, hour, 30, 3, [8]) + notices("someone-else", hour, 10, 1, [8])
    await redis.xadd(keys.EVENTS, {ENTRY_FIELD: encode(events)})
    default = await alice.call("GET", "/reports")
    assert default.status == 200 and default.body["by"] == ["campaign"]
    (row,) = default.body["rows"]
    for name in ("campaign", "name", "wins", "impressions", "clicks", "ctr", "spend_usd",
                 "ecpm_usd", "ecpc_usd"):  # fmt: skip
        assert name in row, name  # what clients read before tags and intervals came
    low, high = wilson(3, 30)
    assert (row["impressions"], row["clicks"], row["ctr"]) == (30, 3, 0.1)
    assert (row["ctr_low"], row["ctr_high"]) == (round(low, 6), round(high, 6))
    by_tag = await alice.call("GET", "/reports?by=campaign,tag")
    assert by_tag.status == 200 and by_tag.body["by"] == ["campaign", "tag"]
    assert [(r["campaign"], r["tag"], r["impressions"]) for r in by_tag.body["rows"]] == [
        (own, "8", 30)
    ]
    csv = await alice.call("GET", "/reports?by=tag&format=csv")
    assert csv.body.splitlines()[0].startswith(
        "tag,bids,wins,impressions,clicks,invalid_clicks,ctr,ctr_low"
    )
    assert (await bob.call("GET", "/reports?by=tag")).body["rows"] == []
    assert (await alice.call("GET", "/reports?by=tag,nonsense")).status == 422
