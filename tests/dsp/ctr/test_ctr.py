"""The CTR model: training from an archive, metrics, the model file, the live predictor."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from redis.asyncio import Redis

from dmp.profile import Profile
from dmp.taxonomy import Taxonomy
from dsp.bidder.decide import Moment, decide
from dsp.bidder.openrtb import BidRequest, parse_bid_request
from dsp.campaigns.index import PRIOR_CTR, CampaignIndex
from dsp.campaigns.live import LiveCampaigns
from dsp.campaigns.store import save_campaigns
from dsp.campaigns.validation import campaign_from_dict
from dsp.ctr.dataset import MS_PER_DAY, join
from dsp.ctr.features import Row
from dsp.ctr.model import CtrModel, Design, auc, log_loss, train
from dsp.ctr.predictor import CtrPredictor
from dsp.ctr.training import TrainingError, fit
from tests.dsp.factories import banner_creative, bid_request, campaign

TAXONOMY = Taxonomy.default()
SUV = TAXONOMY.tag("interest.automotive.suv").id
SEDAN = TAXONOMY.tag("interest.automotive.sedan").id
DAY0 = 20_458 * MS_PER_DAY
REPO = Path(__file__).resolve().parents[3]


def synthetic_events(n: int, seed: int, days: int = 3) -> list[dict[str, Any]]:
    """Bid, imp and click events where the SUV tag and the IAB2 context drive clicks."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for i in range(n):
        tags = sorted(t for t in (SUV, SEDAN) if rng.random() < 0.3)
        cat = rng.choice((["IAB2"], ["IAB12"], ["IAB9"]))
        p = 0.01 * (4.0 if SUV in tags else 1.0) * (2.0 if cat == ["IAB2"] else 1.0)
        ts = DAY0 + (i * days // n) * MS_PER_DAY + rng.randrange(MS_PER_DAY)
        key = {"auction": f"a{i}", "imp": "1", "campaign": "c1", "creative": "cr1"}
        events.append(
            {"type": "bid", "ts": ts, **key, "device": "", "tags": tags, "price": 2_000_000,
             "site_cat": cat, "os": "ios", "w": 300, "h": 250}
        )  # fmt: skip
        if rng.random() < 0.9:  # most bids win and render in this archive
            events.append({"type": "imp", "ts": ts + 1, **key})
            if rng.random() < p:
                events.append({"type": "click", "ts": ts + 2, **key})
    return events


def write_archive(directory: Path, events: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    by_hour: dict[str, list[bytes]] = {}
    for event in events:
        hour = time.strftime("%Y%m%d%H", time.gmtime(event["ts"] // 1000))
        by_hour.setdefault(hour, []).append(orjson.dumps(event))
    for hour, lines in by_hour.items():
        with gzip.open(directory / f"events-{hour}.jsonl.gz", "wb") as file:
            file.write(b"\n".join(lines) + b"\n")


def test_join_labels_shown_bids_by_auction_and_imp() -> None:
    key = {"auction": "a1", "imp": "1", "campaign": "c", "creative": "cr"}
    other = {**key, "auction": "a2"}
    lost = {**key, "auction": "a3"}
    events = [
        {"type": "bid", "ts": DAY0, **key, "tags": [SUV], "site_cat": ["IAB2"], "os": "ios"},
        {"type": "bid", "ts": DAY0, **other, "tags": [], "site_cat": [], "os": "android"},
        {"type": "bid", "ts": DAY0, **lost, "tags": [], "site_cat": [], "os": "ios"},
        {"type": "imp", "ts": DAY0, **key},
        {"type": "imp", "ts": DAY0, **other},
        {"type": "click", "ts": DAY0, **key},
        {"type": "invalid_click", "ts": DAY0, **other},
    ]
    examples = join(events)
    assert examples.labels == [1, 0]  # the lost bid is no impression; invalid clicks don't count
    assert examples.rows[0].tags == (SUV,)
    assert examples.rows[0].site_cat == ("IAB2",)


def test_metrics_on_known_values() -> None:
    labels = np.array([0.0, 0.0, 1.0, 1.0])
    assert auc(labels, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert auc(np.zeros(3), np.array([0.1, 0.2, 0.3])) is None
    assert log_loss(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))


def test_training_learns_the_tag_and_context_effects() -> None:
    examples = join(synthetic_events(30_000, seed=1))
    trained = fit(examples, holdout_days=1)
    assert trained.holdout is not None
    assert trained.holdout.auc is not None and trained.holdout.auc > 0.62
    assert trained.holdout.log_loss < trained.holdout.base_log_loss
    suv = Row("cr1", (SUV,), ("IAB2",), "ios", 300, 250)
    plain = Row("cr1", (), ("IAB9",), "ios", 300, 250)
    p_suv, p_plain = trained.model.predict_rows([suv, plain])
    assert 4.0 < p_suv / p_plain < 16.0  # truth: 8x
    assert 0.004 < p_plain < 0.02  # truth: 1 %


def test_holding_out_every_day_is_refused() -> None:
    events = [e for e in synthetic_events(200, seed=2, days=1)]
    with pytest.raises(TrainingError, match="1 day"):
        fit(join(events), holdout_days=1)


def test_model_file_round_trip_and_refuses_other_files(tmp_path: Path) -> None:
    design = Design.build([Row("cr1", (SUV,), (), "ios", 300, 250)] * 50, [1] * 5 + [0] * 45, 12)
    model = train(design)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = CtrModel.load(path)
    assert loaded.bits == 12
    assert np.array_equal(loaded.weights, model.weights)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(Exception, match="junk"):
        CtrModel.load(tmp_path / "junk.npz")


def test_train_command_prints_auc_and_log_loss_and_writes_png(tmp_path: Path) -> None:
    archive = tmp_path / "events"
    write_archive(archive, synthetic_events(12_000, seed=3))
    out, png = tmp_path / "m.npz", tmp_path / "calibration.png"
    done = subprocess.run(
        [sys.executable, "-m", "dsp.cli", "ctr", "train", "--archive", str(archive),
         "--out", str(out), "--holdout-days", "1", "--calibration-png", str(png),
         "--no-progress"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "AUC" in done.stdout and "log loss" in done.stdout
    summary = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert summary["holdout"]["auc"] > 0.55
    assert summary["holdout"]["log_loss"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert CtrModel.load(out).meta["holdout"]["rows"] == summary["holdout"]["rows"]
    empty = subprocess.run(
        [sys.executable, "-m", "dsp.ctr", "train", "--archive", str(tmp_path / "none"),
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert empty.returncode == 2 and "dsp ctr" in empty.stderr


# --- the predictor and the bid ---------------------------------------------------------


def target_cpc_campaign(campaign_id: str = "cpc", *, tags: str | None = None) -> Any:
    payload = campaign(campaign_id, tags=tags, creatives=[banner_creative("cr1")])
    payload["bid"] = {
        "strategy": "target_cpc",
        "target_cpc_micros": 100_000,  # $0.10 per click
        "max_cpm_micros": 6_000_000,
    }
    return campaign_from_dict(payload)


def request(cat: str = "IAB2", floor: float = 0.1) -> BidRequest:
    raw = bid_request(app={"bundle": "com.example.app", "cat": [cat]}, floor=floor)
    return parse_bid_request(
        raw, default_tmax_ms=100, max_tmax_ms=1000, fx_per_usd={"USD": Decimal(1)}
    )


def trained_model(path: Path, suv_clicks: float) -> None:
    """A model file where SUV devices click at ``suv_clicks`` and sedan ones at 0.5 %."""
    rows, labels = [], []
    rng = random.Random(5)
    for _ in range(20_000):
        suv = rng.random() < 0.5
        rows.append(Row("cr1", (SUV,) if suv else (SEDAN,), ("IAB2",), "ios", 300, 250))
        labels.append(int(rng.random() < (suv_clicks if suv else 0.005)))
    train(Design.build(rows, labels, 14)).save(path)


def test_predictor_matches_the_model_and_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "ctr.npz"
    predictor = CtrPredictor(path, TAXONOMY)
    assert predictor.maybe_reload() is False  # no file yet: no model, prior prices
    index = CampaignIndex.build([target_cpc_campaign(tags="interest.automotive")], TAXONOMY)
    line = index.lines[0]
    bid = request()
    assert predictor.predict(line, {SUV: 100}, bid, bid.imps[0]) is None

    trained_model(path, suv_clicks=0.02)
    assert predictor.maybe_reload() is True
    assert predictor.maybe_reload() is False  # unchanged: one stat(), no load
    live = predictor.predict(line, {SUV: 100}, bid, bid.imps[0])
    model = predictor.model
    assert model is not None and live is not None
    # Serving and training see the same features: the same probability.
    (offline,) = model.predict_rows([Row("cr1", (SUV,), tuple(bid.categories), bid.os, 300, 250)])
    assert live == pytest.approx(float(offline), rel=1e-4)
    assert 0.01 < live < 0.04

    trained_model(path, suv_clicks=0.06)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert predictor.maybe_reload() is True
    newer = predictor.predict(line, {SUV: 100}, bid, bid.imps[0])
    assert newer is not None and newer > live * 2

    path.write_bytes(b"truncated")  # a bad file keeps the model that was bidding
    assert predictor.maybe_reload() is False
    assert predictor.predict(line, {SUV: 100}, bid, bid.imps[0]) == pytest.approx(newer)


def test_prediction_takes_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "ctr.npz"
    trained_model(path, suv_clicks=0.02)
    predictor = CtrPredictor(path, TAXONOMY)
    predictor.maybe_reload()
    index = CampaignIndex.build([target_cpc_campaign(tags="interest.automotive")], TAXONOMY)
    line, bid = index.lines[0], request()
    # A realistic device: ~25 tags, two of them automotive.
    tags = {tag.id: 100 for tag in list(TAXONOMY)[:23]} | {SUV: 100, SEDAN: 100}
    imp = bid.imps[0]
    predictor.predict(line, tags, bid, imp)
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        predictor.predict(line, tags, bid, imp)
    per_call_us = (time.perf_counter() - started) / n * 1e6
    assert per_call_us < 25, per_call_us  # typically 2-4 us; generous for a shared CPU


def test_target_cpc_bids_target_times_pctr_capped_and_floored(tmp_path: Path) -> None:
    path = tmp_path / "ctr.npz"
    trained_model(path, suv_clicks=0.02)
    predictor = CtrPredictor(path, TAXONOMY)
    predictor.maybe_reload()
    index = CampaignIndex.build([target_cpc_campaign(tags="interest.automotive")], TAXONOMY)
    bid = request()
    without_model = decide(bid, Profile(tags={SUV: 100}), index, Moment(), {})
    assert without_model[0].line.price_micros == int(100_000 * PRIOR_CTR * 1000)

    index.ctr = predictor
    line = index.lines[0]
    for tags in ({SUV: 100}, {SEDAN: 100}):
        p = predictor.predict(line, tags, bid, bid.imps[0])
        assert p is not None
        (chosen,) = decide(bid, Profile(tags=tags), index, Moment(), {})
        assert chosen.line.price_micros == min(6_000_000, int(100_000 * p * 1000))
    suv_price = decide(bid, Profile(tags={SUV: 100}), index, Moment(), {})[0].line.price_micros
    other_price = decide(bid, Profile(tags={SEDAN: 100}), index, Moment(), {})[0].line.price_micros
    assert suv_price > 2 * other_price  # it pays for the clicks it expects
    # Below the floor no bid is made: the value of the impression does not reach it.
    assert (
        decide(request(floor=suv_price / 1e6 + 0.01), Profile(tags={SUV: 100}), index, Moment(), {})
        == []
    )


def test_a_fixed_line_and_a_target_cpc_line_compete_on_their_prices(tmp_path: Path) -> None:
    path = tmp_path / "ctr.npz"
    trained_model(path, suv_clicks=0.02)
    predictor = CtrPredictor(path, TAXONOMY)
    predictor.maybe_reload()
    fixed = campaign_from_dict(campaign("fixed", cpm_micros=1_000_000))
    index = CampaignIndex.build([fixed, target_cpc_campaign(tags="interest.automotive")], TAXONOMY)
    index.ctr = predictor
    bid = request()
    line = next(line for line in index.lines if line.campaign.id == "cpc")
    p_suv = predictor.predict(line, {SUV: 100}, bid, bid.imps[0])
    assert p_suv is not None and 100_000 * p_suv * 1000 > 1_000_000  # worth more than fixed
    assert decide(bid, Profile(tags={SUV: 100}), index, Moment(), {})[0].line.campaign.id == "cpc"
    assert (
        decide(bid, Profile(tags={SEDAN: 100}), index, Moment(), {})[0].line.campaign.id == "fixed"
    )


async def test_live_campaigns_hand_the_predictor_to_the_index_and_reload_it(
    redis: Redis, tmp_path: Path
) -> None:
    payload = campaign("cpc", tags="interest.automotive")
    payload["bid"] = {"strategy": "target_cpc", "target_cpc_micros": 100_000, "max_cpm_micros": 6_000_000}  # fmt: skip
    await save_campaigns(redis, [payload])
    path = tmp_path / "ctr.npz"
    trained_model(path, suv_clicks=0.02)
    live = LiveCampaigns(TAXONOMY)
    predictor = CtrPredictor(path, TAXONOMY)
    live.ctr = predictor
    await live.refresh(redis)
    assert live.index.ctr is predictor and predictor.loads == 1
    bid = request()
    before = decide(bid, Profile(tags={SUV: 100}), live.index, live.moment, {})[0].line.price_micros

    trained_model(path, suv_clicks=0.06)  # retrained while the bidder runs
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    await live.refresh(redis)
    assert predictor.loads == 2
    after = decide(bid, Profile(tags={SUV: 100}), live.index, live.moment, {})[0].line.price_micros
    assert after > 2 * before
