"""issue 12, item 4: the pCVR model and the target-CPA bid price.

The pCVR model is the CTR model's logistic regression (``dsp.ctr.model``, same hashed
features, same trainer and holdout by day, same model file format) over other rows: every
bid that was *clicked* (a valid ``click`` event with its auction and imp), labelled 1 when
a click-through ``conversion`` event names the same auction and imp. So pCTR x pCVR is the
probability that a shown ad is clicked and then converts.

A target-CPA campaign bids ``target CPA x pCTR x pCVR`` per impression (x 1000 for a CPM),
capped at its ``max_cpm_micros``, as a target-CPC campaign bids ``target CPC x pCTR``
(``dsp.campaigns.index.bid_price_micros``). Train the model with ``dsp ctr train --label
conversion``; a bidder loads it as it loads the CTR model (``DSP_CVR_MODEL``).
"""

from __future__ import annotations

from collections.abc import Iterable

from dsp.ctr.dataset import join_conversions
from dsp.ctr.model import TrainConfig
from dsp.ctr.training import Trained, fit

# Clicked bids with their conversion label, in bid order (kept here under its first name).
join_clicks = join_conversions


def fit_cvr(
    events: Iterable[dict[str, object]], holdout_days: int = 1, config: TrainConfig | None = None
) -> Trained:
    """The pCVR model of an event history, trained and evaluated like the CTR model."""
    examples = join_clicks(events)
    return fit(examples, holdout_days) if config is None else fit(examples, holdout_days, config)


def target_cpa_bid_micros(
    target_cpa_micros: int, predicted_ctr: float, predicted_cvr: float, max_cpm_micros: int
) -> int:
    """CPM in USD micros: target CPA x pCTR x pCVR x 1000, capped at ``max_cpm_micros``."""
    expected = target_cpa_micros * predicted_ctr * predicted_cvr * 1000
    return max(0, min(max_cpm_micros, int(expected)))
