"""issue 12, item 4 (not wired yet): the pCVR model and the target-CPA bid price.

The pCVR model is the CTR model's logistic regression (``dsp.ctr.model``, same hashed
features, same trainer and holdout by day, same model file format) over other rows: every
bid that was *clicked* (a valid ``click`` event with its auction and imp), labelled 1 when
a click-through ``conversion`` event names the same auction and imp. So pCTR x pCVR is the
probability that a shown ad is clicked and then converts.

A target-CPA campaign bids ``target CPA x pCTR x pCVR`` per impression (x 1000 for a CPM),
capped at its ``max_cpm_micros``, as a target-CPC campaign bids ``target CPC x pCTR``.
"""

from __future__ import annotations

from collections.abc import Iterable

from dsp.ctr.dataset import MS_PER_DAY, Examples
from dsp.ctr.features import row_of
from dsp.ctr.model import TrainConfig
from dsp.ctr.training import Trained, fit

Key = tuple[str, str]


def join_clicks(events: Iterable[dict[str, object]]) -> Examples:
    """Clicked bids with their conversion label, in bid order."""
    bids: dict[Key, dict[str, object]] = {}
    clicked: set[Key] = set()
    converted: set[Key] = set()
    for event in events:
        kind = event.get("type")
        key = (str(event.get("auction", "")), str(event.get("imp", "")))
        if kind == "bid":
            bids.setdefault(key, event)
        elif kind == "click":
            clicked.add(key)
        elif kind == "conversion":
            converted.add(key)
    rows, labels, days = [], [], []
    for key, event in bids.items():
        if key not in clicked:
            continue
        rows.append(row_of(event))
        labels.append(1 if key in converted else 0)
        ts = event.get("ts")
        days.append(ts // MS_PER_DAY if isinstance(ts, int) else 0)
    return Examples(rows, labels, days)


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
