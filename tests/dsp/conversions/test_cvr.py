"""issue 12, item 4 pieces: the pCVR model, the target-CPA price, the market's conversions."""

from __future__ import annotations

import random

from adx_mock.clicks import Shown
from adx_mock.conversions import MAX_CVR, ConversionModel
from dsp.conversions.cvr import fit_cvr, join_clicks, target_cpa_bid_micros
from dsp.ctr.features import Row


def test_target_cpa_bids_cpa_times_pctr_times_pcvr_capped() -> None:
    # $20 CPA x 1 % CTR x 5 % CVR = $0.01 an impression = $10 CPM
    assert target_cpa_bid_micros(20_000_000, 0.01, 0.05, 50_000_000) == 10_000_000
    assert target_cpa_bid_micros(20_000_000, 0.01, 0.05, 4_000_000) == 4_000_000
    assert target_cpa_bid_micros(20_000_000, 0.0, 0.05, 4_000_000) == 0


def events(creative: str, n: int, converted: int, clicked: int | None = None) -> list[dict[str, object]]:  # fmt: skip
    found: list[dict[str, object]] = []
    for i in range(n):
        key = {"auction": f"{creative}-{i}", "imp": "1"}
        found.append({"type": "bid", "ts": i, "creative": creative, "tags": [3], "os": "ios",
                      "w": 300, "h": 250, "site_cat": ["IAB1"], **key})  # fmt: skip
        if clicked is None or i < clicked:
            found.append({"type": "click", **key})
        if i < converted:
            found.append({"type": "conversion", **key})
    return found


def test_the_pcvr_rows_are_clicked_bids_labelled_by_their_conversion() -> None:
    examples = join_clicks(events("a", 10, 3, clicked=6) + [{"type": "view_conversion"}])
    assert len(examples) == 6 and sum(examples.labels) == 3
    assert examples.rows[0] == Row("a", (3,), ("IAB1",), "ios", 300, 250)


def test_the_pcvr_model_learns_which_creative_converts() -> None:
    history = events("good", 2000, 600) + events("poor", 2000, 40)
    model = fit_cvr(history, holdout_days=0).model
    good, poor = model.predict_rows([Row(c, (3,), ("IAB1",), "ios", 300, 250) for c in ("good", "poor")])  # fmt: skip
    assert 0.2 < good < 0.4 and 0.005 < poor < 0.05


def shown(tags: dict[str, int | None]) -> Shown:
    return Shown(tags, "IAB22", 300, 250, "banner", (), 12)


def test_the_market_converts_intent_more_and_is_fixed_by_its_seed() -> None:
    model = ConversionModel(seed=7)
    relevant = sorted(model.relevant_codes("IAB22"))[0]
    cold = model.probability(shown({}))
    keen = model.probability(shown({relevant: 100}))
    assert 3 * cold < keen <= MAX_CVR
    assert ConversionModel(seed=7).probability(shown({relevant: 100})) == keen
    rng = random.Random(1)
    values = [model.value_micros(rng, "IAB22") for _ in range(4000)]
    assert 36_000_000 < sum(values) / len(values) < 44_000_000  # mean order value about $40
    rng = random.Random(2)
    converted = sum(model.convert(rng, shown({relevant: 100})) is not None for _ in range(4000))
    assert abs(converted / 4000 - keen) < 0.03
