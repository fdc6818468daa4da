"""issue 12: a matched tag's score bucket, from the bid event to the training row to the
same feature at prediction time."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from dmp.profile import UNSCORED
from dmp.taxonomy import Taxonomy
from dsp.bidder.decide import Bid
from dsp.bidder.openrtb import BidRequest, parse_bid_request
from dsp.bidder.response import Admitted
from dsp.budget.keeper import Reservation
from dsp.campaigns.index import CampaignIndex
from dsp.campaigns.validation import campaign_from_dict
from dsp.ctr import features as f
from dsp.ctr.dataset import MS_PER_DAY, join_conversions
from dsp.ctr.features import Row, names, row_of, score_bucket
from dsp.ctr.model import CtrModel
from dsp.ctr.predictor import CtrPredictor
from dsp.ctr.training import CVR_CONFIG, fit
from dsp.events.bid_log import EventBuffer
from dsp.events.schema import entry_events
from infra import keys
from tests.dsp.factories import banner_creative, bid_request, campaign

TAXONOMY = Taxonomy.default()
SUV = TAXONOMY.tag("interest.automotive.suv").id
INTENT = TAXONOMY.tag("interest.automotive.purchase_intent").id
TEST_DRIVE = TAXONOMY.tag("interest.automotive.test_drive_intent").id
GAMES = TAXONOMY.tag("interest.games.mmo").id  # not in the line's targeting
DAY0 = 20_458 * MS_PER_DAY


def line_and_request() -> tuple[Any, BidRequest]:
    payload = campaign("cpa", tags="interest.automotive", creatives=[banner_creative("cr1")])
    payload["bid"] = {"strategy": "fixed_cpm", "cpm_micros": 1_000_000}
    index = CampaignIndex.build([campaign_from_dict(payload)], TAXONOMY)
    raw = bid_request(app={"bundle": "com.example.app", "cat": ["IAB2"]}, floor=0.1)
    request = parse_bid_request(
        raw, default_tmax_ms=100, max_tmax_ms=1000, fx_per_usd={"USD": Decimal(1)}
    )
    return index.lines[0], request


def random_model(path: Path, bits: int = 16) -> CtrModel:
    """Every bucket a different weight: any feature computed differently changes the answer."""
    weights = np.random.default_rng(3).normal(0.0, 0.5, 1 << bits).astype(np.float32)
    model = CtrModel(weights, bits, {"label": "conversion"})
    model.save(path)
    return model


def test_score_buckets_and_unscored_tags() -> None:
    assert [score_bucket(s) for s in (0, 33, 34, 66, 67, 99)] == [0, 0, 1, 1, 2, 2]
    assert score_bucket(UNSCORED) is None  # what a profile holds for an unscored tag
    scored = Row("cr1", (SUV, INTENT, TEST_DRIVE), (), "ios", 300, 250, (UNSCORED, 80, 40))
    found = set(names(scored))
    assert {f"t={INTENT}|sb=2", f"t={TEST_DRIVE}|sb=1", "ms=2", "n=3"} <= found
    assert not any(name.startswith(f"t={SUV}|sb=") for name in found)
    # The pCVR model's pooled set: bias, matched-tag count, top score bucket; nothing else.
    assert {name for name in found if f.pooled(name)} == {"b", "n=3", "ms=2"}
    # An event from before issue 12 (no scores) loads, and reads as every tag unscored.
    old = {"type": "bid", "creative": "cr1", "tags": [SUV, INTENT], "os": "ios", "w": 1, "h": 1}
    row = row_of(old)
    assert row.tags == (SUV, INTENT) and row.scores == ()
    assert not any("sb=" in name or "ms=" in name for name in names(row))
    assert row_of({**old, "scores": [90]}).scores == ()  # not paired with the tags: unscored
    assert row_of({**old, "scores": [UNSCORED, 90]}).scores == (UNSCORED, 90)


async def test_event_to_training_row_to_the_same_prediction(redis: Redis, tmp_path: Path) -> None:
    """The bidder's bid event, through the stream's Arrow batch, gives the training row whose
    offline probability is the live predictor's for the same device."""
    line, request = line_and_request()
    device = {SUV: UNSCORED, INTENT: 85, TEST_DRIVE: 20, GAMES: 90}
    matched = (SUV, INTENT, TEST_DRIVE)  # what TagMatcher gives: the line's tags, sorted
    imp = request.imps[0]
    reservation = Reservation("k1", "2026-11-23", line.price_micros)
    admitted = [Admitted(Bid(imp, line), reservation, tags=matched, scores=device)]
    buffer = EventBuffer(redis, flush_s=3600)
    buffer.bids(request, admitted, "00ff", DAY0)
    assert await buffer.flush() == 1
    entries: Any = await redis.xrange(keys.EVENTS)
    (event,) = entry_events(entries[0][1])
    assert event["tags"] == list(matched) and event["scores"] == [UNSCORED, 85, 20]

    row = row_of(event)
    assert row.scores == (UNSCORED, 85, 20)
    path = tmp_path / "cvr.npz"
    model = random_model(path)
    predictor = CtrPredictor(path, TAXONOMY, name="cvr")
    assert predictor.maybe_reload()
    (offline,) = model.predict_rows([row])
    live = predictor.predict(line, device, request, imp)
    assert live == pytest.approx(float(offline), rel=1e-5)
    # The score moves the prediction, the same way on both sides.
    lower = {**device, INTENT: 50}
    (offline_lower,) = model.predict_rows([Row(**{**_fields(row), "scores": (UNSCORED, 50, 20)})])
    assert predictor.predict(line, lower, request, imp) == pytest.approx(
        float(offline_lower), rel=1e-5
    )
    assert abs(float(offline_lower) - float(offline)) > 1e-4
    # Without scores (every tag unscored) both sides agree too.
    unscored = dict.fromkeys(device, UNSCORED)
    (offline_plain,) = model.predict_rows([row_of({**event, "scores": None})])
    assert predictor.predict(line, unscored, request, imp) == pytest.approx(
        float(offline_plain), rel=1e-5
    )


