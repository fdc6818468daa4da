"""``adx-mock experiment``: the strategies on the same traffic and budget, and the lift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from adx_mock.experiment import (
    CLICKS_PER_BUDGET_LIFT_REQUIRED,
    CTR_LIFT_REQUIRED,
    ORACLE_ARM,
    TARGET_CPA_ARM,
    ExperimentConfig,
    ExperimentResult,
    format_table,
    run_experiment,
)
from dsp.ctr.model import CtrModel
from dsp.events.archive import archive_files, read_archive

REPO = Path(__file__).resolve().parents[2]
# About the smallest market whose fixed-CPM history holds enough clicks (~250 at realistic
# CTRs) to train a useful model: ~35 s. Smaller ones are mostly noise. Seeded, so the
# figures are the same on every run; other seeds of this size sit near the thresholds
# (seed 3: 2.9x and 1.29x), the default market (`adx-mock experiment`) clears them.
SMALL = {
    "devices": 4000,
    "history_days": 4,
    "history_requests_per_day": 40_000,
    "test_requests": 90_000,
    "budget_micros": 6_000_000,
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> ExperimentResult:
    root = tmp_path_factory.mktemp("experiment")
    config = ExperimentConfig(
        **SMALL,  # type: ignore[arg-type]
        seed=1,
        archive_dir=root / "events",
        model_path=root / "ctr.npz",
        cvr_model_path=root / "cvr.npz",
        calibration_png=root / "calibration.png",
    )
    return run_experiment(config, progress=False)


def test_pctr_bidding_beats_both_fixed_strategies(result: ExperimentResult) -> None:
    arms = result.arms
    untargeted = arms["untargeted_fixed_cpm"]
    tagged = arms["tag_targeted_fixed_cpm"]
    pctr = arms["tag_targeted_pctr"]
    # The expected clicks (the hidden model's probabilities summed over the impressions
    # bought) are what the ratios are held to; sampled clicks add luck on top.
    assert result.ctr_lift(expected=True) >= CTR_LIFT_REQUIRED
    assert result.clicks_per_budget_lift(expected=True) >= CLICKS_PER_BUDGET_LIFT_REQUIRED
    assert untargeted.expected_ctr < tagged.expected_ctr < pctr.expected_ctr
    assert pctr.clicks > tagged.clicks > untargeted.clicks


def test_every_strategy_had_the_same_budget_and_spent_it(result: ExperimentResult) -> None:
    budget = result.config.budget_micros
    for name, arm in result.arms.items():
        assert arm.budget_micros == budget
        # Never past the budget by more than the last impressions' price; the fixed-CPM
        # strategies spend it all (model-priced bidding may leave money on a short traffic).
        assert arm.spend_micros < budget + 20_000
        if name.endswith("fixed_cpm"):
            assert arm.spend_micros >= budget
        else:
            assert arm.spend_micros >= 0.9 * budget
    # The same traffic, in the same order: each strategy stopped when its money was gone.
    requests = [arm.requests for arm in result.arms.values()]
    assert requests[0] < requests[1] < requests[2] <= result.config.test_requests


def test_the_model_was_trained_from_an_event_archive(result: ExperimentResult) -> None:
    assert archive_files(result.archive_dir)
    kinds: dict[str, int] = {}
    tagged_bid = None
    for line in read_archive(result.archive_dir):
        event = orjson.loads(line)
        kinds[event["type"]] = kinds.get(event["type"], 0) + 1
        if event["type"] == "bid" and event["tags"] and tagged_bid is None:
            tagged_bid = event
    assert set(kinds) == {"bid", "win", "imp", "click", "conversion"}
    assert tagged_bid is not None
    assert {"auction", "imp", "campaign", "creative", "ts", "site_cat", "os", "w", "h"} <= set(
        tagged_bid
    )
    model = CtrModel.load(result.model_path)
    holdout = result.trained.holdout
    assert holdout is not None and holdout.auc is not None and holdout.auc > 0.55
    assert model.meta["holdout"]["rows"] == holdout.rows
    assert result.config.calibration_png is not None
    assert result.config.calibration_png.read_bytes()[:4] == b"\x89PNG"


def test_bid_events_carry_the_matched_tags_scores_and_the_pcvr_uses_them(
    result: ExperimentResult,
) -> None:
    """issue 12: the history's bid events carry each matched tag's DMP score, the pCVR model
    is trained on the pooled features (the score buckets among them)."""
    scored = 0
    for line in read_archive(result.archive_dir):
        event = orjson.loads(line)
        if event["type"] != "bid":
            continue
        assert len(event["scores"]) == len(event["tags"])
        assert all(0 <= score <= 100 for score in event["scores"])
        scored += any(score < 100 for score in event["scores"])
    assert scored > 100  # the automotive intent tags are scored
    model = CtrModel.load(result.cvr_model_path)
    assert model.meta["features"] == "pooled" and model.meta["label"] == "conversion"
    assert CtrModel.load(result.model_path).meta["features"] == "all"


def test_clicks_convert_and_the_target_cpa_arm_bids_with_the_pcvr_model(
    result: ExperimentResult,
) -> None:
    """issue 12, item 4: conversions flow from the market into the archive, the pCVR model
    is trained from them, and the target-CPA arm buys conversions with it."""
    conversions = []
    clicks = set()
    for line in read_archive(result.archive_dir):
        event = orjson.loads(line)
        if event["type"] == "click":
            clicks.add((event["auction"], event["imp"]))
        elif event["type"] == "conversion":
            conversions.append(event)
    history = result.history
    assert len(conversions) == sum(arm.conversions for arm in history.values()) > 0
    for event in conversions:  # as /conv records a click-through conversion
        assert (event["auction"], event["imp"]) in clicks
        assert event["price"] > 0 and event["order"] == event["auction"]
        assert event["ts"] > event["touch_ts"]
    assert result.cvr_trained is not None and not result.cvr_error
    model = CtrModel.load(result.model_path.with_name("cvr.npz"))
    assert model.meta["label"] == "conversion"
    assert result.cvr_trained.train_rows == model.meta["rows"]
    assert model.meta["rows"] < sum(arm.clicks for arm in history.values())  # clicks, held out
    # Per click, the tag-targeted history converted more than the untargeted one (the
    # market's truth: intent converts).
    tagged, untargeted = history["history_tag_targeted"], history["history_untargeted"]
    assert (
        tagged.expected_conversions / tagged.expected_clicks
        > untargeted.expected_conversions / untargeted.expected_clicks
    )
    arms = result.arms
    cpa, cpc = arms[TARGET_CPA_ARM], arms["tag_targeted_pctr"]
    assert cpa.impressions > 0 and cpa.clicks > 0 and cpa.expected_conversions > 0
    assert 0 < result.target_cpa_micros <= 1_000_000_000
    # The learned pCVR: this small market's 4-day history holds a handful of conversions,
    # so it stays close to target CPC here (the default market: 1.08x and 1.10x, README).
    assert result.cpa_lift(expected=True) > 0.85
    # The mechanism itself: with the market's own conversion rates as its pCVR, target CPA
    # buys clearly more conversions per budget than target CPC.
    assert result.cpa_lift(expected=True, arm=ORACLE_ARM) > 1.2
    assert arms[ORACLE_ARM].expected_conversions > cpc.expected_conversions
    table = format_table(result)
    assert "conv/$budget" in table and TARGET_CPA_ARM in table and "pCVR model" in table
    summary = result.to_dict()
    assert summary["arms"][TARGET_CPA_ARM]["conversions_per_budget_usd"] == round(  # type: ignore[index]
        cpa.conversions / (result.config.budget_micros / 1e6), 5
    )


def test_without_conversions_in_the_history_target_cpa_does_not_bid() -> None:
    # Seed 3's two tiny days hold a few clicks and not one conversion.
    tiny = {**SMALL, "seed": 3, "history_days": 2, "history_requests_per_day": 3000,
            "test_requests": 2000}  # fmt: skip
    found = run_experiment(ExperimentConfig(**tiny), progress=False)  # type: ignore[arg-type]
    assert found.cvr_trained is None and "no conversion" in found.cvr_error
    assert found.arms[TARGET_CPA_ARM].bids == 0 and found.arms[ORACLE_ARM].bids > 0
    assert found.arms["tag_targeted_fixed_cpm"].bids > 0
    assert "pCVR model not trained" in format_table(found)


def test_the_experiment_is_reproducible(result: ExperimentResult) -> None:
    again = run_experiment(
        ExperimentConfig(**{**SMALL, "history_requests_per_day": 3000, "test_requests": 3000}),  # type: ignore[arg-type]
        progress=False,
    )
    twice = run_experiment(
        ExperimentConfig(**{**SMALL, "history_requests_per_day": 3000, "test_requests": 3000}),  # type: ignore[arg-type]
        progress=False,
    )
    assert {k: v.to_dict() for k, v in again.arms.items()} == {
        k: v.to_dict() for k, v in twice.arms.items()
    }


@pytest.mark.parametrize(
    "command",
    [
        ["adx_mock.cli", "experiment", "--help"],
        ["adx_mock.cli", "replay", "--help"],
        ["dsp.cli", "ctr", "train", "--help"],
    ],
)
def test_commands_have_help(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, cwd=REPO, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "usage:" in done.stdout


def test_experiment_refuses_a_history_too_short_to_hold_out_a_day() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "adx_mock.cli", "experiment", "--history-days", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--history-days" in done.stderr


def test_experiment_refuses_a_negative_pcvr_shrinkage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "adx_mock.cli", "experiment", "--cvr-l2", "-1"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--cvr-l2" in done.stderr