def _fields(row: Row) -> dict[str, Any]:
    return {name: getattr(row, name) for name in Row.__slots__}


def test_pcvr_learns_the_score_bucket_from_a_few_dozen_conversions() -> None:
    """Clicked bids whose conversion rate doubles with a high intent score: the pooled
    top-bucket feature picks it up from about 60 conversions."""
    rng = random.Random(7)
    events: list[dict[str, Any]] = []
    for i in range(3000):
        tags, scores = [SUV], [UNSCORED]
        score = rng.randrange(100) if rng.random() < 0.5 else None
        if score is not None:
            tags.append(INTENT if rng.random() < 0.5 else TEST_DRIVE)
            scores.append(score)
        order = sorted(range(len(tags)), key=lambda k: tags[k])
        p = 0.012 * (1.0 + 1.5 * max(0.0, ((score or 0) - 50) / 50))
        ts = DAY0 + (i % 4) * MS_PER_DAY + i
        key = {"auction": f"a{i}", "imp": "1", "campaign": "c", "creative": "cr1"}
        events.append(
            {"type": "bid", "ts": ts, **key, "tags": [tags[k] for k in order],
             "scores": [scores[k] for k in order], "site_cat": ["IAB2"], "os": "ios",
             "w": 300, "h": 250}
        )  # fmt: skip
        events.append({"type": "click", "ts": ts + 1, **key})
        if rng.random() < p:
            events.append({"type": "conversion", "ts": ts + 2, **key})
    examples = join_conversions(events)
    assert 30 < sum(examples.labels) < 90
    trained = fit(examples, holdout_days=1, config=CVR_CONFIG, label="conversion")
    high = Row("cr1", (SUV, INTENT), ("IAB2",), "ios", 300, 250, (UNSCORED, 90))
    low = Row("cr1", (SUV, INTENT), ("IAB2",), "ios", 300, 250, (UNSCORED, 20))
    none = Row("cr1", (SUV,), ("IAB2",), "ios", 300, 250, (UNSCORED,))
    p_high, p_low, p_none = trained.model.predict_rows([high, low, none])
    assert p_high > 1.4 * p_low and p_high > 1.4 * p_none  # truth: about 2x


def test_the_buckets_are_the_same_function_in_the_predictor() -> None:
    from dsp.ctr import predictor

    for score in range(UNSCORED):
        b = 0 if score < predictor.SCORE_LOW else 1 if score < predictor.SCORE_HIGH else 2
        assert b == score_bucket(score)
    assert f.SCORE_BUCKETS == 3
